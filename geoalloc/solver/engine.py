"""Solve one :class:`Instance` end to end: first plan, improvement search, lower bound."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from geoalloc.solver.bounds import lagrangian_bound
from geoalloc.solver.construct import construct
from geoalloc.solver.instance import Instance


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


def solve_instance(
    inst: Instance, time_limit: float, seed: int, *, bound: bool = True, restarts: int = 6,
    patience: int | None = None,
) -> InstanceResult | None:
    """Best plan found within ``time_limit`` seconds, or None when no feasible plan was found.

    Up to ``restarts`` independent starts (k-means++ seeding, then the improvement search);
    the best plan wins; with ``patience``, also stop after that many starts in a row found
    nothing better. The work is counted in starts and search rounds, not seconds, so the
    answer depends only on the seed unless the time limit cuts it short (``timed_out``).
    """
    from geoalloc.solver.search import improve

    t0 = time.perf_counter()
    deadline = t0 + time_limit
    bound_share = 0.2 if bound else 0.0
    search_deadline = deadline - bound_share * time_limit
    best: tuple[NDArray[np.int64], NDArray[np.int64], float] | None = None
    stats: dict[str, object] = {}
    timed_out = False
    starts = since = 0
    for r in range(restarts):
        if r and time.perf_counter() > search_deadline:
            timed_out = True
            break
        rng = np.random.default_rng([seed, r])
        first = construct(inst, rng, max(search_deadline, time.perf_counter() + 0.5 * time_limit))
        if first is None:
            continue
        starts += 1
        sites, branch = first
        rstats: dict[str, object] = {"construct_objective": inst.objective(sites, branch)}
        sites, branch, cut = improve(inst, sites, branch, rng, search_deadline, rstats)
        obj = inst.objective(sites, branch)
        if best is None or obj < best[2] - 1e-9:
            best = (sites, branch, obj)
            stats = rstats
            since = 0
        else:
            since += 1
            if patience is not None and since >= patience:
                break
        if cut:
            timed_out = True
            break
        if rstats.get("whole_mip_optimal"):
            break  # proved optimal: nothing left to find
    if best is None:
        return None
    sites, branch, obj = best
    stats["starts"] = starts
    lb = 0.0
    if bound:
        lam0 = inst.cost(np.arange(inst.n), sites[branch])
        lb = lagrangian_bound(inst, obj, deadline=max(deadline, time.perf_counter() + 0.05), start=lam0)
    if stats.get("whole_mip_optimal"):
        lb = max(lb, obj)
    return InstanceResult(sites, branch, obj, lb, time.perf_counter() - t0, timed_out, stats)
