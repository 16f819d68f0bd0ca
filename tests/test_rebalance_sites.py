"""A rebalance with service centres and with the planner's branch count (--sites, --branches,
--target-size): branches meet only at given centres, within their capacity, and counts follow
the rule a fresh plan uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_sites import SITES, _members
from typer.testing import CliRunner

from geoalloc.cli import app
from geoalloc.pipeline import allocate
from geoalloc.rules import Policy, check_plan
from geoalloc.sites import validate_sites
from geoalloc.solver.rebalance import rebalance

runner = CliRunner()


@pytest.fixture(scope="module")
def current() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Members and a plan formed without centres (branches meet near members' homes)."""
    members = _members(160, 70)
    plan = allocate(members, Policy(time_limit=2))
    return members, plan.assignments, plan.branches


def _grown(members: pd.DataFrame, n: int = 70) -> pd.DataFrame:
    """``n`` newcomers in 南山区: the district then needs more branches than it has."""
    extra = _members(n, 0, seed=9)
    extra["member_id"] = "N" + extra["member_id"]
    return pd.concat([members, extra], ignore_index=True)


def _at_sites(branches: pd.DataFrame, sites: list[dict]) -> None:
    by_id = {s["site_id"]: s for s in sites}
    assert (branches["site_id"] != "").all() and set(branches["site_id"]) <= set(by_id)
    for row in branches.itertuples():
        s = by_id[row.site_id]
        assert s["district_zh"] == row.district_zh and row.site_name == s["name"]
        assert abs(row.lon - s["lon"]) < 1e-5 and abs(row.lat - s["lat"]) < 1e-5
    for sid, n in branches["site_id"].value_counts().items():
        assert by_id[sid]["capacity"] is None or n <= by_id[sid]["capacity"], (sid, n)


def test_rebalance_with_sites_opens_and_resites_only_at_centres(current) -> None:
    members, assignments, branches = current
    sites = validate_sites(SITES)
    grown = _grown(members)
    policy = Policy(time_limit=2, sites=sites)
    res = rebalance(grown, assignments, policy, current_branches=branches)
    b = res.branches
    assert len(b) > len(branches)  # 230 members in 南山区 need more than its 4 branches
    assert set(b["branch_id"]) - set(branches["branch_id"])  # a branch was opened ...
    _at_sites(b, sites)  # ... at a centre, like every re-sited one; NS2 holds one at most
    assert res.report["resited_branches"] == sorted(branches["branch_id"])  # none met at a centre before
    assert any("now meet at one" in n for n in res.report["notes"])
    from geoalloc.outputs import report_words

    done = " ".join(report_words(res.report, b)[0]["lines"])
    assert f"{len(branches)} 个支部原来不在服务中心活动" in done and "共 4 个服务中心" in done
    assert check_plan(grown, res.assignments, policy, b).total == 0
    assert res.report["violations"]["total"] == 0 and res.report["n_branches"] == len(b)
    # the plan now unchanged: the same again moves nobody
    again = rebalance(grown, res.assignments, policy, current_branches=b)
    assert again.report["moved"] == 0 and again.report["resited_branches"] == []


def test_site_capacity_caps_the_branch_count(current) -> None:
    members, assignments, branches = current
    caps = {"NS1": 2, "NS2": 1, "NS3": 2}  # 5 places in 南山区: its 230 members need at least 5 branches
    sites = validate_sites([dict(s, capacity=caps.get(s["site_id"], s.get("capacity"))) for s in SITES])
    grown = _grown(members)
    res = rebalance(grown, assignments, Policy(time_limit=2, sites=sites), current_branches=branches)
    b = res.branches
    _at_sites(b, sites)
    assert (b["district_zh"] == "南山区").sum() == 5 and res.report["violations"]["total"] == 0
    # one place fewer than the members need: refused, naming the district
    tight = validate_sites([dict(s, capacity=1) if s["site_id"] in ("NS1", "NS3") else s for s in SITES])
    with pytest.raises(ValueError, match="南山区: 230 members need at least 5 branches.*hold 3"):
        rebalance(grown, assignments, Policy(time_limit=2, sites=tight), current_branches=branches)


def test_rebalance_meets_the_planners_branch_count(current) -> None:
    members, assignments, branches = current
    before = branches.groupby("district_zh").size().to_dict()
    assert before == {"南山区": 4, "福田区": 2}
    cases = [({"n_branches": "fewest"}, {"南山区": 4, "福田区": 2}),  # 160 and 70 members: ceil(n / 50)
             ({"target_size": 20}, {"南山区": 8, "福田区": 4}),       # ceil(n / 20)
             ({"n_branches": 9}, {"南山区": 6, "福田区": 3})]         # 9 in proportion to members
    for rule, want in cases:
        policy = Policy(time_limit=2, **rule)
        res = rebalance(members, assignments, policy, current_branches=branches)
        assert res.branches.groupby("district_zh").size().to_dict() == want, rule
        assert res.report["violations"]["total"] == 0 and check_plan(members, res.assignments, policy, res.branches).total == 0
        assert res.report["branch_rule"].startswith(("fewest", "target", "fixed"))
    # merging down to the fewest branches: 南山区 171 members need 4, so grow it to see a merge
    grown = _grown(members, 30)
    opened = rebalance(grown, assignments, Policy(time_limit=2, target_size=30), current_branches=branches)
    fewest = rebalance(grown, opened.assignments, Policy(time_limit=2, n_branches="fewest"),
                       current_branches=opened.branches)
    assert (opened.branches["district_zh"] == "南山区").sum() == 7
    assert (fewest.branches["district_zh"] == "南山区").sum() == 4 and fewest.report["moved"] > 0
    # the default never merges healthy branches; a move budget is still a hard limit
    kept = rebalance(grown, opened.assignments, Policy(time_limit=2), current_branches=opened.branches)
    assert len(kept.branches) == len(opened.branches)
    capped = rebalance(grown, opened.assignments, Policy(time_limit=2, n_branches="fewest"),
                       current_branches=opened.branches, max_moves=10)
    assert capped.report["moved"] <= 10


def test_cli_rebalance_with_sites_branches_and_english_files(tmp_path: Path, current) -> None:
    members, _, _ = current
    members.drop(columns=["weight", "geo_precision"]).to_csv(tmp_path / "roster.csv", index=False)
    first = runner.invoke(app, ["allocate", str(tmp_path / "roster.csv"), "-o", str(tmp_path / "p1"), "--no-map",
                                "--time-limit", "2", "--format", "csv"])
    assert first.exit_code == 0, first.output
    _grown(members).drop(columns=["weight", "geo_precision"]).to_csv(tmp_path / "grown.csv", index=False)
    pd.DataFrame(SITES).to_csv(tmp_path / "sites.csv", index=False)
    out = tmp_path / "p2"
    res = runner.invoke(app, ["rebalance", str(tmp_path / "grown.csv"), "--current", str(tmp_path / "p1"),
                              "-o", str(out), "--sites", str(tmp_path / "sites.csv"), "--branches", "fewest",
                              "--lang", "en", "--time-limit", "2"])
    assert res.exit_code == 0, res.output
    b = pd.read_csv(out / "branches.csv", dtype=str, keep_default_na=False)
    b[["lon", "lat"]] = b[["lon", "lat"]].astype(float)
    _at_sites(b, validate_sites(SITES))
    assert (b["district_zh"] == "南山区").sum() == 5  # fewest for 230 members
    report = json.loads((out / "report.json").read_text())
    assert report["policy"]["n_branches"] == "fewest" and report["policy"]["sites"][0]["site_id"] == "NS1"
    import openpyxl

    book = openpyxl.load_workbook(out / "plan.xlsx")
    assert book.sheetnames == ["summary", "branches", "members", "moves"]
    assert "service centre" in [c.value for c in book["branches"][1]]
    assert "Branch plan" in str(book["summary"]["A1"].value)
    html = (out / "map.html").read_text(encoding="utf-8")
    assert "autonavi.com" not in html and "tile.openstreetmap.org" in html  # --lang en: OSM tiles, English labels
    # a bad site file: exit 2 naming the row and the field, and no plan written
    pd.DataFrame([{"site_id": "X", "name": "x", "lon": 113.93, "lat": "北纬"}]).to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, ["rebalance", str(tmp_path / "grown.csv"), "--current", str(tmp_path / "p1"),
                              "-o", str(tmp_path / "p3"), "--sites", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and "row 2" in bad.output and "'lat'" in bad.output
    assert not (tmp_path / "p3" / "assignments.csv").exists()
    # and --lang is checked before any work
    assert runner.invoke(app, ["rebalance", str(tmp_path / "grown.csv"), "--current", str(tmp_path / "p1"),
                               "-o", str(tmp_path / "p4"), "--lang", "fr"]).exit_code == 2


def test_cli_allocate_lang_chinese_by_default_english_on_request(tmp_path: Path) -> None:
    _members(60, 0).drop(columns=["weight", "geo_precision"]).to_csv(tmp_path / "roster.csv", index=False)
    import openpyxl

    sheets = {}
    for lang in ("zh", "en"):
        args = ["allocate", str(tmp_path / "roster.csv"), "-o", str(tmp_path / lang), "--no-map", "--time-limit", "1",
                "--format", "csv,xlsx"] + ([] if lang == "zh" else ["--lang", "en"])
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        book = openpyxl.load_workbook(tmp_path / lang / "plan.xlsx")
        sheets[lang] = (book.sheetnames, [c.value for c in book[book.sheetnames[1]][1]],
                        " ".join(str(c.value) for row in book[book.sheetnames[0]].iter_rows() for c in row if c.value))
    assert sheets["zh"][0] == ["汇总", "支部", "成员"] and sheets["en"][0] == ["summary", "branches", "members"]
    assert "支部编号" in sheets["zh"][1] and "branch" in sheets["en"][1]
    assert "支部" in sheets["zh"][2] and "branches" in sheets["en"][2] and not any(
        "\u4e00" <= ch <= "\u9fff" for ch in sheets["en"][2].replace("南山区", ""))


def test_a_relocation_that_opens_a_branch_opens_it_at_a_centre() -> None:
    """Two full branches of 南山区 at centres; a newcomer near NS2 forces a third branch, which
    meets at NS2 (the nearest centre with a place), not at the newcomer's home."""
    from geoalloc.solver.relocate import PlanState

    sites = validate_sites(SITES)
    policy = Policy(min_size=3, max_size=10, min_full=0, sites=sites)
    rng = np.random.default_rng(2)
    rows, branches = [], []
    for b, s in enumerate(sites[i] for i in (0, 2)):
        bid = f"南山区-{b + 1:03d}"
        branches.append({"branch_id": bid, "lon": s["lon"], "lat": s["lat"], "district_zh": "南山区"})
        for k in range(10):
            rows.append({"member_id": f"m{b}{k}", "branch_id": bid, "lon": s["lon"] + rng.normal(0, 0.002),
                         "lat": s["lat"] + rng.normal(0, 0.002), "district_zh": "南山区"})
    state = PlanState.from_frames(pd.DataFrame(rows), pd.DataFrame(branches), policy)
    home = (sites[1]["lon"] + 0.004, sites[1]["lat"] - 0.003)
    state.relocate("new1", lon=home[0], lat=home[1], district_zh="南山区")
    a, b = state.to_frames()
    assert len(b) == 3 and (b["size"] <= 10).all()
    placed = b.set_index("branch_id").loc[a.set_index("member_id").loc["new1", "branch_id"]]
    assert abs(placed["lon"] - sites[1]["lon"]) < 1e-5 and abs(placed["lat"] - sites[1]["lat"]) < 1e-5


def test_exact_points_and_names_only_when_asked(tmp_path: Path) -> None:
    """plan.xlsx's members sheet keeps the map's privacy (200 m grid, no names) unless the planner
    passes --exact-points / --show-names; a formula-like name stays text."""
    import openpyxl

    roster = _members(40, 0).drop(columns=["weight", "geo_precision"])
    roster["name"] = [f"成员{i}" for i in range(len(roster))]
    roster.loc[0, "name"] = "=HYPERLINK(\"http://x\")"
    roster.to_csv(tmp_path / "roster.csv", index=False)
    sheets = {}
    for label, extra in (("plain", []), ("asked", ["--exact-points", "--show-names"])):
        res = runner.invoke(app, ["allocate", str(tmp_path / "roster.csv"), "-o", str(tmp_path / label),
                                  "--time-limit", "1", "--format", "csv,xlsx"] + extra)
        assert res.exit_code == 0, res.output
        ws = openpyxl.load_workbook(tmp_path / label / "plan.xlsx")["成员"]
        rows = list(ws.iter_rows(values_only=True))
        sheets[label] = pd.DataFrame(rows[1:], columns=rows[0]).set_index("成员编号")
    want = roster.set_index("member_id")
    plain, asked = sheets["plain"], sheets["asked"]
    assert "姓名" not in plain.columns and asked.loc[want.index, "姓名"].tolist()[1:] == want["name"].tolist()[1:]
    assert asked.loc[want.index[0], "姓名"] == "'=HYPERLINK(\"http://x\")"  # neutralised, never a formula
    assert np.allclose(asked.loc[want.index, "经度"].astype(float), want["lon"], rtol=0, atol=1e-6)
    assert not np.allclose(plain.loc[want.index, "经度"].astype(float), want["lon"], rtol=0, atol=1e-5)  # the 200 m grid
    html = (tmp_path / "asked" / "map.html").read_text(encoding="utf-8")
    assert "成员1" in html and "成员1" not in (tmp_path / "plain" / "map.html").read_text(encoding="utf-8")


def test_fewer_places_than_branches_closes_one_but_keeps_a_frozen_members_branch() -> None:
    members = _members(160, 70)
    plan = allocate(members, Policy(time_limit=2, target_size=32))  # 5 branches in 南山区
    b = plan.branches
    assert (b["district_zh"] == "南山区").sum() == 5
    small = b[b["district_zh"] == "南山区"].sort_values(["size", "branch_id"])["branch_id"].iloc[0]
    who = plan.assignments.loc[plan.assignments["branch_id"] == small, "member_id"].iloc[0]
    members["frozen"] = (members["member_id"] == who).astype(int)
    caps = {"NS1": 2, "NS2": 1, "NS3": 1}  # 4 places for 5 branches (160 members need 4)
    sites = validate_sites([dict(s, capacity=caps.get(s["site_id"], s.get("capacity"))) for s in SITES])
    policy = Policy(time_limit=2, sites=sites)
    res = rebalance(members, plan.assignments, policy, current_branches=b)
    _at_sites(res.branches, sites)
    assert (res.branches["district_zh"] == "南山区").sum() == 4
    assert res.assignments.set_index("member_id").loc[who, "branch_id"] == small  # the frozen member stayed
    assert check_plan(members, res.assignments, policy, res.branches).total == 0


def test_themed_and_residential_branches_share_a_districts_centres() -> None:
    """A themed region and its district's residential one are solved apart but share the centres:
    each gets the places it needs, and no centre holds more branches than its capacity."""
    members = _members(200, 70)
    members["theme"] = ""
    members.loc[members.index[:40], "theme"] = "IT"
    plan = allocate(members, Policy(time_limit=2))
    sites = validate_sites([dict(s, capacity=2) for s in SITES])  # 6 places in 南山区
    policy = Policy(time_limit=2, sites=sites, themes="all")
    res = rebalance(members, plan.assignments, policy, current_branches=plan.branches)
    _at_sites(res.branches, sites)
    assert (res.branches["region"] == "南山区·IT").sum() == 1
    assert check_plan(members, res.assignments, policy, res.branches).total == 0
