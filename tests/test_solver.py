"""Branch formation: rules held on random instances, optimality on tiny ones, clear infeasibility."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoalloc.rules import Policy
from geoalloc.solver import (
    InfeasibleError,
    Problem,
    Solution,
    assign_to_sites,
    form_branches,
    lower_bound,
    solve_cpmp,
)

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_rules(problem: Problem, policy: Policy, sol: Solution) -> None:
    """Every rule the issue lists, checked from scratch."""
    assert problem.demand is not None and problem.full is not None and problem.region is not None
    k = sol.n_branches
    assert sol.branch_of.shape == (problem.n,)
    assert ((sol.branch_of >= 0) & (sol.branch_of < k)).all(), "every member assigned exactly once"
    size = np.bincount(sol.branch_of, weights=problem.demand, minlength=k)
    full = np.bincount(sol.branch_of, weights=problem.full, minlength=k)
    assert (size <= policy.max_size).all() and (size >= policy.min_size).all()
    assert (full >= policy.min_full).all()
    assert sol.joint is not None and len(sol.joint) == k
    if not policy.cross_district:
        for b in range(k):
            regions = set(problem.region[sol.branch_of == b].tolist())
            assert len(regions) == 1 or sol.joint[b], "only joint branches may mix districts"
    site = sol.site_xy[sol.branch_of]
    recomputed = float((problem.demand * np.hypot(*(problem.xy - site).T)).sum())
    assert sol.objective == pytest.approx(recomputed, rel=1e-9, abs=1e-6)
    assert sol.lower_bound <= sol.objective + 1e-6
    own = sol.site_member >= 0
    assert (sol.branch_of[sol.site_member[own]] == np.nonzero(own)[0]).all(), "a site's member is in its branch"


@st.composite
def instances(draw: st.DrawFn) -> tuple[Problem, Policy]:
    n = draw(st.integers(4, 28))
    n_regions = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 5000, size=(n_regions, 2))
    region = rng.integers(0, n_regions, size=n)
    xy = centres[region] + rng.normal(0, 600, size=(n, 2))
    demand = np.where(rng.random(n) < 0.15, 2, 1)
    full = np.where(rng.random(n) < 0.85, demand, 0)
    min_size = draw(st.integers(1, 3))
    max_size = draw(st.integers(max(min_size, 4), 9))
    min_full = draw(st.integers(0, min(2, max_size)))
    cross = draw(st.booleans())
    problem = Problem(xy=xy, demand=demand, full=full, region=region,
                      region_names=[f"R{r}" for r in range(n_regions)])
    policy = Policy(min_size=min_size, max_size=max_size, min_full=min_full, cross_district=cross,
                    time_limit=5.0, seed=seed)
    return problem, policy


@FAST
@given(instances())
def test_random_instances_keep_every_rule(case: tuple[Problem, Policy]) -> None:
    problem, policy = case
    try:
        sol = form_branches(problem, policy)
    except InfeasibleError as err:
        assert err.conflicts
        names = set(problem.region_names) | {"all"}
        for c in err.conflicts:
            assert any(part in names for part in c.region.split("+")), c.region
            assert c.limit and c.detail
        return
    check_rules(problem, policy, sol)


def brute_force(problem: Problem, policy: Policy, p: int) -> float:
    """Optimum over every choice of p member sites and every assignment (tiny instances only)."""
    assert problem.demand is not None and problem.full is not None
    n = problem.n
    best = np.inf
    d = np.hypot(*(problem.xy[:, None, :] - problem.xy[None, :, :]).transpose(2, 0, 1))
    for sites in itertools.combinations(range(n), p):
        rest = [i for i in range(n) if i not in sites]
        for choice in itertools.product(range(p), repeat=len(rest)):
            br = np.empty(n, dtype=int)
            br[list(sites)] = range(p)
            br[rest] = choice
            size = np.bincount(br, weights=problem.demand, minlength=p)
            full = np.bincount(br, weights=problem.full, minlength=p)
            if (size > policy.max_size).any() or (size < policy.min_size).any() or (full < policy.min_full).any():
                continue
            cost = float((problem.demand * d[np.arange(n), np.array(sites)[br]]).sum())
            best = min(best, cost)
    return best


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 8), st.integers(2, 3))
def test_tiny_instances_reach_the_brute_force_optimum(seed: int, n: int, p: int) -> None:
    rng = np.random.default_rng(seed)
    problem = Problem(xy=rng.uniform(0, 1000, size=(n, 2)), full=(rng.random(n) < 0.8).astype(int))
    policy = Policy(min_size=1, max_size=int(np.ceil(n / p)) + 1, min_full=1, n_branches=p, seed=seed, time_limit=5)
    best = brute_force(problem, policy, p)
    try:
        sol = form_branches(problem, policy)
    except InfeasibleError:
        assert not np.isfinite(best)
        return
    check_rules(problem, policy, sol)
    assert sol.objective == pytest.approx(best, rel=1e-9, abs=1e-6)


def two_districts(n_a: int = 30, n_b: int = 2, seed: int = 1) -> Problem:
    rng = np.random.default_rng(seed)
    xy = np.vstack([rng.normal(0, 500, (n_a, 2)), rng.normal((3000, 0), 300, (n_b, 2))])
    region = np.array([0] * n_a + [1] * n_b)
    return Problem(xy=xy, region=region, region_names=["南山区", "大鹏新区"])


def test_small_district_gets_a_flagged_joint_branch() -> None:
    problem = two_districts()
    sol = form_branches(problem, Policy(min_size=3, max_size=10))
    check_rules(problem, Policy(min_size=3, max_size=10), sol)
    assert sol.joint is not None and sol.joint.any()
    assert any("大鹏新区" in note and "joint" in note for note in sol.notes)


def test_infeasible_max_size_names_district_and_limit() -> None:
    problem = two_districts(40, 40)
    with pytest.raises(InfeasibleError) as err:
        form_branches(problem, Policy(max_size=10, n_branches=5))
    assert err.value.conflicts[0].limit == "max_size"
    assert "5" in str(err.value)


def test_too_few_full_members_is_reported() -> None:
    problem = Problem(xy=np.random.default_rng(0).normal(0, 100, (20, 2)), full=np.array([1, 1] + [0] * 18),
                      region_names=["福田区"], region=np.zeros(20, dtype=int))
    with pytest.raises(InfeasibleError) as err:
        form_branches(problem, Policy(min_full=3))
    c = err.value.conflicts[0]
    assert c.region == "福田区" and c.limit == "min_full"


def test_too_many_branches_for_min_size_is_reported() -> None:
    problem = Problem(xy=np.random.default_rng(0).normal(0, 100, (20, 2)), region_names=["罗湖区"],
                      region=np.zeros(20, dtype=int))
    with pytest.raises(InfeasibleError) as err:
        form_branches(problem, Policy(min_size=3, min_full=0, n_branches=7))
    assert err.value.conflicts[0].region == "罗湖区" and err.value.conflicts[0].limit == "min_size"


def test_group_larger_than_max_size_is_reported() -> None:
    problem = Problem(xy=np.zeros((3, 2)) + [[0, 0], [1, 0], [2, 0]], demand=np.array([60, 1, 1]))
    with pytest.raises(InfeasibleError, match="group of 60"):
        form_branches(problem, Policy())


def test_same_seed_same_plan_and_groups_stay_whole() -> None:
    rng = np.random.default_rng(3)
    n = 120
    demand = np.where(rng.random(n) < 0.1, 4, 1)
    problem = Problem(xy=rng.uniform(0, 8000, (n, 2)), demand=demand, region=rng.integers(0, 2, n),
                      region_names=["A", "B"])
    # a limit far too small for the planned starts: the work budget, not the clock, ends them, so
    # the plan repeats (a search the clock cut would not, and the plan would say so: clock_cut)
    policy = Policy(min_size=3, max_size=20, min_full=0, seed=7, time_limit=0.05)
    a, b = form_branches(problem, policy), form_branches(problem, policy)
    assert a.stats["engine"]["clock_cut"] == 0 and b.stats["engine"]["clock_cut"] == 0
    assert np.array_equal(a.branch_of, b.branch_of) and a.objective == b.objective
    check_rules(problem, policy, a)


def test_branch_counts_follow_policy() -> None:
    rng = np.random.default_rng(5)
    problem = Problem(xy=rng.uniform(0, 8000, (120, 2)), region=np.array([0] * 90 + [1] * 30),
                      region_names=["A", "B"])
    fewest = form_branches(problem, Policy(max_size=50, n_branches="fewest"))
    assert fewest.n_branches == 3  # ceil(90/50) + ceil(30/50)
    assert fewest.stats["branch_rule"].startswith("fewest")
    default = form_branches(problem, Policy(max_size=50))  # mean size 80% of max: ceil(90/40) + ceil(30/40)
    assert default.n_branches == 4 and default.stats["branch_rule"].startswith("target")
    assert np.bincount(default.site_region).tolist() == [3, 1]
    assert form_branches(problem, Policy(max_size=50, target_size=10)).n_branches == 12  # 9 + 3
    sol = form_branches(problem, Policy(max_size=50, n_branches=10))
    assert sol.n_branches == 10
    assert np.bincount(sol.site_region).tolist() == [7, 3]  # 2 + 1 fewest, the rest to the fullest branches


def test_default_count_leaves_room_but_keeps_limits() -> None:
    """80% of max_size, rounded up, and never outside what min_size / min_full allow."""
    rng = np.random.default_rng(6)
    # 12 members, 4 full: the target (ceil(12 / 4) = 3 at max_size 5) and min_full 2 allow only 2
    problem = Problem(xy=rng.uniform(0, 3000, (12, 2)), full=np.array([1] * 4 + [0] * 8))
    sol = form_branches(problem, Policy(min_size=1, max_size=6, min_full=2))
    assert sol.n_branches == 2
    with pytest.raises(ValueError, match="fewest"):
        Policy(n_branches="few")  # type: ignore[arg-type]


def test_assign_to_sites_respects_limits_and_districts() -> None:
    rng = np.random.default_rng(2)
    problem = Problem(xy=rng.uniform(0, 5000, (60, 2)), region=np.array([0] * 40 + [1] * 20),
                      region_names=["A", "B"])
    policy = Policy(min_size=5, max_size=15)
    sites = np.array([0, 1, 2, 3, 40, 41])
    branch_of, cost = assign_to_sites(problem, sites, policy)
    size = np.bincount(branch_of, minlength=6)
    assert (size >= 5).all() and (size <= 15).all()
    assert (problem.region == problem.region[sites][branch_of]).all()
    assert cost == pytest.approx(float(np.hypot(*(problem.xy - problem.xy[sites][branch_of]).T).sum()))
    penalty = np.zeros((60, 6))
    penalty[:, 0] = np.inf  # nobody may join site 0 but its own member
    penalty[0, 0] = 0.0
    br2, _ = assign_to_sites(problem, sites, Policy(min_size=1, max_size=15, min_full=0), penalty)
    assert (br2 == 0).sum() == 1
    sol = form_branches(problem, policy)
    assert lower_bound(problem, policy) <= sol.objective + 1e-6


def test_cpmp_tiny_matches_brute_force() -> None:
    rng = np.random.default_rng(11)
    xy = rng.integers(0, 100, (8, 2)).astype(float)
    demand = rng.integers(1, 6, 8)
    sol = solve_cpmp(xy, demand, 12, 3, dist="floor", time_limit=5)
    best = np.inf
    d = np.floor(np.hypot(*(xy[:, None] - xy[None]).transpose(2, 0, 1)))
    for sites in itertools.combinations(range(8), 3):
        rest = [i for i in range(8) if i not in sites]
        for choice in itertools.product(range(3), repeat=5):
            br = np.empty(8, dtype=int)
            br[list(sites)] = range(3)
            br[rest] = choice
            if (np.bincount(br, weights=demand, minlength=3) > 12).any():
                continue
            best = min(best, d[np.arange(8), np.array(sites)[br]].sum())
    assert sol.objective == pytest.approx(best)
    assert sol.lower_bound <= sol.objective
    assert (np.bincount(sol.branch_of, weights=demand) <= 12).all()


def test_given_candidate_sites_are_used_and_kept_per_district() -> None:
    rng = np.random.default_rng(8)
    xy = np.vstack([rng.normal(0, 800, (40, 2)), rng.normal((6000, 0), 800, (30, 2))])
    region = np.array([0] * 40 + [1] * 30)
    cand = np.array([[0, 0], [500, 500], [-500, 0], [6000, 0], [6500, 300], [5500, -300]], dtype=float)
    problem = Problem(xy=xy, region=region, region_names=["A", "B"], candidate_xy=cand,
                      candidate_region=np.array([0, 0, 0, 1, 1, 1]))
    policy = Policy(min_size=3, max_size=25, min_full=0)
    sol = form_branches(problem, policy)
    check_rules(problem, policy, sol)
    assert (sol.site_member == -1).all()
    assert all(any(np.allclose(s, c) for c in cand) for s in sol.site_xy)
    assert (sol.site_region[sol.branch_of] == region).all()
    few = Problem(xy=xy, region=region, region_names=["A", "B"], candidate_xy=cand[:4],
                  candidate_region=np.array([0, 0, 0, 1]))
    with pytest.raises(InfeasibleError, match="candidate"):
        form_branches(few, Policy(min_size=3, max_size=25, min_full=0))
    br, cost = assign_to_sites(problem, cand[[0, 1, 3, 4]], policy, site_region=[0, 0, 1, 1])
    assert (np.bincount(br, minlength=4) <= 25).all()
    assert (region == np.array([0, 0, 1, 1])[br]).all()


def test_small_units_get_more_starts_within_limits() -> None:
    from geoalloc.solver.form import MAX_RESTARTS, RESTARTS, restarts_for

    counts = [restarts_for(n) for n in (1, 50, 128, 227, 293, 552, 600, 1463, 20_000)]
    assert counts == sorted(counts, reverse=True)  # fewer starts as units grow
    assert counts[0] == MAX_RESTARTS and counts[-1] == RESTARTS
    assert all(RESTARTS <= c <= MAX_RESTARTS for c in counts)


def test_unit_budgets_depend_on_the_unit_size_and_the_policy_only() -> None:
    """The sample's district sizes under a 5 s limit: budgets grow with size up to the ceiling,
    the small districts (坪山区, 盐田区, 大鹏新区) get the floor, and on two workers the
    sample's units still end within the limit (the sum of budgets over two workers)."""
    from geoalloc.solver.form import FULL_BUDGET_POINTS, LIMIT_SHARE, MIN_UNIT_SHARE, unit_budget

    policy = Policy(time_limit=5.0)
    sizes = [1463, 1178, 1148, 829, 797, 552, 293, 227, 128, 51]
    budgets = np.array([unit_budget(n, policy) for n in sizes])
    assert (np.diff(budgets) <= 0).all()
    floor, ceiling = MIN_UNIT_SHARE * 5.0, LIMIT_SHARE * 5.0
    small = np.array(sizes) * ceiling / FULL_BUDGET_POINTS < floor
    assert small.sum() == 3 and np.allclose(budgets[small], floor)
    assert np.allclose(budgets[~small] / budgets[0], np.array(sizes)[~small] / sizes[0])
    assert unit_budget(10 * FULL_BUDGET_POINTS, policy) == pytest.approx(ceiling)
    assert budgets.sum() / 2 < 5.0
