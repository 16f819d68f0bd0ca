"""The compiled refinement of product districts (geoalloc.solver.globalphase.refine, engine._refine_round):
it never makes a plan worse or invalid under the lower limits, full members and families; a roster
with every rule goes through it and passes the one validator; the plan does not depend on the
number of workers; tiny instances still reach their brute-force optimum."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_domain_paths import rich_roster
from test_solver import brute_force, check_rules

from geoalloc.engines import LocalEngine
from geoalloc.pipeline import allocate
from geoalloc.rules import Policy, check_plan
from geoalloc.solver import Problem, form_branches, textbook
from geoalloc.solver.construct import construct
from geoalloc.solver.engine import Work, _refine_round
from geoalloc.solver.instance import Instance
from geoalloc.solver.search import improve
from geoalloc.solver.work import Meter

FAR = 1e18  # no deadline: the work decides


def district(seed: int, n: int, p: int, slack: float, groups: bool, min_full: int) -> Instance:
    """Members in a few blobs (a district's estates), some families, most members full."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 8000, (max(2, p // 3), 2))
    xy = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 700, (n, 2))
    demand = np.where(rng.random(n) < (0.12 if groups else 0.0), rng.integers(2, 4, n), 1)
    full = np.where(rng.random(n) < 0.85, demand, np.where(demand > 1, 1, 0))
    cap = max(int(demand.max()), int(np.ceil(demand.sum() / p * slack)))
    return Instance(xy=xy, demand=demand, full=full, weight=demand.astype(np.float64), p=p, max_size=cap,
                    min_size=3, min_full=min_full)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.sampled_from([1.02, 1.1, 1.3]), st.booleans(), st.sampled_from([0, 3]))
def test_the_refinement_never_makes_a_plan_worse_or_invalid(seed: int, slack: float, groups: bool,
                                                              min_full: int) -> None:
    inst = district(seed, 160, 8, slack, groups, min_full)
    rng = np.random.default_rng(seed)
    first = construct(inst, rng, FAR)
    if first is None:
        return  # no first plan under these limits: nothing to refine
    sites, branch, _ = improve(inst, first[0], first[1], rng, FAR, {})
    assert inst.violations(sites, branch) == []
    before = inst.objective(sites, branch)
    stats: dict[str, object] = {}
    work = Work(starts=1, search=1.0, bound_iters=25, ceiling=FAR)
    out, settled = _refine_round(inst, (sites, branch, before), work, Meter(work.search),
                                 np.random.default_rng(seed + 1), FAR, None, stats)
    assert not settled or out[2] < before  # only a plan of its own descent can be settled
    assert inst.violations(out[0], out[1]) == []
    assert out[2] == pytest.approx(inst.objective(out[0], out[1]), rel=1e-12)
    assert out[2] <= before + 1e-9
    refine = stats["refine"]
    assert isinstance(refine, dict) and refine["kicks"] > 0 and refine["gain"] == pytest.approx(before - out[2], abs=1e-3)


def _refining(monkeypatch: pytest.MonkeyPatch) -> None:
    """Districts of a test's size go through the refinement (the product's threshold is larger)."""
    monkeypatch.setattr(textbook, "REFINE_MIN_N", 40)


def _units_refined(units: list[dict[str, object]]) -> int:
    return sum(1 for u in units if "refine" in u)


def test_a_roster_with_every_rule_through_the_refinement_passes_the_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    _refining(monkeypatch)
    members = rich_roster(260, seed=4)
    policy = Policy(time_limit=2.0, seed=3, themes="all")
    res = allocate(members, policy, engine=LocalEngine(1))
    v = check_plan(members, res.assignments, policy, res.branches)
    assert v.total == 0, v.describe()
    assert _units_refined(res.solution.stats["units"]) >= 1
    # families stay together (the validator checks it too; here from the assignment itself)
    placed = res.assignments[res.assignments["branch_id"].astype(str) != ""][["member_id", "branch_id"]]
    fam = members[members["group_id"] != ""][["member_id", "group_id"]].merge(placed, on="member_id")
    assert len(fam) and (fam.groupby("group_id")["branch_id"].nunique() == 1).all()


def two_big_districts(seed: int = 2) -> Problem:
    rng = np.random.default_rng(seed)
    n_a, n_b = 180, 140
    xy = np.vstack([rng.normal(0, 1500, (n_a, 2)), rng.normal((9000, 0), 1200, (n_b, 2))])
    full = (rng.random(n_a + n_b) < 0.9).astype(np.int64)
    return Problem(xy=xy, full=full, region=np.array([0] * n_a + [1] * n_b), region_names=["南山区", "福田区"])


def test_the_refined_plan_is_the_same_on_one_worker_and_on_two(monkeypatch: pytest.MonkeyPatch) -> None:
    _refining(monkeypatch)  # forked workers inherit the patch
    problem, policy = two_big_districts(), Policy(time_limit=20.0, seed=5)  # a budget with kicks
    one = form_branches(problem, policy, engine=LocalEngine(1))
    two = form_branches(problem, policy, engine=LocalEngine(2))
    refined = [u["refine"] for u in one.stats["units"]]
    assert all(r["kicks"] > 0 for r in refined) and any(r["gain"] > 0 for r in refined)
    check_rules(problem, policy, one)
    assert np.array_equal(one.branch_of, two.branch_of)
    assert np.array_equal(one.site_xy, two.site_xy)
    assert one.objective == two.objective


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000), st.integers(6, 8), st.integers(2, 3))
def test_tiny_instances_through_the_refinement_reach_the_brute_force_optimum(seed: int, n: int, p: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(textbook, "REFINE_MIN_N", 0)
        rng = np.random.default_rng(seed)
        problem = Problem(xy=rng.uniform(0, 1000, size=(n, 2)), full=(rng.random(n) < 0.8).astype(int))
        policy = Policy(min_size=1, max_size=int(np.ceil(n / p)) + 1, min_full=1, n_branches=p, seed=seed,
                        time_limit=5)
        best = brute_force(problem, policy, p)
        if not np.isfinite(best):
            return
        sol = form_branches(problem, policy)
        check_rules(problem, policy, sol)
        assert sol.objective == pytest.approx(best, rel=1e-9, abs=1e-6)
        assert _units_refined(sol.stats["units"]) == 1


def test_it_refines_product_districts_whose_sites_are_points_only() -> None:
    inst = district(1, 120, 4, 1.2, False, 3)
    assert not textbook.refines(inst)  # below REFINE_MIN_N
    big = district(1, 500, 12, 1.2, True, 3)
    assert textbook.refines(big)
    from dataclasses import replace

    assert not textbook.refines(replace(big, cand_xy=big.xy[:40].copy()))  # given sites: the general search
    assert not textbook.refines(replace(big, p=5))  # 100 points a branch: too large for its moves
