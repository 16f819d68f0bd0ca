"""The solver's building blocks: pair moves are exact, bounds are valid, flows respect limits,
and the benchmark reader takes both instance layouts."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for benchmarks/
from benchmarks.cpmp import check, read_instance  # noqa: E402
from geoalloc.solver.bounds import _forced_unit_bound, forced_size, lagrangian_bound  # noqa: E402
from geoalloc.solver.flow import flow_assign  # noqa: E402
from geoalloc.solver.instance import Instance  # noqa: E402
from geoalloc.solver.mip import solve_part  # noqa: E402
from geoalloc.solver.pairs import best_pair  # noqa: E402


def make(seed: int, n: int, p: int, *, groups: bool = False, min_full: int = 0, floor: bool = False) -> Instance:
    rng = np.random.default_rng(seed)
    demand = rng.integers(1, 5, n) if groups else np.ones(n, dtype=np.int64)
    full = np.where(rng.random(n) < 0.8, demand, 0)
    cap = int(np.ceil(demand.sum() / p * 1.25)) + int(demand.max())
    return Instance(xy=rng.uniform(0, 1000, (n, 2)), demand=demand, full=full, weight=np.ones(n), p=p,
                    max_size=cap, min_size=1, min_full=min_full, floor=floor)


def brute_plan(inst: Instance) -> tuple[float, np.ndarray, np.ndarray]:
    """The exhaustive optimum of a tiny instance: (objective, sites, branch of each point)."""
    best, plan = np.inf, (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    n, p = inst.n, inst.p
    for sites in itertools.combinations(range(n), p):
        rest = [i for i in range(n) if i not in sites]
        for choice in itertools.product(range(p), repeat=len(rest)):
            br = np.empty(n, dtype=np.int64)
            br[list(sites)] = range(p)
            br[rest] = choice
            if not inst.violations(np.array(sites), br):
                value = inst.objective(np.array(sites), br)
                if value < best:
                    best, plan = value, (np.array(sites), br)
    return best, plan[0], plan[1]


def brute(inst: Instance) -> float:
    return brute_plan(inst)[0]


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.booleans())
def test_pair_move_matches_the_mip(seed: int, groups: bool, full_rule: bool) -> None:
    inst = make(seed, 14, 2, groups=groups, min_full=2 if (full_rule and not groups) else 0)
    pts = np.arange(inst.n)
    res = best_pair(inst, pts, pts[:7], pts[7:], pts, t=14)
    ai, aj = np.repeat(pts, inst.n), np.tile(pts, inst.n)
    mip = solve_part(inst, pts, pts, 2, ai, aj, time_limit=20, node_limit=None)
    if mip is None:
        assert res is None
        return
    assert res is not None
    assert res[0] == pytest.approx(float(inst.cost(pts, mip[0]).sum()), rel=1e-9, abs=1e-6)
    on_a = res[3]
    br = np.where(on_a, 0, 1)
    assert not inst.violations(np.array([res[1], res[2]]), br)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_lagrangian_bound_never_exceeds_the_optimum(seed: int, groups: bool) -> None:
    inst = make(seed, 7, 2, groups=groups)
    opt = brute(inst)
    assert lagrangian_bound(inst, np.inf) <= opt + 1e-6
    assert lagrangian_bound(inst, opt) <= opt + 1e-6


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([0.0, 0.7, 0.95]), st.sampled_from([0.3, 0.5, 1.0]),
       st.integers(1, 60), st.booleans())
def test_deflected_unit_bound_is_valid_at_every_step(seed: int, deflect: float, aim: float, iters: int,
                                                      from_plan: bool) -> None:
    """The unit-demand bound with deflected steps aimed short of the plan: whatever the settings
    and wherever the search is stopped, never above the brute-force optimum (nor the plan)."""
    from geoalloc.solver import bounds

    inst = make(seed, 8, 2, min_full=1)
    opt, sites, branch = brute_plan(inst)
    start = inst.cost(np.arange(inst.n), sites[branch]) if from_plan else None
    saved = bounds.UNIT_DEFLECT, bounds.UNIT_TARGET
    try:
        bounds.UNIT_DEFLECT, bounds.UNIT_TARGET = deflect, aim
        for upper in (opt, opt * 1.2, np.inf):
            got = lagrangian_bound(inst, upper, iters=iters, start=start, patience=3)
            assert 0 <= got <= opt + 1e-6
    finally:
        bounds.UNIT_DEFLECT, bounds.UNIT_TARGET = saved


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 5), st.booleans(), st.integers(2, 6))
def test_forced_size_bound_never_exceeds_the_optimum(seed: int, cap: int, floor: bool, width: int) -> None:
    """Tight capacity (every cluster must hold at least n - (p - 1) * cap): the bound with
    forced cluster sizes, searched over few neighbours and valued over all pairs, stays valid."""
    rng = np.random.default_rng(seed)
    n = 8
    inst = Instance(xy=rng.uniform(0, 1000, (n, 2)), demand=np.ones(n, dtype=np.int64),
                    full=np.ones(n, dtype=np.int64), weight=np.ones(n), p=2, max_size=cap,
                    min_size=1, floor=floor)
    assert 2 * forced_size(inst) >= inst.max_size  # the forced path is the one taken
    opt = brute(inst)
    assert lagrangian_bound(inst, np.inf) <= opt + 1e-6
    assert lagrangian_bound(inst, opt) <= opt + 1e-6
    # a deadline already past (a busy machine) still gives a bound, never a negative one
    assert 0 <= lagrangian_bound(inst, opt, deadline=0.0) <= opt + 1e-6
    sparse = _forced_unit_bound(inst, opt, 200, None, 10, None, 2.0, width=width)
    assert sparse is not None and sparse[0] <= opt + 1e-6
    # any multipliers are valued exactly, wild starting ones included
    wild = _forced_unit_bound(inst, opt, 50, None, 5, rng.uniform(0, 3000, n), 2.0, width=width)
    assert wild is not None and wild[0] <= opt + 1e-6


@settings(deadline=None)
@given(st.integers(0, 10_000), st.integers(4, 5), st.booleans())
def test_plain_then_forced_bound_is_valid_and_no_weaker(seed: int, cap: int, floor: bool) -> None:
    """The path larger tight instances take (plain bound, then forced sizes started from its
    multipliers), forced here onto small instances: never above the optimum, never below the
    plain bound."""
    from geoalloc.solver import bounds

    rng = np.random.default_rng(seed)
    n = 8
    inst = Instance(xy=rng.uniform(0, 1000, (n, 2)), demand=np.ones(n, dtype=np.int64),
                    full=np.ones(n, dtype=np.int64), weight=np.ones(n), p=2, max_size=cap,
                    min_size=1, floor=floor)
    opt = brute(inst)
    first, first_full, width = bounds._FORCED_FIRST_N, bounds._FORCED_FIRST_FULL_N, bounds._FORCED_WIDTH
    try:
        bounds._FORCED_FIRST_N, bounds._FORCED_FIRST_FULL_N, bounds._FORCED_WIDTH = 0, 0, 1
        both = lagrangian_bound(inst, opt)
        bounds._FORCED_FIRST_N = -1
        tight = bounds.forced_size
        bounds.forced_size = lambda _inst: 0  # type: ignore[assignment]  # the plain path alone
        try:
            plain = lagrangian_bound(inst, opt)
        finally:
            bounds.forced_size = tight
    finally:
        bounds._FORCED_FIRST_N, bounds._FORCED_FIRST_FULL_N, bounds._FORCED_WIDTH = first, first_full, width
    assert both <= opt + 1e-6
    assert both >= plain - 1e-6


def test_flow_assignment_respects_every_limit() -> None:
    rng = np.random.default_rng(4)
    n = 200
    full = (rng.random(n) < 0.5).astype(np.int64)
    inst = Instance(xy=rng.uniform(0, 5000, (n, 2)), demand=np.ones(n, dtype=np.int64), full=full,
                    weight=np.ones(n), p=8, max_size=30, min_size=20, min_full=8)
    sites = rng.choice(n, 8, replace=False)
    br = flow_assign(inst, sites, k=3)
    assert br is not None
    assert inst.violations(sites, br) == []


def test_reader_takes_both_layouts(tmp_path: Path) -> None:
    shared = tmp_path / "a.txt"
    shared.write_text(" 3   2 \r\n 0 0 10 4 \r\n\r\n 3 4 10 5\r\n 6 8 10 3 \r\n")
    orlib = tmp_path / "cpmp99.txt"
    orlib.write_text("1 713\n3 2 10\n1 0 0 4\n2 3 4 5\n3 6 8 3\n")
    tabs = tmp_path / "lin.txt"
    tabs.write_text("3\t2\t\t\r\n0\t0\t10\t4\r\n3\t4\t10\t5\r\n6\t8\t10\t3\r\n")
    for f in (shared, orlib, tabs):
        inst = read_instance(f)
        assert inst.p == 2 and inst.capacity == 10 and inst.demand.tolist() == [4, 5, 3]
        assert inst.xy[1].tolist() == [3.0, 4.0]
    assert read_instance(orlib).dist == "floor" and read_instance(tabs).dist == "euclid"
    inst = read_instance(shared)
    ok, obj = check(inst, np.array([0, 1]), np.array([0, 1, 1]))
    assert ok and obj == pytest.approx(5.0)
    assert not check(inst, np.array([0, 1]), np.array([0, 0, 1]))[0]  # median 1 must serve itself
    tight = read_instance(shared)
    tight.capacity = 8
    assert not check(tight, np.array([0, 2]), np.array([0, 0, 2]))[0]  # median 0 would hold 9 > 8



def test_a_mip_without_a_deadline_is_solved() -> None:
    # "no deadline" (construct's deadline=1e18) once overflowed OR-Tools' int64 millisecond limit
    inst = make(3, 12, 2, groups=True)
    pts = np.arange(inst.n)
    ai, aj = np.repeat(pts, inst.n), np.tile(pts, inst.n)
    res = solve_part(inst, pts, pts, 2, ai, aj, time_limit=1e18, node_limit=None)
    assert res is not None and res[1]  # solved to optimality
    assert float(inst.cost(pts, res[0]).sum()) == pytest.approx(brute(inst), rel=1e-9, abs=1e-6)


def test_more_time_helps_only_where_the_work_or_the_bound_steps_ran_short() -> None:
    """The report's advice to give more time rests on this: a unit whose search finished its
    starts and whose bound got its full steps says more time changes nothing; a unit given a
    budget too small for either says it would."""
    from geoalloc.rules import Policy
    from geoalloc.solver.form import MAX_BOUND_ITERS, solve_unit, unit_task

    inst = make(3, 60, 3, min_full=2)
    roomy = solve_unit(unit_task("d", inst, Policy(min_size=1, max_size=inst.max_size, min_full=2, time_limit=300)))
    short = solve_unit(unit_task("d", inst, Policy(min_size=1, max_size=inst.max_size, min_full=2, time_limit=0.01)))
    assert roomy is not None and short is not None
    assert roomy.stats["more_time_helps"] is False
    assert roomy.stats["work"]["bound_iters"] == MAX_BOUND_ITERS  # type: ignore[index]
    assert short.stats["more_time_helps"] is True


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.sampled_from([40, 250]))
def test_the_compiled_knapsacks_give_the_same_bound(seed: int, self_serve: bool, iters: int) -> None:
    """Families (demands 1-4) on 450 points: the bound through the compiled site knapsacks is the
    very number the whole-array form gives, step for step."""
    import geoalloc.solver.bounds as bounds

    rng = np.random.default_rng(seed)
    n, p = 450, 40  # small branches: sites' negative points overflow them, and the ratio rule runs
    demand = rng.choice([1, 1, 1, 2, 3, 4], n)
    cap = int(np.ceil(demand.sum() / p * float(rng.uniform(1.02, 1.2)))) + 4
    inst = Instance(xy=rng.uniform(0, 5000, (n, 2)), demand=demand, full=demand.copy(),
                    weight=demand.astype(np.float64), p=p, max_size=cap,
                    cand_xy=None if self_serve else rng.uniform(0, 5000, (200, 2)))
    start = rng.uniform(200, 2000, n) * demand
    upper = float(start.sum())
    compiled = lagrangian_bound(inst, upper, start=start, iters=iters)
    saved = bounds.COMPILED_MIN_N
    try:
        bounds.COMPILED_MIN_N = n + 1
        plain = lagrangian_bound(inst, upper, start=start, iters=iters)
    finally:
        bounds.COMPILED_MIN_N = saved
    assert compiled == plain
