"""The one rule set: what a row counts for, the policy, and check_plan against hand-built violations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geoalloc.rules import (
    VIOLATION_KEYS,
    Policy,
    check_plan,
    full_counts,
    region_keys,
    unassigned_reasons,
    unit_keys,
    weights,
)

P = Policy(min_size=3, max_size=6, min_full=2)


def roster(n: int, district: str = "南山区", **cols: object) -> pd.DataFrame:
    df = pd.DataFrame({
        "member_id": [f"m{i}" for i in range(n)],
        "lon": 113.93 + 0.001 * np.arange(n), "lat": 22.53 + 0.001 * np.arange(n),
        "district_zh": district, "full_member": 1, "status": "active", "weight": 1, "group_id": "", "theme": "",
    })
    for k, v in cols.items():
        df[k] = v
    return df


def plan(members: pd.DataFrame, branch: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"member_id": members["member_id"], "branch_id": branch})


def test_counting_rules() -> None:
    m = pd.DataFrame({"member_id": ["a", "b", "c", "d"], "weight": [3, None, 0, 2], "full_member": [1, 0, None, 0],
                      "group_id": ["f1", None, "f1", ""]})
    assert weights(m).tolist() == [3, 1, 1, 2]  # default 1, never below 1
    assert full_counts(m).tolist() == [3, 0, 1, 0]  # a full row counts its weight; missing full_member means full
    assert unit_keys(m).tolist() == ["g:f1", "m:b", "g:f1", "m:d"]
    # weights count towards the themed region's viability
    themed = roster(2, theme="IT", weight=[2, 2])
    idx, names = region_keys(themed, Policy(min_size=3, max_size=6, min_full=2, themes="all"))
    assert names == ["南山区·IT"] and idx.tolist() == [0, 0]


def test_unassigned_reasons_are_one_vocabulary() -> None:
    m = roster(5, status=["active", "lost_contact", "transfer_out", "active", "active"])
    m["geo_status"] = ["ok", "ok", "ok", "out_of_city", "failed"]
    assert unassigned_reasons(m).tolist() == ["", "lost_contact", "transfer_out", "out_of_city", "not_located"]
    m.loc[0, "lon"] = np.nan
    assert unassigned_reasons(m)[0] == "not_located"


def test_policy_round_trip_and_old_extra_keys() -> None:
    p = Policy(themes="IT, entrepreneur", move_penalty_m=800)
    assert p.themes == ("IT", "entrepreneur")
    assert Policy.from_dict(p.to_dict()) == p
    # plans stored before the rules had fields kept them in extra
    old = Policy.from_dict({"max_size": 40, "extra": {"themes": ["IT"], "move_penalty_m": 750, "swap_rounds": 3}})
    assert old.themes == ("IT",) and old.move_penalty_m == 750 and old.extra == {"swap_rounds": 3}
    with pytest.raises(ValueError, match="move_penalty_m"):
        Policy(move_penalty_m=-1)


def test_a_valid_plan_has_no_violations() -> None:
    m = roster(8, full_member=[1, 1, 0, 1, 1, 1, 0, 1], group_id=["", "", "", "", "f", "f", "", ""])
    v = check_plan(m, plan(m, ["A-1"] * 4 + ["A-2"] * 4), P)
    assert v.total == 0 and v.to_dict()["total"] == 0 and set(VIOLATION_KEYS) <= set(v.to_dict())


@pytest.mark.parametrize("kind", list(VIOLATION_KEYS))
def test_check_plan_catches_each_kind(kind: str) -> None:
    m = roster(8)
    branch = ["南山区-001"] * 4 + ["南山区-002"] * 4
    branches = None
    policy = P
    if kind == "over_max":
        m["weight"] = [4, 1, 1, 1, 1, 1, 1, 1]  # rows stand for 7 members in a branch of at most 6
    elif kind == "under_min":
        branch = ["南山区-001"] * 6 + ["南山区-002"] * 2
    elif kind == "under_full":
        m["full_member"] = [1, 1, 1, 1, 1, 0, 0, 0]
    elif kind == "split_groups":
        m["group_id"] = ["", "", "", "fam", "fam", "", "", ""]
    elif kind == "cross_district":
        m["district_zh"] = ["南山区"] * 4 + ["福田区"] * 4
        branch = ["南山区-001"] * 3 + ["福田区-001"] + ["南山区-001"] + ["福田区-001"] * 3
    elif kind == "theme_mismatch":
        m["theme"] = ["IT"] * 3 + [""] * 5
        branch = ["南山区·IT-001"] * 4 + ["南山区-001"] * 4
        policy = Policy(min_size=3, max_size=6, min_full=2, themes="all")
    elif kind == "inactive_assigned":
        m.loc[2, "status"] = "lost_contact"
    elif kind == "unplaced":
        branch[0] = ""
        m["weight"] = [1, 1, 1, 1, 1, 1, 1, 1]
        branch = ["", "南山区-001", "南山区-001", "南山区-001"] + ["南山区-002"] * 4
    elif kind == "unknown_members":
        a = plan(m, branch)
        a = pd.concat([a, pd.DataFrame({"member_id": ["ghost"], "branch_id": ["南山区-001"]})], ignore_index=True)
        v = check_plan(m, a, policy)
        assert v.unknown_members == 1 and v.total == 1 and v.details["unknown_members"] == ["ghost"]
        return
    elif kind == "missing_members":
        v = check_plan(m, plan(m, branch).iloc[1:], policy)
        assert v.missing_members == 1 and v.total == 1 and v.structural == 1
        return
    elif kind == "size_misreported":
        m["weight"] = [2, 1, 1, 1, 1, 1, 1, 1]
        branches = pd.DataFrame({"branch_id": ["南山区-001", "南山区-002"], "size": [4, 4], "n_full": [4, 4]})
    v = check_plan(m, plan(m, branch), policy, branches)
    assert getattr(v, kind) >= 1, v.to_dict()
    others = {k: getattr(v, k) for k in VIOLATION_KEYS if k != kind and getattr(v, k)}
    assert not others, others
    assert v.details[kind]


def test_frozen_members_may_stay_across_a_district_line() -> None:
    m = roster(8, district=["南山区"] * 4 + ["福田区"] * 4)
    branch = ["南山区-001"] * 3 + ["福田区-001"] + ["南山区-001"] + ["福田区-001"] * 3
    assert check_plan(m, plan(m, branch), P).cross_district == 2  # m3 in 福田区-001, m4 in 南山区-001
    m["frozen"] = [0, 0, 0, 1, 0, 0, 0, 0]  # m3 stays where a planner froze it
    assert check_plan(m, plan(m, branch), P).details["cross_district"] == ["南山区-001"]
    m.loc[4, "frozen"] = 1
    assert check_plan(m, plan(m, branch), P).cross_district == 0
    assert check_plan(m, plan(m, ["南山区-001"] * 3 + ["福田区-001"] * 5), P, frozen_branches={"福田区-001"}).total == 0
    # a tiny district may join a neighbour's branch (a joint branch)
    m = roster(8, district=["南山区"] * 6 + ["福田区"] * 2)
    assert check_plan(m, plan(m, ["南山区-001"] * 3 + ["南山区-002"] * 5), P).total == 0


def test_a_frozen_member_holds_their_family() -> None:
    m = roster(10, district=["南山区"] * 6 + ["福田区"] * 4, group_id=[""] * 6 + ["fam", "fam", "", ""])
    branch = ["南山区-001"] * 3 + ["南山区-002"] * 5 + ["福田区-001"] * 2  # the family moved to 福田区, kept
    m["full_member"] = 1
    assert check_plan(m, plan(m, branch), P).cross_district == 1
    m.loc[6, "frozen"] = 1  # one of them is frozen: the family stays with them
    assert check_plan(m, plan(m, branch), P).cross_district == 0
