"""Rebalancing: limits fixed, few moves, frozen members and branches untouched, hard budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geoalloc.model import MoveReason
from geoalloc.rules import Policy
from geoalloc.plan_diff import diff_plans, violations
from geoalloc.rules import check_plan
from geoalloc.solver.rebalance import assign_min_cost, rebalance

POLICY = Policy(min_size=3, max_size=12, min_full=2)
EMPTY = pd.DataFrame(columns=["member_id", "branch_id"])
CENTRES = {"南山区": (113.93, 22.53), "福田区": (114.05, 22.54)}


def make_roster(n: int, seed: int = 0, prefix: str = "m") -> pd.DataFrame:
    """Members around two district centres (about 2 km spread), 80% full members."""
    rng = np.random.default_rng(seed)
    names = list(CENTRES)
    d = rng.integers(0, len(names), n)
    lon = np.array([CENTRES[names[k]][0] for k in d]) + rng.normal(0, 0.02, n)
    lat = np.array([CENTRES[names[k]][1] for k in d]) + rng.normal(0, 0.02, n)
    return pd.DataFrame(
        {
            "member_id": [f"{prefix}{i}" for i in range(n)],
            "lon": lon,
            "lat": lat,
            "district_zh": [names[k] for k in d],
            "full_member": (rng.random(n) < 0.8).astype(int),
            "status": "active",
        }
    )


@pytest.fixture(scope="module")
def base() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    members = make_roster(240, seed=1)
    r = rebalance(members, EMPTY, POLICY, certify=False)
    return members, r.assignments, r.branches


def _within_limits(branches: pd.DataFrame, policy: Policy = POLICY) -> bool:
    return violations(branches, policy)["total"] == 0


def _perturb(members: pd.DataFrame, seed: int, move: int = 25, leave: int = 10, join: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    m = members.copy()
    movers = rng.choice(len(m), move, replace=False)
    other = rng.choice(len(m), move)
    m.loc[movers, ["lon", "lat", "district_zh"]] = m.loc[other, ["lon", "lat", "district_zh"]].to_numpy()
    m.loc[movers, "lon"] += 0.003
    leavers = rng.choice(np.setdiff1d(np.arange(len(m)), movers), leave, replace=False)
    m.loc[leavers, "status"] = "transfer_out"
    new = make_roster(join, seed=seed + 100, prefix="n")
    return pd.concat([m, new], ignore_index=True)


def test_from_empty_current_assigns_everyone_within_limits(base):
    members, a, b = base
    assert (a["branch_id"] != "").all()
    assert _within_limits(b)
    # no branch crosses a district line
    joined = a.merge(b[["branch_id", "district_zh"]], on="branch_id", suffixes=("", "_b"))
    assert (joined["district_zh"] == joined["district_zh_b"]).all()


def test_unchanged_roster_gives_zero_moves(base):
    members, a, b = base
    # members who left long ago (listed, no branch) do not count as a change
    gone = make_roster(3, seed=99, prefix="gone")
    gone["status"] = "transfer_out"
    members = pd.concat([members, gone], ignore_index=True)
    a = pd.concat([a, pd.DataFrame({"member_id": gone["member_id"], "branch_id": ""})], ignore_index=True)
    for kwargs in ({}, {"current_branches": b}, {"max_moves": 5}):
        r = rebalance(members, a, POLICY, certify=False, **kwargs)
        assert len(r.moves) == 0, kwargs
        assert r.report["moved"] == 0 and r.report["removed"] == 0
        assert "unchanged roster: current plan kept" in r.report["notes"]
        merged = a.merge(r.assignments, on="member_id")
        assert (merged["branch_id_x"] == merged["branch_id_y"]).all()


def test_changes_are_fixed_with_few_moves_and_reasons(base):
    members, a, b = base
    m2 = _perturb(members, seed=3)
    r = rebalance(m2, a, POLICY, current_branches=b, certify=False)
    assert _within_limits(r.branches)
    active = m2["status"] == "active"
    got = r.assignments.set_index("member_id")["branch_id"]
    assert (got[m2.loc[active, "member_id"]] != "").all()
    assert (got[m2.loc[~active, "member_id"]] == "").all()  # leavers removed
    assert set(r.moves["reason"]) <= {x.value for x in MoveReason}
    # the moves frame is exactly the existing active members whose branch changed
    d = diff_plans(a, r.assignments)
    existing = d[(d["from_branch"] != "") & (d["to_branch"] != "")]
    assert set(existing["member_id"]) == set(r.moves["member_id"])
    rep = r.report
    assert rep["joined"] == 30 and rep["removed"] == 10
    assert rep["moved"] <= 1.5 * (rep["relocated"] + rep["joined"])
    for key in ("plan_id", "parent_plan_id", "policy", "objective_m", "lower_bound_m", "gap", "distance_before",
                "distance_after", "size_histogram_before", "size_histogram_after", "violations_before",
                "violations_after", "moves_by_reason"):
        assert key in rep
    assert rep["lower_bound_m"] <= rep["objective_m"]


def test_frozen_members_and_branches_never_change(base):
    members, a, b = base
    m2 = _perturb(members, seed=5, move=40)
    rng = np.random.default_rng(5)
    frozen_ids = set(rng.choice(members["member_id"], 40, replace=False))
    m2["frozen"] = m2["member_id"].isin(frozen_ids).astype(int)
    fb = set(b["branch_id"].iloc[:2])
    for kwargs in ({}, {"move_penalty_m": 0.0}, {"max_moves": 4}):
        r = rebalance(m2, a, POLICY, frozen_branches=fb, current_branches=b, certify=False, **kwargs)
        old = a.set_index("member_id")["branch_id"]
        new = r.assignments.set_index("member_id")["branch_id"]
        active_frozen = m2.loc[(m2["frozen"] == 1) & (m2["status"] == "active"), "member_id"]
        assert (new[active_frozen] == old[active_frozen]).all(), kwargs
        for bid in fb:
            stay = set(old[old == bid].index) & set(m2.loc[m2["status"] == "active", "member_id"])
            assert set(new[new == bid].index) == stay, (bid, kwargs)


@pytest.mark.parametrize("budget", [0, 1, 5, 20])
def test_move_budget_is_never_exceeded(base, budget):
    members, a, b = base
    m2 = _perturb(members, seed=7, move=40, leave=15)
    r = rebalance(m2, a, POLICY, max_moves=budget, current_branches=b, certify=False)
    assert len(r.moves) <= budget
    assert r.report["moved"] <= budget
    if r.report["violations_after"]["total"]:
        assert any("budget" in n for n in r.report["notes"])


def test_oversized_branch_is_split_and_undersized_fixed():
    members = make_roster(120, seed=11)
    # a bad current plan: everyone of a district in one branch except 2 members in a tiny branch
    cur = pd.DataFrame({"member_id": members["member_id"], "branch_id": members["district_zh"] + "-001"})
    tiny = members.index[members["district_zh"] == "南山区"][:2]
    cur.loc[tiny, "branch_id"] = "南山区-002"
    r = rebalance(members, cur, POLICY, certify=False)
    assert r.report["violations_before"]["over_max"] == 2
    assert r.report["violations_before"]["under_min"] == 1
    assert _within_limits(r.branches)
    assert r.report["moves_by_reason"]["oversized"] > 0


def test_new_district_opens_a_branch(base):
    members, a, b = base
    new = make_roster(20, seed=9, prefix="x")
    new["district_zh"] = "罗湖区"
    new["lon"], new["lat"] = 114.13 + new["lon"] * 0, 22.55 + np.linspace(0, 0.01, 20)
    r = rebalance(pd.concat([members, new], ignore_index=True), a, POLICY, current_branches=b, certify=False)
    luohu = r.branches[r.branches["district_zh"] == "罗湖区"]
    assert len(luohu) >= 2 and luohu["size"].sum() == 20
    assert len(r.moves) == 0  # nobody else had to move
    assert _within_limits(r.branches)


def test_bad_input_names_the_row_and_unplaced_members_are_listed():
    members = make_roster(10)
    members.loc[7, "member_id"] = "m3"
    with pytest.raises(ValueError, match=r"row 9: member_id 'm3' is duplicated"):
        rebalance(members, EMPTY, POLICY)
    # an active member without a point is kept and listed, as allocate lists it
    members = make_roster(10)
    members.loc[4, "lon"] = np.nan
    r = rebalance(members, EMPTY, POLICY, certify=False)
    assert r.assignments.set_index("member_id").loc["m4", "branch_id"] == ""
    assert {"member_id": "m4", "status": "active", "reason": "not_located"} in r.report["unassigned"]
    with pytest.raises(ValueError, match="max_moves"):
        rebalance(make_roster(10), EMPTY, POLICY, max_moves=-1)


def test_min_cost_flow_respects_limits_exactly():
    # 6 members, 2 sites, all arcs: cheapest is all at site 0, but max 4 and min 2 force a split
    n = 6
    am = np.repeat(np.arange(n), 2)
    asite = np.tile([0, 1], n)
    cost = np.where(asite == 0, 1, 100)
    site_of, total = assign_min_cost(am, asite, cost, np.ones(n, np.int64), np.array([2, 2]), np.array([4, 4]),
                                     np.array([1, 1]))
    assert np.bincount(site_of).tolist() == [4, 2]
    assert total == 4 * 1 + 2 * 100


def test_budget_too_small_to_fix_everything_says_so():
    members = make_roster(120, seed=11)
    cur = pd.DataFrame({"member_id": members["member_id"], "branch_id": members["district_zh"] + "-001"})
    calls: list[tuple[str, float]] = []
    r = rebalance(members, cur, POLICY, max_moves=2, certify=False, progress=lambda s, f: calls.append((s, f)))
    assert len(r.moves) <= 2
    assert r.report["violations_after"]["total"] > 0
    assert r.report["budget"]["budget_met_all_fixes"] is False
    assert any("could not fix every limit violation" in n for n in r.report["notes"])
    assert calls and all(0.0 <= f <= 1.0 for _, f in calls)


from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 1000),
    n_labels=st.integers(1, 12),
    budget=st.one_of(st.none(), st.integers(0, 40)),
    n_frozen=st.integers(0, 10),
)
# found by CI: the regions' own move count said 18 while the plan really moved 30
@example(seed=216, n_labels=10, budget=18, n_frozen=1)
def test_any_current_plan_any_budget(seed, n_labels, budget, n_frozen):
    """Random (often broken) current plans: the budget holds, frozen members stay, and with no
    budget every limit is met (these rosters always allow it)."""
    rng = np.random.default_rng(seed)
    members = make_roster(80, seed=seed)
    labels = np.array([f"{d}-{rng.integers(1, n_labels + 1):03d}" for d in members["district_zh"]], dtype=object)
    labels[rng.random(80) < 0.1] = ""  # some newcomers
    cur = pd.DataFrame({"member_id": members["member_id"], "branch_id": labels})
    frozen = rng.choice(80, n_frozen, replace=False)
    members["frozen"] = 0
    members.loc[frozen, "frozen"] = 1
    r = rebalance(members, cur, POLICY, max_moves=budget, certify=False)
    if budget is not None:
        assert len(r.moves) <= budget
    new = r.assignments.set_index("member_id")["branch_id"]
    for i in frozen:
        if labels[i]:
            assert new[members["member_id"].iloc[i]] == labels[i]
    assert (new != "").all()
    if budget is None and n_frozen == 0:
        assert violations(r.branches, POLICY)["total"] == 0, r.report["notes"]


def test_a_district_left_too_small_joins_a_neighbour(base):
    # most of 福田区 moves to 南山区: the two members left cannot form a branch of their own
    members, a, b = base
    m2 = members.copy()
    ft = m2.index[m2["district_zh"] == "福田区"]
    stay = ft[:2]
    movers = ft[2:]
    m2.loc[movers, ["lon", "lat", "district_zh"]] = [113.93, 22.53, "南山区"]
    m2.loc[movers, "lon"] += np.linspace(0, 0.01, len(movers))
    r = rebalance(m2, a, POLICY, current_branches=b, certify=False)
    v = check_plan(m2, r.assignments, POLICY, r.branches)
    assert v.total == 0, v.describe()
    joined = r.assignments.set_index("member_id").loc[m2.loc[stay, "member_id"], "branch_id"]
    assert (joined != "").all() and joined.str.startswith("南山区").all()
    assert any("joined a neighbour" in n for n in r.report["notes"])
