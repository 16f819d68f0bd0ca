"""Solve one :class:`Instance` end to end: first plan, improvement search, lower bound."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from geoalloc.solver.bounds import lagrangian_bound
from geoalloc.solver.construct import construct


@dataclass
class InstanceResult:
    """A plan for one instance: ``sites`` (candidate indices) and ``branch_of`` (position in sites)."""

    sites: NDArray[np.int64]
    branch_of: NDArray[np.int64]
    objective: float
    lower_bound: float
    seconds: float
    timed_out: bool = False
    stats: dict[str, object] = field(default_factory=dict)


def solve_instance(inst, time_limit: float, seed: int, *, bound: bool = True) -> InstanceResult | None:  # type: ignore[no-untyped-def]
    """Best plan found within ``time_limit`` seconds, or None when no feasible plan was found.

    The search is budgeted by work (rounds without improvement), not by the clock, so the answer
    depends only on the seed unless the time limit cuts it short (``timed_out``).
    """
    from geoalloc.solver.search import improve

    t0 = time.perf_counter()
    deadline = t0 + time_limit
    rng = np.random.default_rng(seed)
    first = construct(inst, rng, t0 + 0.5 * time_limit)
    if first is None:
        return None
    sites, branch = first
    stats: dict[str, object] = {"construct_objective": inst.objective(sites, branch)}
    bound_share = 0.15 if bound else 0.0
    search_deadline = deadline - bound_share * time_limit
    sites, branch, timed_out = improve(inst, sites, branch, rng, search_deadline, stats)
    obj = inst.objective(sites, branch)
    lb = 0.0
    if bound:
        lb = lagrangian_bound(inst, obj, deadline=max(deadline, time.perf_counter() + 0.05))
    stats["search_objective"] = obj
    return InstanceResult(sites, branch, obj, lb, time.perf_counter() - t0, timed_out, stats)
