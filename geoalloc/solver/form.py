"""Branch formation for a whole roster: split by district, size the problems, solve, assemble.

Districts are independent problems (the district rule), solved in parallel worker processes.
Each worker's answer depends only on its own input and a seed derived from the policy seed and
the unit's position, so the assembled plan does not depend on scheduling. A district too small
for a branch of its own is merged with its nearest neighbour (by member distance) and the
branches that then mix districts are marked joint and noted.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.rules import DEFAULT_TARGET_SHARE, FEWEST, Policy
from geoalloc.solver.bounds import forced_size
from geoalloc.solver.engine import InstanceResult, solve_instance
from geoalloc.solver.instance import Instance
from geoalloc.solver.problem import Conflict, InfeasibleError, Problem, Solution

PARALLEL_MIN_MEMBERS = 1500  # below this, worker start-up costs more than it saves
RESTARTS = 6  # search starts per region (the time limit may cut them short)
SMALL_UNIT = 600  # units below this many points get proportionally more starts (they are cheap)
MAX_RESTARTS = 24
TIGHT_NOTE_GAP = 0.03  # a tight unit's gap above this gets a note on what the gap means
# share of the time limit the units are given: each may run a little past its own deadline (the
# last search step, a bound's last iterations and its exact valuation), and that adds up per worker
LIMIT_SHARE = 0.86
MIN_UNIT_SHARE = 0.06  # each unit gets at least this share of the time limit (see _budgets)
BOUND_SHARE = 0.45  # share of each region's time kept for the lower bound: the gap is half the answer


@dataclass
class Unit:
    """One independent problem: members of one region, or of a small region and its neighbour."""

    regions: list[int]
    members: NDArray[np.int64]
    name: str
    joined: list[tuple[int, int]]  # (small region, the region it joined)

    def demand(self, problem: Problem) -> int:
        return int(problem.demand[self.members].sum())  # type: ignore[index]

    def full(self, problem: Problem) -> int:
        return int(problem.full[self.members].sum())  # type: ignore[index]


def _too_small(problem: Problem, unit: Unit, policy: Policy) -> bool:
    return unit.demand(problem) < policy.min_size or unit.full(problem) < policy.min_full


def build_units(problem: Problem, policy: Policy) -> list[Unit]:
    """The independent problems, after joining regions too small for one branch to a neighbour."""
    names = problem.region_names
    region = problem.region
    assert region is not None
    if policy.cross_district:
        present = sorted(set(region.tolist()))
        label = "all" if len(present) != 1 else names[present[0]]
        return [Unit(present, np.arange(problem.n), label, [])]
    units = [
        Unit([r], np.nonzero(region == r)[0], names[r], [])
        for r in range(len(names))
        if (region == r).any()
    ]
    while len(units) > 1:
        small = [u for u in units if _too_small(problem, u, policy)]
        if not small:
            break
        u = min(small, key=lambda v: (v.demand(problem), v.regions[0]))
        others = [v for v in units if v is not u]
        pts = problem.xy[u.members]
        dist = [float(cKDTree(problem.xy[v.members]).query(pts, k=1)[0].min()) for v in others]
        near = others[int(np.argmin(dist))]
        near.joined.extend(u.joined + [(u.regions[0], near.regions[0])])
        near.regions.extend(u.regions)
        near.members = np.sort(np.concatenate([near.members, u.members]))
        near.name = near.name if u.name in near.name else f"{near.name}+{u.name}"
        units.remove(u)
    return units


def _limits(problem: Problem, unit: Unit, policy: Policy) -> tuple[int, int, str, str]:
    """Fewest and most branches the limits allow, with the limit that caps the most."""
    dem, full = unit.demand(problem), unit.full(problem)
    lo = max(1, math.ceil(dem / policy.max_size))
    hi_size = dem // policy.min_size
    hi_full = full // policy.min_full if policy.min_full > 0 else hi_size
    if hi_full < hi_size:
        return lo, hi_full, "min_full", f"{full} full members allow at most {hi_full} branches of {policy.min_full} full members each"
    return lo, hi_size, "min_size", f"{dem} members allow at most {hi_size} branches of min_size {policy.min_size}"


def branch_rule(policy: Policy) -> str:
    """The branch-count rule ``policy`` means, in words (the report states it)."""
    target = policy.target_mean()
    if policy.n_branches == FEWEST:
        return "fewest: in each district the fewest branches the limits allow (ceil(members / max_size))"
    if target is None:
        return f"fixed: {policy.n_branches} branches in all, spread over the districts in proportion to members"
    how = "target_size" if policy.target_size is not None else f"default, {DEFAULT_TARGET_SHARE:.0%} of max_size"
    return (f"target: in each district ceil(members / {target:g}) branches ({how}), "
            "kept within the counts the limits allow")


def branch_counts(problem: Problem, units: list[Unit], policy: Policy) -> list[int]:
    """Branches per unit under the policy (:func:`branch_rule`), or InfeasibleError naming each
    region and limit."""
    conflicts: list[Conflict] = []
    limits = [_limits(problem, u, policy) for u in units]
    dems = [u.demand(problem) for u in units]
    for u, (lo, hi, lim, why), dem in zip(units, limits, dems):
        if lo > hi:
            if lim == "min_full":
                conflicts.append(Conflict(u.name, "min_full", f"fewer full members than {lo} branches need: {why}"))
            else:
                conflicts.append(Conflict(u.name, "min_size", f"{dem} members cannot fill {lo} branches (needed for max_size {policy.max_size}) with min_size {policy.min_size}"))
    if conflicts:
        raise InfeasibleError(conflicts)
    n = policy.n_branches
    if n == FEWEST:
        return [lo for lo, _, _, _ in limits]
    target = policy.target_mean()
    if target is not None:
        return [min(hi, max(lo, math.ceil(d / target - 1e-9))) for (lo, hi, _, _), d in zip(limits, dems)]
    assert isinstance(n, int)
    lo_sum = sum(lo for lo, _, _, _ in limits)
    hi_sum = sum(hi for _, hi, _, _ in limits)
    if len(units) == 1:
        (lo, hi, lim, why), u, dem = limits[0], units[0], dems[0]
        if n < lo:
            raise InfeasibleError([Conflict(u.name, "max_size", f"max_size {policy.max_size} x {n} branches = {policy.max_size * n} < {dem} members")])
        if n > hi:
            raise InfeasibleError([Conflict(u.name, lim, f"{n} branches requested but {why}")])
        return [n]
    if n < lo_sum:
        detail = ", ".join(f"{u.name} needs {lo}" for u, (lo, _, _, _) in zip(units, limits))
        raise InfeasibleError([Conflict("all", "max_size", f"{n} branches requested but max_size {policy.max_size} needs at least {lo_sum} ({detail})")])
    if n > hi_sum:
        detail = ", ".join(f"{u.name}: {why}" for u, (_, _, _, why) in zip(units, limits))
        raise InfeasibleError([Conflict("all", "min_size", f"{n} branches requested but the limits allow at most {hi_sum} ({detail})")])
    counts = [lo for lo, _, _, _ in limits]
    his = [hi for _, hi, _, _ in limits]
    # hand out the remaining branches to the unit whose branches are the largest (proportional)
    for _ in range(n - lo_sum):
        best = max((i for i in range(len(units)) if counts[i] < his[i]), key=lambda i: (dems[i] / counts[i], -i))
        counts[best] += 1
    return counts


def _instance(problem: Problem, unit: Unit, p: int, policy: Policy) -> tuple[Instance, NDArray[np.int64] | None]:
    idx = unit.members
    cand_idx = None
    cand_xy = None
    if problem.candidate_xy is not None:
        if problem.candidate_region is None or policy.cross_district:
            cand_idx = np.arange(len(problem.candidate_xy))
        else:
            cand_idx = np.nonzero(np.isin(problem.candidate_region, unit.regions))[0]
        cand_xy = problem.candidate_xy[cand_idx]
    demand = problem.demand[idx]  # type: ignore[index]
    inst = Instance(
        xy=problem.xy[idx],
        demand=demand,
        full=problem.full[idx],  # type: ignore[index]
        weight=demand.astype(np.float64),
        p=p,
        max_size=policy.max_size,
        min_size=policy.min_size,
        min_full=policy.min_full,
        cand_xy=cand_xy,
    )
    return inst, cand_idx


def unit_instances(problem: Problem, policy: Policy) -> list[tuple[str, Instance]]:
    """The independent problems :func:`form_branches` solves, by name (for benchmarks that
    check a plan or its bound against an exact solver, unit by unit)."""
    units = build_units(problem, policy)
    counts = branch_counts(problem, units, policy)
    return [(u.name, _instance(problem, u, p, policy)[0]) for u, p in zip(units, counts)]


def restarts_for(n: int) -> int:
    """Search starts for a unit of ``n`` points: small tight districts get stuck in a poor local
    optimum from a few starts (盐田区 at 25% above the optimum in the geocoded sample), and their
    starts cost little."""
    return int(min(MAX_RESTARTS, max(RESTARTS, round(RESTARTS * SMALL_UNIT / max(n, 1)))))


def _solve_task(args: tuple[Instance, float, int]) -> InstanceResult | None:
    inst, budget, seed = args
    res = solve_instance(inst, budget, seed, restarts=restarts_for(inst.n), bound_share=BOUND_SHARE)
    if res is not None and res.timed_out and int(res.stats.get("starts", 0)) > RESTARTS:  # type: ignore[call-overload]
        res.timed_out = False  # the planned RESTARTS starts finished; only the extra ones were cut
    return res


def _budgets(sizes: NDArray[np.float64], spare: float, workers: int, floor: float) -> NDArray[np.float64]:
    """Seconds per unit: in proportion to its size, but at least ``floor`` (taken from the larger
    units), and never more than ``spare``. A small tight district is cheap to solve well but needs
    all its starts: 盐田区 (128 members) finds its best plan after about 15 of its 24 starts, in
    0.17 s, and the 0.16 s its size gave it under a 5 s limit left its plan 15% worse in some runs."""
    total = spare * workers
    budgets = total * sizes / sizes.sum()
    small = budgets < floor
    if small.any() and not small.all() and floor * small.sum() < total:
        budgets[small] = floor
        rest = ~small
        budgets[rest] = (total - floor * small.sum()) * sizes[rest] / sizes[rest].sum()
    return np.minimum(spare, budgets)


def form_branches(
    problem: Problem, policy: Policy, *, progress: Callable[[float], None] | None = None
) -> Solution:
    """Form branches for all members (see the package docstring for the rules)."""
    t0 = time.perf_counter()
    assert problem.demand is not None and problem.full is not None and problem.region is not None
    if problem.n == 0:
        raise InfeasibleError([Conflict("all", "members", "there are no members to allocate")])
    big = np.nonzero(problem.demand > policy.max_size)[0]
    if len(big):
        raise InfeasibleError([
            Conflict(problem.region_names[int(problem.region[i])], "max_size",
                     f"a group of {int(problem.demand[i])} members (point {int(i)}) must stay together but max_size is {policy.max_size}")
            for i in big
        ])
    units = build_units(problem, policy)
    if len(units) == 1 and _too_small(problem, units[0], policy):
        u = units[0]
        lim = "min_size" if u.demand(problem) < policy.min_size else "min_full"
        have = u.demand(problem) if lim == "min_size" else u.full(problem)
        need = policy.min_size if lim == "min_size" else policy.min_full
        what = "members" if lim == "min_size" else "full members"
        raise InfeasibleError([Conflict(u.name, lim, f"{have} {what} in all, fewer than {lim} {need} for a single branch")])
    counts = branch_counts(problem, units, policy)
    built = [_instance(problem, u, p, policy) for u, p in zip(units, counts)]
    short = [
        Conflict(u.name, "candidate_sites", f"{inst.m} candidate sites for {p} branches")
        for u, p, (inst, _) in zip(units, counts, built) if inst.m < p
    ]
    if short:
        raise InfeasibleError(short)
    sizes = np.array([len(u.members) for u in units], dtype=np.float64)
    workers = min(os.cpu_count() or 1, len(units))
    if problem.n < PARALLEL_MIN_MEMBERS:
        workers = 1
    spare = max(0.05, LIMIT_SHARE * policy.time_limit - (time.perf_counter() - t0))
    budgets = _budgets(sizes, spare, workers, MIN_UNIT_SHARE * policy.time_limit)
    tasks = [(inst, float(b), int(policy.seed) * 1_000_003 + i) for i, ((inst, _), b) in enumerate(zip(built, budgets))]
    results: list[InstanceResult | None] = [None] * len(tasks)
    order = sorted(range(len(tasks)), key=lambda i: -sizes[i])
    done = 0
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
            futs = {i: pool.submit(_solve_task, tasks[i]) for i in order}
            for i in order:
                results[i] = futs[i].result()
                done += 1
                if progress:
                    progress(done / len(tasks))
    else:
        for i in order:
            results[i] = _solve_task(tasks[i])
            done += 1
            if progress:
                progress(done / len(tasks))
    conflicts = [
        Conflict(u.name, "max_size", "no assignment meets the size limits: groups that must stay together do not fit into the branches")
        for u, r in zip(units, results) if r is None
    ]
    if conflicts:
        raise InfeasibleError(conflicts)
    return _assemble(problem, units, built, results, t0, branch_rule(policy))  # type: ignore[arg-type]


def _assemble(
    problem: Problem,
    units: list[Unit],
    built: list[tuple[Instance, NDArray[np.int64] | None]],
    results: list[InstanceResult],
    t0: float,
    rule: str,
) -> Solution:
    assert problem.region is not None
    branch_of = np.full(problem.n, -1, dtype=np.int64)
    site_xy, site_member, site_region, joint = [], [], [], []
    notes: list[str] = []
    obj = lb = 0.0
    timed_out, tight = [], []
    offset = 0
    for u, (inst, cand_idx), r in zip(units, built, results):
        branch_of[u.members] = offset + r.branch_of
        for b, s in enumerate(r.sites):
            site_xy.append(inst.sites_xy[s])
            if cand_idx is None:
                gm = int(u.members[s])
                site_member.append(gm)
                site_region.append(int(problem.region[gm]))
            else:
                site_member.append(-1)
                cr = problem.candidate_region
                site_region.append(int(cr[cand_idx[s]]) if cr is not None else u.regions[0])
            regs = np.unique(problem.region[u.members[r.branch_of == b]])
            joint.append(len(regs) > 1)
        for small, into in u.joined:
            names = problem.region_names
            mixed = [offset + b for b in range(len(r.sites)) if len(np.unique(problem.region[u.members[r.branch_of == b]])) > 1]
            notes.append(
                f"joint branch: {names[small]} is too small for a branch of its own and was joined with "
                f"its nearest neighbouring district {names[into]}; branches {mixed} mix districts"
            )
        if r.timed_out:
            timed_out.append(u.name)
        gap = (r.objective - r.lower_bound) / r.objective if r.objective > 0 else 0.0
        forced = forced_size(inst)
        if gap > TIGHT_NOTE_GAP and 2 * forced >= inst.max_size:
            tight.append(f"{u.name} {gap:.1%} (at least {forced} of {inst.max_size} in every branch)")
        obj += r.objective
        lb += r.lower_bound
        offset += len(r.sites)
    if timed_out:
        notes.append("time limit reached before the search finished in: " + ", ".join(timed_out))
    if tight:
        notes.append(
            "where the gap sits: " + ", ".join(tight) + ". In districts this tight the lower bound (a linear "
            "relaxation with size cuts; a longer time limit tightens it) stays well below even the best plan, "
            "so there the gap measures the bound more than "
            "the plan (benchmarks/certificate.py compares both with the exact optimum where it can be found)")
    lb = min(lb, obj)
    proved = obj - lb <= 1e-9 * max(1.0, obj)
    # plans are written with each member's distance rounded to 0.1 m, so the written objective
    # can sit up to 0.05 m per member below this one: keep the reported bound below that too
    lb = max(0.0, lb - 0.05 * problem.n)
    sol = Solution(
        branch_of=branch_of,
        site_xy=np.array(site_xy, dtype=np.float64).reshape(-1, 2),
        site_member=np.array(site_member, dtype=np.int64),
        site_region=np.array(site_region, dtype=np.int64),
        objective=obj,
        lower_bound=lb,
        seconds=time.perf_counter() - t0,
        status="optimal" if proved else "feasible",
        notes=notes,
        stats={"units": [
            {"name": u.name, "n": len(u.members), "branches": len(r.sites), "objective": r.objective,
             "lower_bound": r.lower_bound, "forced_min_size": forced_size(inst), "seconds": r.seconds, **r.stats}
            for u, (inst, _), r in zip(units, built, results)
        ], "objective_weighting": "demand (every member of a group counts)", "branch_rule": rule},
        joint=np.array(joint, dtype=bool),
    )
    return sol
