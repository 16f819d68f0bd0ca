"""The large-neighbourhood search: its sub-MIP is exact (the brute-force optimum when it is given
the whole instance), a step never makes a plan worse or invalid under every rule an instance can
carry (groups, min/max size, full members, given candidate sites), the search is repeatable, and
a roster's plan does not depend on how many worker processes solve its districts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_solver_parts import brute_plan, make

from geoalloc.rules import Policy
from geoalloc.solver import Problem, form
from geoalloc.solver.construct import construct
from geoalloc.solver.engine import SearchConfig, solve_instance
from geoalloc.solver.instance import Instance
from geoalloc.solver.lns import LnsConfig, _members, lns, lns_step

WIDE = LnsConfig(points=10_000, clusters=10, max_clusters=10, site_shortlist=10_000, arcs_per_point=10_000,
                 node_limit=100_000, sub_seconds=60.0)


def ruled(seed: int, n: int, p: int, *, groups: bool, sites: bool) -> Instance:
    """An instance with every rule on: lower and upper sizes, full members, maybe groups and
    given candidate sites."""
    rng = np.random.default_rng(seed)
    demand = rng.integers(1, 4, n) if groups else np.ones(n, dtype=np.int64)
    full = np.where(rng.random(n) < 0.7, demand, 0)
    cap = int(np.ceil(demand.sum() / p * 1.3)) + int(demand.max())
    cand = rng.uniform(0, 1000, (max(p + 3, n // 3), 2)) if sites else None
    return Instance(xy=rng.uniform(0, 1000, (n, 2)), demand=demand, full=full, weight=demand.astype(float), p=p,
                    max_size=cap, min_size=2, min_full=1, cand_xy=cand)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_sub_mip_over_the_whole_instance_finds_the_brute_force_optimum(seed: int, groups: bool) -> None:
    inst = make(seed, 7, 2, groups=groups, min_full=1)
    opt, _, _ = brute_plan(inst)
    plan = construct(inst, np.random.default_rng(seed), deadline=1e18)
    if plan is None:
        return
    sites, branch = plan
    out = lns_step(inst, sites, branch, np.arange(inst.p), _members(branch, inst.p), WIDE, None, 1e18)
    best = inst.objective(sites, branch) if out is None else inst.objective(out[0], out[1])
    assert best == pytest.approx(opt, rel=1e-9, abs=1e-6)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.booleans())
def test_a_step_never_makes_a_plan_worse_or_invalid(seed: int, groups: bool, sites: bool) -> None:
    inst = ruled(seed, 60, 6, groups=groups, sites=sites)
    plan = construct(inst, np.random.default_rng(seed), deadline=1e18)
    if plan is None:
        return
    s, b = plan
    assert inst.violations(s, b) == []
    from scipy.spatial import cKDTree

    cand_tree = None if inst.self_serve else cKDTree(inst.cand_xy)
    for seed_b in range(inst.p):
        value = inst.objective(s, b)
        cfg = LnsConfig(points=25, clusters=2, max_clusters=4, arcs_per_point=5, site_shortlist=4)
        from geoalloc.solver.lns import neighbourhood

        clusters = neighbourhood(inst, s, _members(b, inst.p), seed_b, cfg, cfg.points, cKDTree(inst.sites_xy[s]))
        out = lns_step(inst, s, b, clusters, _members(b, inst.p), cfg, cand_tree, 1e18)
        if out is not None:
            s2, b2, gain = out
            assert inst.violations(s2, b2) == []
            assert gain > 0
            assert inst.objective(s2, b2) == pytest.approx(value - gain)
            # only the freed clusters changed
            moved = (b2 != b) | (s2[b2] != s[b])
            assert set(b[moved].tolist()) <= set(clusters.tolist())
            s, b = s2, b2
        assert inst.objective(s, b) <= value + 1e-9


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.booleans())
def test_the_search_is_valid_never_worse_and_repeatable(seed: int, groups: bool, sites: bool) -> None:
    inst = ruled(seed, 80, 8, groups=groups, sites=sites)
    plan = construct(inst, np.random.default_rng(seed), deadline=1e18)
    if plan is None:
        return
    runs = []
    for _ in range(2):
        stats: dict[str, object] = {}
        s, b, settled = lns(inst, plan[0], plan[1], np.random.default_rng(seed), 1e18, stats,
                            LnsConfig(points=30, clusters=2))
        assert settled  # no deadline: it ran until a pass at the grown size found nothing
        runs.append((s, b))
        assert inst.violations(s, b) == []
        assert inst.objective(s, b) <= inst.objective(*plan) + 1e-9
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_solve_instance_with_the_lns_is_valid_and_repeatable() -> None:
    inst = ruled(3, 150, 10, groups=False, sites=True)
    cfg = SearchConfig(lns=LnsConfig(points=40, clusters=2))
    runs = [solve_instance(inst, 60.0, 3, restarts=3, config=cfg) for _ in range(2)]
    assert runs[0] is not None and runs[1] is not None
    assert "lns_steps" in runs[0].stats
    assert inst.violations(runs[0].sites, runs[0].branch_of) == []
    assert runs[0].objective == runs[1].objective
    assert np.array_equal(runs[0].branch_of, runs[1].branch_of)
    assert runs[0].lower_bound <= runs[0].objective + 1e-6


def test_a_roster_plan_does_not_depend_on_the_number_of_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(11)
    n = 360
    problem = Problem(xy=rng.uniform(0, 6000, (n, 2)), region=rng.integers(0, 3, n), region_names=["A", "B", "C"])
    policy = Policy(min_size=3, max_size=20, min_full=0, time_limit=120, seed=4)  # work, not the clock, ends it
    monkeypatch.setattr(form, "PARALLEL_MIN_MEMBERS", 0)
    plans = []
    for cores in (1, 2, 3):
        monkeypatch.setattr(form.os, "cpu_count", lambda c=cores: c)
        plans.append(form.form_branches(problem, policy))
    for other in plans[1:]:
        assert np.array_equal(plans[0].branch_of, other.branch_of)
        assert plans[0].objective == other.objective


def test_the_lns_is_only_used_where_a_few_clusters_make_a_small_sub_problem() -> None:
    cfg = LnsConfig()
    assert cfg.fits(1463, 37)  # a district's branches of about 40
    assert not cfg.fits(5000, 12)  # clusters of about 400: a sub-MIP of two would hold 800 points
    assert not cfg.fits(50, 1)
    inst = ruled(5, 200, 2, groups=False, sites=False)  # two clusters of 100: no LNS
    res = solve_instance(inst, 60.0, 5, restarts=2, config=SearchConfig(lns=LnsConfig()))
    assert res is not None and "lns_steps" not in res.stats
