"""The benchmark search's faster and wider moves stay exact and valid: the LP bound that prunes
pair splits never exceeds the exact split, pruning with a cutoff finds the same best value,
ranked swaps tried for real keep plans valid, the cluster pool's partition is valid and never
worse than a plan it holds, the MIP over the pool's arcs finds the optimum when given every arc and
stays within the arcs it is given and is never worse than the plan it starts from, HiGHS prints
nothing, the search using them is valid and repeatable, and two searches at once keep the better
plan and the higher bound."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_solver_parts import brute  # the exhaustive optimum of a tiny instance

from geoalloc.solver.arcmip import arc_mip, pool_arcs
from geoalloc.solver.construct import construct
from geoalloc.solver.cpmp import _portfolio
from geoalloc.solver.engine import InstanceResult, SearchConfig, solve_instance, swap_kick
from geoalloc.solver.instance import Instance
from geoalloc.solver.pairs import best_pair, lp_split_bound
from geoalloc.solver.pool import ClusterPool
from geoalloc.solver.swaps import ranked_swaps
from geoalloc.solver.table import cost_table


def grouped(seed: int, n: int, p: int, slack: float, floor: bool = False) -> Instance:
    rng = np.random.default_rng(seed)
    dem = rng.integers(1, 30, n)
    cap = int(dem.sum() / p * slack) + int(dem.max())
    return Instance(xy=rng.uniform(0, 100, (n, 2)).round(0), demand=dem, full=dem, weight=np.ones(n), p=p,
                    max_size=cap, floor=floor)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 10), st.integers(0, 60), st.integers(0, 60))
def test_lp_split_bound_is_below_every_exact_split(seed: int, n: int, lo: int, width: int) -> None:
    rng = np.random.default_rng(seed)
    diff = rng.normal(0, 10, (3, n))
    dem = rng.integers(1, 15, n)
    free = rng.random((3, n)) < 0.8
    lo_a = np.full(3, lo)
    hi_a = lo_a + width - 10
    bound = lp_split_bound(np.where(free, diff, np.inf), dem, free, lo_a, hi_a)
    for r in range(3):
        exact = np.inf
        idx = np.nonzero(free[r])[0]
        for k in range(len(idx) + 1):
            for sub in itertools.combinations(idx, k):
                load = int(dem[list(sub)].sum())
                if lo_a[r] <= load <= hi_a[r]:
                    exact = min(exact, float(diff[r, list(sub)].sum()))
        if np.isfinite(exact):
            assert bound[r] <= exact + 1e-9
        else:  # no integral split: the LP may still have one, but it is never below -inf
            assert bound[r] > -np.inf


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 30), st.floats(0.5, 1.0), st.booleans(), st.floats(-5, 20))
def test_pair_cutoff_keeps_every_improving_split(seed: int, n: int, slack: float, floor: bool, margin: float) -> None:
    inst = grouped(seed, n, 2, slack, floor)
    pts = np.arange(n)
    k = max(1, n // 2)
    full = best_pair(inst, pts, pts[:k], pts[k:], pts, t=5)
    cut = (full[0] if full is not None else 100.0) + margin
    pruned = best_pair(inst, pts, pts[:k], pts[k:], pts, t=5, cutoff=cut)
    if full is not None and full[0] < cut - 1e-9 * max(1.0, cut):
        assert pruned is not None and pruned[0] == pytest.approx(full[0], abs=1e-9)
        on_a = pruned[3]
        val = float(inst.cost(pts[on_a], np.full(on_a.sum(), pruned[1])).sum()
                    + inst.cost(pts[~on_a], np.full((~on_a).sum(), pruned[2])).sum())
        assert val == pytest.approx(pruned[0], abs=1e-6)
        assert inst.demand[on_a].sum() <= inst.max_size and inst.demand[~on_a].sum() <= inst.max_size
    else:
        assert pruned is None


def assert_valid_and_repeatable(inst: Instance, a: InstanceResult | None, b: InstanceResult | None) -> None:
    """Two runs of one seeded search: a valid plan, its objective recomputed, a bound below it, and
    the same plan both times."""
    assert a is not None and b is not None
    assert inst.violations(a.sites, a.branch_of) == []
    assert a.objective == pytest.approx(inst.objective(a.sites, a.branch_of))
    assert a.lower_bound <= a.objective + 1e-6
    assert a.objective == b.objective and np.array_equal(a.branch_of, b.branch_of)


def unit_or_grouped(seed: int, n: int, p: int, groups: bool) -> Instance:
    rng = np.random.default_rng(seed)
    dem = rng.integers(1, 20, n) if groups else np.ones(n, dtype=np.int64)
    cap = int(dem.sum() / p * 1.2) + int(dem.max())
    return Instance(xy=rng.uniform(0, 100, (n, 2)), demand=dem, full=dem, weight=np.ones(n), p=p, max_size=cap)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(8, 40), st.integers(2, 5), st.booleans())
def test_ranked_swaps_tried_for_real_stay_valid(seed: int, n: int, p: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, n, p, groups)
    rng = np.random.default_rng(seed)
    first = construct(inst, rng, deadline=1e18)
    assume(first is not None)
    sites, branch = first
    costs = cost_table(inst)
    assert costs is not None
    ranked = ranked_swaps(inst, costs, sites, branch, 10)
    est = [d for _, _, d in ranked]
    assert est == sorted(est) and all(d < 0 for d in est)
    cur = costs[np.arange(n), sites[branch]]
    for b, k, d in ranked:  # the estimate, point by point: stay, or go to k; the closed cluster falls back
        others = np.delete(sites, b)
        new = sum(min(costs[j, others].min(), costs[j, k]) if branch[j] == b else min(cur[j], costs[j, k])
                  for j in range(n))
        assert d == pytest.approx(new - cur.sum(), abs=1e-6)
    for b, k, _ in ranked:
        assert 0 <= b < p and k not in set(sites.tolist())
        out = swap_kick(inst, sites, branch, b, k)
        if out is None:
            continue
        s2, b2, dirty = out
        assert inst.violations(s2, b2) == []
        assert s2[b] == k and b in dirty
        assert np.array_equal(np.delete(s2, b), np.delete(sites, b))  # only site b moved


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(8, 40), st.integers(2, 5), st.booleans())
def test_pool_partition_is_valid_and_never_worse_than_a_plan_added(seed: int, n: int, p: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, n, p, groups)
    pool = ClusterPool(inst)
    objs = []
    for r in range(4):
        first = construct(inst, np.random.default_rng([seed, r]), deadline=1e18)
        if first is None:
            continue
        pool.add(*first)
        objs.append(inst.objective(*first))
    assume(objs)
    size = len(pool)
    assert pool.add(*first) == 0 and len(pool) == size  # a plan seen already adds nothing
    out = pool.solve(p, time.perf_counter() + 30)
    assert out is not None
    assert inst.violations(*out) == []
    assert inst.objective(*out) <= min(objs) + 1e-9
    again = pool.solve(p, time.perf_counter() + 30, start=first)  # started from a plan it holds: same optimum
    assert again is not None and inst.objective(*again) == pytest.approx(inst.objective(*out))
    for mem, site, cost in zip(pool.members, pool.site, pool.cost):  # each column priced right
        assert site in set(mem.tolist())
        assert cost == pytest.approx(float(inst.cost(mem, np.full(len(mem), site)).sum()))


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_benchmark_search_with_swaps_and_pool_is_valid_and_repeatable(seed: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, 60, 5, groups)
    runs = [solve_instance(inst, 60.0, seed, restarts=70, config=SearchConfig(
        local_kicks=True, swaps=True, reassign_mip=False, recombine=True)) for _ in range(2)]
    assert_valid_and_repeatable(inst, *runs)


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_small_instance_proved_early_stops_with_the_optimum_and_a_valid_bound(seed: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, 9, 2, groups)
    res = solve_instance(inst, 60.0, seed, restarts=100_000, config=SearchConfig(
        local_kicks=True, swaps=True, reassign_mip=False, recombine=True, whole_mip_last=True, polish=0.3,
        prove_early=True))
    assert res is not None
    opt = brute(inst)
    assert res.objective == pytest.approx(opt)
    assert res.lower_bound <= opt + 1e-6
    # proved, so the search stopped on its own: not after 100,000 descents or at the 60 s limit
    assert res.stats.get("proved_early") in ("bound", "mip")
    assert int(res.stats["starts"]) <= 12  # type: ignore[call-overload]
    assert res.objective - res.lower_bound <= 1e-5 * res.objective + 1e-9


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_arc_mip_over_every_arc_is_the_optimum(seed: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, 8, 2, groups)
    ai, aj = np.repeat(np.arange(8), 8), np.tile(np.arange(8), 8)
    out = arc_mip(inst, ai, aj, time.perf_counter() + 30)
    assert out is not None
    assert inst.violations(*out) == []
    assert inst.objective(*out) == pytest.approx(brute(inst))


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.integers(10, 40), st.integers(2, 5), st.booleans())
def test_arc_mip_over_pool_arcs_uses_only_them_and_beats_every_plan(seed: int, n: int, p: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, n, p, groups)
    pool = ClusterPool(inst)
    plans = [f for r in range(3) if (f := construct(inst, np.random.default_rng([seed, r]), deadline=1e18)) is not None]
    assume(plans)
    for plan in plans[1:]:
        pool.add(*plan)
    ai, aj = pool_arcs(pool, *plans[0])  # the first plan only as the given plan, not in the pool
    seen = set(zip(ai.tolist(), aj.tolist()))
    assert len(seen) == len(ai)  # each arc once
    assert set(zip(range(n), plans[0][0][plans[0][1]].tolist())) <= seen
    for mem, site in zip(pool.members, pool.site):  # pool plans with each cluster at its best own site
        assert {(int(i), site) for i in mem} <= seen
    out = arc_mip(inst, ai, aj, time.perf_counter() + 30)
    assert out is not None
    sites, branch = out
    assert inst.violations(sites, branch) == []
    assert set(zip(range(n), sites[branch].tolist())) <= seen
    assert inst.objective(sites, branch) <= min(inst.objective(*pl) for pl in plans) + 1e-6


def test_arc_mip_needs_each_site_s_own_arc() -> None:
    inst = unit_or_grouped(1, 6, 2, False)
    with pytest.raises(ValueError, match="own arc"):
        arc_mip(inst, np.array([0, 1, 2]), np.array([0, 0, 1]), time.perf_counter() + 5)


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_search_with_arc_mips_is_valid_and_repeatable(seed: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, 60, 5, groups)
    runs = [solve_instance(inst, 60.0, seed, restarts=40, config=SearchConfig(
        local_kicks=True, swaps=True, reassign_mip=False, recombine=True, arc_mips=((0.0, 0.2), (1.0, 0.2)),
        fresh_every=7)) for _ in range(2)]
    assert runs[0] is not None and "arc_mip_seconds" in runs[0].stats  # a round ran (60 points solve to optimality well within 12 s)
    assert_valid_and_repeatable(inst, *runs)


@settings(max_examples=3, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_arc_mip_from_a_start_plan_is_never_worse_than_it(seed: int, groups: bool) -> None:
    n = 150
    inst = unit_or_grouped(seed, n, 12, groups)
    plan = construct(inst, np.random.default_rng(seed), deadline=1e18)
    assume(plan is not None)
    assert plan is not None
    ai, aj = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    # 22,500 arcs and half a second: far from solved, yet the start is HiGHS's incumbent from
    # the outset, so a plan at least as good comes back
    out = arc_mip(inst, ai, aj, time.perf_counter() + 0.5, start=plan[0][plan[1]])
    assert out is not None
    assert inst.violations(*out) == []
    assert inst.objective(*out) <= inst.objective(*plan) + 1e-6


def test_arc_mip_prints_nothing() -> None:
    """The benchmark prints one JSON object per line: HiGHS's banner must not reach stdout."""
    code = ("import time, numpy as np\n"
            "from geoalloc.solver.instance import Instance\n"
            "from geoalloc.solver.arcmip import arc_mip\n"
            "inst = Instance(xy=np.random.default_rng(0).random((9, 2)), demand=np.ones(9, dtype=np.int64), "
            "full=np.zeros(9, dtype=np.int64), weight=np.ones(9), p=3, max_size=3)\n"
            "ai, aj = np.repeat(np.arange(9), 9), np.tile(np.arange(9), 9)\n"
            "for _ in range(2):\n"
            "    assert arc_mip(inst, ai, aj, time.perf_counter() + 30) is not None\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == ""


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork here")
@settings(max_examples=3, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_portfolio_keeps_the_better_plan_and_the_higher_bound(seed: int, groups: bool) -> None:
    inst = unit_or_grouped(seed, 40, 4, groups)
    kwargs = {"restarts": 6, "config": SearchConfig(local_kicks=True, swaps=True, reassign_mip=False)}  # work-bounded
    both = _portfolio(inst, 60.0, seed, kwargs)
    one = solve_instance(inst, 60.0, seed, **kwargs)  # type: ignore[arg-type]
    two = solve_instance(inst, 60.0, seed * 7919 + 1, **kwargs)  # type: ignore[arg-type]
    assert both is not None and one is not None and two is not None
    assert inst.violations(both.sites, both.branch_of) == []
    assert both.objective == pytest.approx(min(one.objective, two.objective))
    assert both.objective == pytest.approx(inst.objective(both.sites, both.branch_of))
    assert both.lower_bound == pytest.approx(max(one.lower_bound, two.lower_bound))
    assert both.lower_bound <= both.objective + 1e-6


def test_a_portfolio_proof_is_a_proof() -> None:
    # seed 263 with groups: SCIP's default 1e-4 gap once called a plan 0.001% above the optimum
    # optimal, which ended the portfolio before the other search's better plan came back
    test_portfolio_keeps_the_better_plan_and_the_higher_bound.hypothesis.inner_test(263, True)  # type: ignore[attr-defined]
