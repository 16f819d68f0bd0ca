"""Branch formation for a whole roster: split by region, size the problems, solve, assemble.

Regions (districts of a city) are independent problems (the district rule): one unit of work
each, run by an engine (:mod:`geoalloc.engines`: a local process pool, or Ray). A unit's seed
and its work (search starts, bound steps: :func:`unit_work`) are functions of the unit alone
(its name, its size) and the policy, never of the worker count, the engine, the machine's load
or the other units, so the assembled plan is the same wherever and in whatever order the units
ran. The clock is only a safety ceiling far above the work's expected time; a unit that reaches
it is ``clock_cut``, and the plan's notes say so. A district too small for a branch of its own
is merged with its nearest neighbour of the same city (by member distance) and the branches
that then mix districts are marked joint and noted.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.engines import Checkpoints, Engine, LocalEngine, RunStats, digest, get_engine
from geoalloc.rules import DEFAULT_TARGET_SHARE, FEWEST, Policy
from geoalloc.solver.bounds import forced_size
from geoalloc.solver.engine import InstanceResult, Work, solve_instance
from geoalloc.solver.instance import Instance
from geoalloc.solver.problem import Conflict, InfeasibleError, Problem, Solution
from geoalloc.solver.textbook import refines
from geoalloc.solver.work import BUILD_CALL, BUILD_POINT

PARALLEL_MIN_MEMBERS = 1500  # below this, worker start-up costs more than it saves (local engine)
RESTARTS = 6  # search starts per region (a small budget pays for fewer: unit_work)
SMALL_UNIT = 600  # units below this many points get proportionally more starts (they are cheap)
MAX_RESTARTS = 24
REFINED_RESTARTS = 3  # starts of a district the compiled refinement then takes over (textbook.refines)
TIGHT_NOTE_GAP = 0.03  # a tight unit's gap above this gets a note on what the gap means
# share of the time limit a unit's budget may reach: each may run a little past its own deadline
# (the last search step, a bound's last iterations and its exact valuation)
LIMIT_SHARE = 0.86
MIN_UNIT_SHARE = 0.06  # each unit gets at least this share of the time limit (see unit_budget)
# a unit of this many points gets the whole LIMIT_SHARE of the time limit, smaller ones in
# proportion: half the Shenzhen sample, so that its districts on two cores end within the limit
# as they did when the budgets were cut from the limit times the worker count
FULL_BUDGET_POINTS = 3500
NOTES_LISTED = 10  # a national roster joins hundreds of districts: the notes name this many of each kind
BOUND_SHARE = 0.45  # share of each region's time kept for the lower bound: the gap is half the answer
# What a bound step costs on the machine the work's constants were measured on (unit_work; the
# search's are in geoalloc/solver/work.py): constants, so a plan never depends on the machine
BOUND_POINT_STEPS_PER_SECOND = 280_000.0  # a bound step costs about n / this seconds
MIN_BOUND_ITERS = 25  # fewer steps leave the bound far below the plan whatever the budget
MAX_BOUND_ITERS = 250  # the bound's own default: past it the steps stall (its patience ends them)
CEILING_FACTOR = 4.0  # the safety ceiling: this times the larger of the budget and the work's estimate ...
CEILING_SECONDS = 10.0  # ... plus this (room for a loaded machine: 5 jobs on 2 cores here)


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
        """Full members of the unit (a family of two full members and a probationary one counts two)."""
        full, demand = problem.full[self.members], problem.demand[self.members]  # type: ignore[index]
        return int(np.minimum(full, demand).sum())


def _too_small(problem: Problem, unit: Unit, policy: Policy) -> bool:
    return unit.demand(problem) < policy.min_size or unit.full(problem) < policy.min_full


def build_units(problem: Problem, policy: Policy) -> list[Unit]:
    """The independent problems, after joining regions too small for one branch to a neighbour
    of the same group (city). A small region with no such neighbour stays a unit of its own
    (:func:`form_branches` reports it)."""
    names = problem.region_names
    region = problem.region
    assert region is not None
    group = problem.region_group if problem.region_group is not None else np.zeros(len(names), dtype=np.int64)
    present = sorted(set(region.tolist()))
    if policy.cross_district:
        out = []
        for g in sorted({int(group[r]) for r in present}):
            regs = [r for r in present if group[r] == g]
            label = names[regs[0]] if len(regs) == 1 else ("all" if problem.region_group is None else names[regs[0]])
            out.append(Unit(regs, np.nonzero(np.isin(region, regs))[0], label, []))
        return out
    members = np.argsort(region, kind="stable")
    bounds = np.searchsorted(region[members], np.arange(len(names) + 1))
    units = [Unit([r], np.sort(members[bounds[r]:bounds[r + 1]]), names[r], []) for r in present]
    by_group: dict[int, list[Unit]] = {}
    for u in units:
        by_group.setdefault(int(group[u.regions[0]]), []).append(u)
    out = []
    for same_city in by_group.values():  # a city at a time: joins never cross a city's edge
        out.extend(_join_small(problem, same_city, policy))
    return sorted(out, key=lambda v: v.regions[0])


def _join_small(problem: Problem, units: list[Unit], policy: Policy) -> list[Unit]:
    """Join the smallest unit too small for a branch to its nearest neighbour (by member
    distance), until none is left or only one unit remains."""
    units = list(units)
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
    optimum from a few starts, and their starts cost little (measurements: benchmarks/README.md,
    "The product's search")."""
    return int(min(MAX_RESTARTS, max(RESTARTS, round(RESTARTS * SMALL_UNIT / max(n, 1)))))


def unit_budget(n: int, policy: Policy) -> float:
    """Seconds for a unit of ``n`` points: in proportion to its size (the whole ``LIMIT_SHARE``
    of the time limit at ``FULL_BUDGET_POINTS``), never more, and at least ``MIN_UNIT_SHARE``
    of it. :func:`unit_work` turns it into work (starts, bound steps) at a fixed calibration, so
    a roster's wall time is about the sum of its units' budgets over the workers. The floor is
    there because a small tight district is cheap to solve well but needs all its starts."""
    ceiling = LIMIT_SHARE * policy.time_limit
    return float(min(ceiling, max(MIN_UNIT_SHARE * policy.time_limit, ceiling * n / FULL_BUDGET_POINTS)))


def unit_work(n: int, policy: Policy, refined: bool = False) -> Work:
    """The work a unit of ``n`` points gets from its :func:`unit_budget`: its :func:`restarts_for`
    starts while ``1 - BOUND_SHARE`` of the budget, as work (:mod:`geoalloc.solver.work`), lasts,
    and bound steps for the rest, at fixed calibrations. So ``--time-limit`` still means about
    seconds here, and a plan is the same on any machine, engine or worker count. The ceiling, a
    few times the larger of the budget and what the first start and the bound must take, only
    stops a unit that went badly wrong. ``refined``: the compiled refinement follows the starts
    (:func:`~geoalloc.solver.textbook.refines`), which then need fewer of them."""
    budget = unit_budget(n, policy)
    search = (1.0 - BOUND_SHARE) * budget
    step = max(n, 1) / BOUND_POINT_STEPS_PER_SECOND
    iters = int(min(MAX_BOUND_ITERS, max(MIN_BOUND_ITERS, BOUND_SHARE * budget // step)))
    least = BUILD_CALL + BUILD_POINT * n + iters * step  # the first start's plan is built whatever the budget
    starts = min(restarts_for(n), REFINED_RESTARTS) if refined else restarts_for(n)
    return Work(starts, search, iters, CEILING_FACTOR * max(budget, least) + CEILING_SECONDS)


def unit_seed(name: str, policy: Policy) -> int:
    """A unit's seed from the policy's seed and the unit's name only (not its position among
    the units, which changes when another region appears or goes)."""
    h = hashlib.blake2b(f"{int(policy.seed)}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


@dataclass(frozen=True)
class UnitTask:
    """Everything one unit's solve depends on; what an engine ships to a worker."""

    name: str
    inst: Instance
    seed: int
    work: Work

    def key(self) -> str:
        """The checkpoint key: a hash of every input of the solve (and of the solver's code)."""
        i, w = self.inst, self.work
        return digest(self.name, i.xy, i.demand, i.full, i.weight, i.cand_xy, i.p, i.max_size, i.min_size,
                      i.min_full, i.floor, self.seed, w.starts, w.search, w.bound_iters, w.ceiling)


def unit_task(name: str, inst: Instance, policy: Policy) -> UnitTask:
    """A unit's task: its seed and work from its name, its size and the policy only."""
    return UnitTask(name, inst, unit_seed(name, policy), unit_work(inst.n, policy, refines(inst)))


def single_branch(inst: Instance) -> InstanceResult | None:
    """The exact plan of a unit that is one branch: every point in it, the site that serves them
    at least cost (the 1-median). Most districts of a national roster are this small, and the
    search would spend a tenth of a second on each to find the same site."""
    t0 = time.perf_counter()
    cost = np.array([float(inst.cost(np.arange(inst.n), np.full(inst.n, j)).sum()) for j in range(inst.m)])
    site = int(np.argmin(cost))  # the first of equal sites: the same answer on every machine
    sites, branch_of = np.array([site], dtype=np.int64), np.zeros(inst.n, dtype=np.int64)
    if inst.violations(sites, branch_of):
        return None
    obj = float(cost[site])
    return InstanceResult(sites, branch_of, obj, obj, time.perf_counter() - t0, False,
                          {"starts": 0, "single_branch": "exact 1-median", "proved_early": "exact"})


def solve_unit(task: UnitTask) -> InstanceResult | None:
    """One unit's plan (None: no assignment meets the limits). Runs in an engine's worker."""
    if task.inst.p == 1:
        exact = single_branch(task.inst)
        if exact is not None:
            exact.stats["clock_cut"] = False
            exact.stats["more_time_helps"] = False
            return exact
    w = task.work
    res = solve_instance(task.inst, w.ceiling, task.seed, work=w)
    if res is not None:
        # the ceiling, not the work, ended the search: this unit's plan can differ from run to run
        res.stats["clock_cut"] = bool(res.timed_out)
        res.stats["work"] = {"starts": w.starts, "search": round(w.search, 4), "bound_iters": w.bound_iters,
                             "ceiling_s": round(w.ceiling, 3)}
        res.stats["more_time_helps"] = more_time_helps(res, w)
    return res


def more_time_helps(res: InstanceResult, w: Work) -> bool:
    """Whether a longer time limit could change a unit's plan or bound: the ceiling cut it, its
    search stopped because its work ran out (not after its planned starts), or its bound got
    fewer than MAX_BOUND_ITERS steps. Otherwise more time buys the same plan and the same bound,
    and the report must not advise it."""
    if res.timed_out:
        return True
    if res.stats.get("proved_early") or res.stats.get("whole_mip_optimal"):
        return False
    spent = float(res.stats.get("work_used", 0.0)) >= w.search  # type: ignore[arg-type]
    return bool(spent or w.bound_iters < MAX_BOUND_ITERS)


def _save(store: Checkpoints, key: str, task: UnitTask, res: InstanceResult) -> None:
    header = {"name": task.name, "objective": res.objective, "lower_bound": res.lower_bound,
              "seconds": res.seconds, "timed_out": res.timed_out, "stats": res.stats}
    store.put(key, header, {"sites": np.asarray(res.sites, np.int64), "branch_of": np.asarray(res.branch_of, np.int64)})


def _load(store: Checkpoints, key: str) -> InstanceResult | None:
    got = store.get(key)
    if got is None:
        return None
    header, arrays = got
    stats = dict(header.get("stats", {}))
    stats["from_checkpoint"] = True
    return InstanceResult(arrays["sites"], arrays["branch_of"], float(header["objective"]),
                          float(header["lower_bound"]), float(header["seconds"]), bool(header["timed_out"]), stats)


def _default_engine(problem: Problem, n_units: int) -> Engine:
    workers = min(os.cpu_count() or 1, n_units)
    return LocalEngine(1 if problem.n < PARALLEL_MIN_MEMBERS else workers)


def form_branches(
    problem: Problem, policy: Policy, *, progress: Callable[[float], None] | None = None,
    engine: Engine | str | None = None, checkpoints: str | Path | Checkpoints | None = None,
) -> Solution:
    """Form branches for all members (see the package docstring for the rules).

    ``engine``: where the units run (an :class:`~geoalloc.engines.Engine`, or ``"local"`` /
    ``"ray"``; default a local pool, one process for small rosters). ``checkpoints``: a folder
    (or :class:`~geoalloc.engines.Checkpoints`) where finished units are kept under a hash of
    their input, and from which a rerun takes them instead of solving them again.
    """
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
    alone = []
    for u in units:
        if _too_small(problem, u, policy):
            lim = "min_size" if u.demand(problem) < policy.min_size else "min_full"
            have = u.demand(problem) if lim == "min_size" else u.full(problem)
            need = policy.min_size if lim == "min_size" else policy.min_full
            what = "members" if lim == "min_size" else "full members"
            where = "in all" if len(units) == 1 else "in its city, with every district joined"
            alone.append(Conflict(u.name, lim, f"{have} {what} {where}, fewer than {lim} {need} for a single branch"))
    if alone:
        raise InfeasibleError(alone)
    counts = branch_counts(problem, units, policy)
    built = [_instance(problem, u, p, policy) for u, p in zip(units, counts)]
    short = [
        Conflict(u.name, "candidate_sites", f"{inst.m} candidate sites for {p} branches")
        for u, p, (inst, _) in zip(units, counts, built) if inst.m < p
    ]
    if short:
        raise InfeasibleError(short)
    tasks = [unit_task(u.name, inst, policy) for u, (inst, _) in zip(units, built)]
    runner = get_engine(engine) if isinstance(engine, str) else engine or _default_engine(problem, len(units))
    store = checkpoints if isinstance(checkpoints, Checkpoints) or checkpoints is None else Checkpoints(checkpoints)
    results: list[InstanceResult | None] = [None] * len(tasks)
    run = RunStats(runner.name, runner.workers, units=len(tasks))
    keys = [t.key() for t in tasks] if store is not None else []
    todo = []
    for i in range(len(tasks)):
        got = _load(store, keys[i]) if store is not None else None
        if got is None:
            todo.append(i)
        else:
            results[i] = got
            run.resumed += 1
    done = run.resumed
    if progress and done:
        progress(done / len(tasks))
    tr = time.perf_counter()
    for j, res in runner.run(solve_unit, [tasks[i] for i in todo], [tasks[i].inst.n for i in todo]):
        i = todo[j]
        results[i] = res
        if store is not None and res is not None:
            _save(store, keys[i], tasks[i], res)
        run.solved += 1
        done += 1
        if progress:
            progress(done / len(tasks))
    run.seconds = time.perf_counter() - tr
    run.retried = runner.retried
    conflicts = [
        Conflict(u.name, "max_size", "no assignment meets the size limits: groups that must stay together do not fit into the branches")
        for u, r in zip(units, results) if r is None
    ]
    if conflicts:
        raise InfeasibleError(conflicts)
    sol = _assemble(problem, units, built, results, t0, branch_rule(policy))  # type: ignore[arg-type]
    cut = [u.name for u, r in zip(units, results) if r is not None and r.stats.get("clock_cut")]
    run.extra["clock_cut"] = len(cut)
    if cut:
        sol.notes.append(
            f"{len(cut)} of {len(units)} districts reached their safety ceiling (several times their time budget) "
            f"before their search finished ({', '.join(cut[:NOTES_LISTED])}{', ...' if len(cut) > NOTES_LISTED else ''}): "
            "their plans may differ from run to run and between engines (a badly overloaded machine?)")
    sol.stats["engine"] = run.to_dict()
    return sol


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
    joins: list[str] = []
    obj = lb = 0.0
    tight = []
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
            joins.append(
                f"joint branch: {names[small]} is too small for a branch of its own and was joined with "
                f"its nearest neighbouring district {names[into]}; branches {mixed} mix districts"
            )
        gap = (r.objective - r.lower_bound) / r.objective if r.objective > 0 else 0.0
        forced = forced_size(inst)
        if gap > TIGHT_NOTE_GAP and 2 * forced >= inst.max_size:
            tight.append(f"{u.name} {gap:.1%} (at least {forced} of {inst.max_size} in every branch)")
        obj += r.objective
        lb += r.lower_bound
        offset += len(r.sites)
    notes.extend(joins[:NOTES_LISTED])
    if len(joins) > NOTES_LISTED:
        notes.append(f"... and {len(joins) - NOTES_LISTED} more small districts joined with a neighbour of their own "
                     "city (the report's joint_branches lists every joint branch)")
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
