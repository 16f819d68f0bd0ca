"""Themed branches as sub-regions; secretaries labelled; advisers spread within their cap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geoalloc.rules import Policy
from geoalloc.plan_diff import violations
from geoalloc.policies import attach_roles, role_summary
from geoalloc.rules import region_keys, theme_fallbacks
from geoalloc.solver.rebalance import rebalance

THEMED = Policy(min_size=3, max_size=10, min_full=2, extra={"themes": ["IT", "entrepreneur"]})


def roster() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 120
    district = np.where(np.arange(n) < 80, "南山区", "福田区")
    theme = np.array([""] * n, dtype=object)
    theme[:20] = "IT"  # 20 IT members in 南山区: enough for themed branches
    theme[80:82] = "IT"  # 2 in 福田区: too few, they fall back to residential
    theme[30:35] = "art"  # not an allowed theme
    return pd.DataFrame(
        {
            "member_id": [f"m{i}" for i in range(n)],
            "lon": np.where(district == "南山区", 113.93, 114.05) + rng.normal(0, 0.01, n),
            "lat": 22.53 + rng.normal(0, 0.01, n),
            "district_zh": district,
            "full_member": 1,
            "status": "active",
            "theme": theme,
            "industry": "互联网",
        }
    )


def test_region_keys_split_districts_by_viable_theme():
    m = roster()
    idx, names = region_keys(m, THEMED)
    assert names == sorted(["南山区", "南山区·IT", "福田区"])
    got = np.array(names)[idx]
    assert (got[:20] == "南山区·IT").all()
    assert (got[80:82] == "福田区").all()  # fallback, reported below
    assert (got[30:35] == "南山区").all()
    assert theme_fallbacks(m, THEMED) == {"福田区·IT": 2}


def test_themes_are_off_by_default_and_industry_gates_them():
    m = roster()
    _, names = region_keys(m, Policy())
    assert names == ["南山区", "福田区"]
    gated = Policy(min_size=3, max_size=10, min_full=2, extra={"themes": ["IT"], "theme_industries": {"IT": ["软件"]}})
    _, names = region_keys(m, gated)
    assert names == ["南山区", "福田区"]  # nobody is in an eligible industry


def test_themed_members_get_themed_branches():
    m = roster()
    r = rebalance(m, pd.DataFrame(columns=["member_id", "branch_id"]), THEMED, certify=False)
    assert violations(r.branches, THEMED)["total"] == 0
    it = r.assignments.set_index("member_id").loc[[f"m{i}" for i in range(20)], "branch_id"]
    assert it.str.startswith("南山区·IT-").all()
    others = r.assignments[~r.assignments["member_id"].isin(it.index)]
    assert not others["branch_id"].str.contains("·").any()
    assert set(r.branches.loc[r.branches["branch_id"].str.contains("·"), "district_zh"]) == {"南山区"}


def test_secretaries_are_labelled_and_suggested_advisers_capped():
    m = roster()
    m["role"] = ""
    policy = Policy(min_size=3, max_size=10, min_full=2, extra={"max_branches_per_adviser": 2})
    r = rebalance(m, pd.DataFrame(columns=["member_id", "branch_id"]), policy, certify=False)
    a = r.assignments
    first_branch = a["branch_id"].iloc[0]
    in_first = a.index[a["branch_id"] == first_branch]
    m.loc[in_first[:2], "role"] = "secretary"  # two secretaries in one branch, none elsewhere
    m.loc[[100, 101, 102], "role"] = "adviser"
    out = attach_roles(a, r.branches, m, policy)
    row = out.set_index("branch_id").loc[first_branch]
    assert row["secretary"] in set(m.loc[in_first[:2], "member_id"]) and row["n_secretaries"] == 2
    others = out[out["branch_id"] != first_branch]
    assert (others["secretary"] == "").all()
    # exactly one branch gets the surplus secretary as a suggestion, nobody is moved
    assert (others["secretary_suggestion"] != "").sum() == 1
    assert (out["secretary_suggestion"].str.len() > 0).sum() == 1
    served = out["advisers"].str.split(";").explode()
    served = served[served != ""]
    assert served.value_counts().max() <= 2
    assert len(served) == min(len(out), 3 * 2)
    summary = role_summary(out)
    assert summary["branches_with_secretary"] == 1


def test_relocation_keeps_themed_members_in_themed_branches():
    from geoalloc.solver.relocate import PlanState

    m = roster()
    r = rebalance(m, pd.DataFrame(columns=["member_id", "branch_id"]), THEMED, certify=False)
    s = PlanState.from_frames(r.assignments, r.branches, THEMED)
    row = r.assignments.set_index("member_id").loc["m3"]
    assert row["branch_id"].startswith("南山区·IT-")
    rel = s.relocate("m3", lon=113.95, lat=22.52, district_zh="南山区")
    assert rel.to_branch is not None and rel.to_branch.startswith("南山区·IT-")
    rel = s.relocate("m50", lon=113.95, lat=22.52, district_zh="南山区")  # residential member
    assert "·" not in (rel.to_branch or "")
    a, b = s.to_frames()
    assert set(a["district_zh"].dropna()) <= {"南山区", "福田区"}
    assert set(b["district_zh"]) <= {"南山区", "福田区"}
