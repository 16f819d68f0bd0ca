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


def test_people_are_matched_by_true_distance_across_cities():
    """A national plan's branches lie in many UTM zones: secretaries and advisers are matched by
    distance on the sphere, so a Kashgar adviser serves Kashgar's branches and a suggestion's
    distance is the geodesic one (a single 49N projection stretched it by several per cent)."""
    from pyproj import Geod

    from geoalloc.projection import to_sphere

    branches = pd.DataFrame({"branch_id": ["喀什-1", "喀什-2", "哈尔滨-1"], "lon": [75.99, 76.05, 126.63],
                             "lat": [39.47, 39.50, 45.75], "size": 5})
    rows = [("s1", "喀什-1", 75.995, 39.475, "secretary"), ("s2", "喀什-1", 76.00, 39.48, "secretary"),
            ("a1", "喀什-1", 76.02, 39.49, "adviser"), ("a2", "哈尔滨-1", 126.64, 45.76, "adviser")]
    members = pd.DataFrame(rows, columns=["member_id", "branch_id", "lon", "lat", "role"])
    policy = Policy(min_size=3, max_size=10, min_full=2, extra={"max_branches_per_adviser": 2})
    out = attach_roles(members[["member_id", "branch_id", "lon", "lat"]], branches, members, policy).set_index("branch_id")
    assert out.loc["哈尔滨-1", "advisers"] == "a2"
    assert out.loc["喀什-1", "advisers"] == out.loc["喀什-2", "advisers"] == "a1"
    note = out.loc["喀什-2", "secretary_suggestion"]
    assert note.startswith("s2 (from 喀什-1, ")
    metres = float(note.split(", ")[1].split(" m")[0])
    _, _, geodesic = Geod(ellps="WGS84").inv(76.00, 39.48, 76.05, 39.50)
    assert abs(metres / geodesic - 1) < 0.005
    a, b = to_sphere([75.0, 126.6], [39.5, 45.7]), to_sphere([75.1, 126.7], [39.6, 45.8])
    chord = np.linalg.norm(a - b, axis=1)
    geo = Geod(ellps="WGS84").inv([75.0, 126.6], [39.5, 45.7], [75.1, 126.7], [39.6, 45.8])[2]
    assert np.all(np.abs(chord / geo - 1) < 0.005)
