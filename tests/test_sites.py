"""Service centres as the only meeting places: the site table's checks, the plan, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from geoalloc.cli import app
from geoalloc.geocode.datum import from_wgs84
from geoalloc.pipeline import allocate
from geoalloc.projection import to_metres
from geoalloc.rules import Policy
from geoalloc.sites import SiteError, read_sites, validate_sites

runner = CliRunner()
# three centres in 南山区 (one may hold a single branch), one in 福田区
SITES = [
    {"site_id": "NS1", "name": "粤海街道党群服务中心", "lon": 113.9440, "lat": 22.5230},
    {"site_id": "NS2", "name": "南头街道党群服务中心", "lon": 113.9200, "lat": 22.5420, "capacity": 1},
    {"site_id": "NS3", "name": "西丽街道党群服务中心", "lon": 113.9550, "lat": 22.5850},
    {"site_id": "FT1", "name": "福田街道党群服务中心", "lon": 114.0550, "lat": 22.5380},
]


def _members(n_ns: int = 160, n_ft: int = 70, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for district, (lon, lat), n in (("南山区", (113.935, 22.540), n_ns), ("福田区", (114.055, 22.540), n_ft)):
        for i in range(n):
            rows.append({"member_id": f"{district[:2]}{i:03d}", "lon": lon + rng.normal(0, 0.008),
                         "lat": lat + rng.normal(0, 0.005), "district_zh": district, "full_member": 1,
                         "status": "active", "weight": 1, "geo_precision": "exact"})
    return pd.DataFrame(rows)


def test_bad_site_rows_are_reported_by_row_and_field() -> None:
    rows = [
        {"site_id": "A", "name": "甲", "lon": "113.94", "lat": "22.52"},
        {"site_id": "A", "name": "乙", "lon": "113.95", "lat": "22.53"},          # row 3: duplicate id
        {"site_id": "", "name": "丙", "lon": "113.95", "lat": "22.53"},           # row 4: empty id
        {"site_id": "D", "name": "", "lon": "东经", "lat": "22.53"},             # row 5: name, lon
        {"site_id": "E", "name": "戊", "lon": "116.40", "lat": "39.90"},         # row 6: not in Shenzhen
        {"site_id": "F", "name": "己", "lon": "114.055", "lat": "22.538", "district_zh": "南山区"},  # row 7
        {"site_id": "G", "name": "庚", "lon": "114.06", "lat": "22.54", "capacity": "0"},          # row 8
        {"site_id": "H", "name": "辛", "lon": "114.07", "lat": "22.54", "datum": "mercator"},       # row 9
        {"site_id": "I", "name": "壬", "lon": "113.94", "lat": "22.52"},         # row 10: same point as row 2
    ]
    with pytest.raises(SiteError) as err:
        validate_sites(rows)
    got = {(p.row, p.field) for p in err.value.problems}
    assert got == {(3, "site_id"), (4, "site_id"), (5, "name"), (5, "lon"), (6, "lon"), (7, "district_zh"),
                   (8, "capacity"), (9, "datum"), (10, "lon")}
    assert "row 7 (site F), field 'district_zh': says 南山区 but the point is in 福田区" in str(err.value)


def test_site_file_csv_or_xlsx_with_gcj02_points(tmp_path: Path) -> None:
    lon, lat = from_wgs84(113.9440, 22.5230, "gcj02")
    df = pd.DataFrame([{"site_id": "S1", "name": "中心", "lon": lon, "lat": lat, "datum": "gcj02",
                        "district_zh": "南山", "capacity": 2}])
    df.to_csv(tmp_path / "sites.csv", index=False)
    df.to_excel(tmp_path / "sites.xlsx", index=False)
    for name in ("sites.csv", "sites.xlsx"):
        (site,) = read_sites(tmp_path / name)
        assert site["site_id"] == "S1" and site["district_zh"] == "南山区" and site["capacity"] == 2
        assert abs(site["lon"] - 113.9440) < 1e-5 and abs(site["lat"] - 22.5230) < 1e-5  # converted to WGS-84
    pd.DataFrame([{"site_id": "S1", "lon": 1}]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(SiteError, match="required column.*name.*lat"):
        read_sites(tmp_path / "bad.csv")


def test_branches_meet_only_at_given_sites_and_may_share_one() -> None:
    sites = validate_sites(SITES)
    members = _members()
    res = allocate(members, Policy(time_limit=3, sites=sites))
    b, a = res.branches, res.assignments
    assert res.report["violations"]["total"] == 0
    by_id = {s["site_id"]: s for s in sites}
    assert set(b["site_id"]) <= set(by_id) and (b["site_id"] != "").all()
    for row in b.itertuples():
        s = by_id[row.site_id]
        assert row.site_name == s["name"] and s["district_zh"] == row.district_zh
        assert abs(row.lon - s["lon"]) < 1e-5 and abs(row.lat - s["lat"]) < 1e-5
    counts = b["site_id"].value_counts()
    assert counts.max() >= 2  # 160 members of 南山区 need 4 branches on 3 sites
    assert counts.get("NS2", 0) <= 1  # capacity 1
    # each member's distance is measured to its branch's site
    site_xy = {r.branch_id: to_metres(np.array([r.lon]), np.array([r.lat]))[0] for r in b.itertuples()}
    placed = a[a["branch_id"] != ""]
    xy = to_metres(placed["lon"].to_numpy(), placed["lat"].to_numpy())
    expect = np.hypot(*(xy - np.array([site_xy[x] for x in placed["branch_id"]])).T)
    assert np.allclose(placed["distance_m"].to_numpy(float), expect, atol=0.5)
    assert res.report["policy"]["sites"] == sites  # the plan says where it may meet
    from geoalloc.outputs import report_words

    done = report_words(res.report, b)[0]["lines"]
    assert f"共 4 个服务中心，用到 {b['site_id'].nunique()} 个" in " ".join(done)


def test_too_few_site_places_is_a_clear_error() -> None:
    from geoalloc.solver.problem import InfeasibleError

    sites = validate_sites([dict(SITES[1]), dict(SITES[3])])  # 南山区: one place for four branches
    with pytest.raises(InfeasibleError, match="南山区"):
        allocate(_members(), Policy(time_limit=2, sites=sites))


def test_cli_allocate_with_sites(tmp_path: Path) -> None:
    members = _members(100, 60).drop(columns=["weight", "geo_precision"])
    members.to_csv(tmp_path / "roster.csv", index=False)
    pd.DataFrame(SITES).to_csv(tmp_path / "sites.csv", index=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["allocate", str(tmp_path / "roster.csv"), "-o", str(out), "--time-limit", "2",
                              "--sites", str(tmp_path / "sites.csv"), "--format", "csv,xlsx"])
    assert res.exit_code == 0, res.output
    b = pd.read_csv(out / "branches.csv")
    assert set(b["site_id"]) <= {"NS1", "NS2", "NS3", "FT1"} and b["site_name"].str.endswith("党群服务中心").all()
    sheet = pd.DataFrame(openpyxl.load_workbook(out / "plan.xlsx")["支部"].values)
    assert {"服务中心编号", "服务中心"} <= set(sheet.iloc[0])
    html = (out / "map.html").read_text(encoding="utf-8")
    assert all(f"{r.site_name} ({r.site_id})" in html for r in b.itertuples())  # in the branch popups
    assert not (out / "plan.gpkg").exists()
    assert json.loads((out / "report.json").read_text())["policy"]["sites"][0]["site_id"] == "NS1"
    # a bad site file: exit 2 naming row and field, no plan written
    pd.DataFrame([{"site_id": "X", "name": "x", "lon": "abc", "lat": 22.5}]).to_csv(tmp_path / "bad.csv", index=False)
    bad = runner.invoke(app, ["allocate", str(tmp_path / "roster.csv"), "-o", str(tmp_path / "o2"),
                              "--sites", str(tmp_path / "bad.csv")])
    assert bad.exit_code == 2 and "row 2" in bad.output and "'lon'" in bad.output
