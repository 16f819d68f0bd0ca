"""geoalloc.outputs: neutralised cells, plan.xlsx sheets, plan.gpkg layers, formats, the report in words."""

from __future__ import annotations

import csv
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest

from geoalloc.maps.synthetic import synthetic_plan
from geoalloc.outputs import neutralise, parse_formats, read_plan_dir, report_words, restore, write_plan_dir
from geoalloc.pipeline import AllocationResult

HOSTILE = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=quoted"]


@pytest.fixture(scope="module")
def plan() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    a, b, r = synthetic_plan(300, seed=3)
    a = a.copy()
    a.loc[: len(HOSTILE) - 1, "member_id"] = HOSTILE
    r = dict(r, unassigned=[{"member_id": m, "status": "lost_contact", "reason": "lost_contact"}
                            for m in a.loc[a["branch_id"].astype(str) == "", "member_id"]])
    return a, b, r


def test_neutralise_round_trips_and_leaves_plain_text_alone() -> None:
    for s in HOSTILE:
        n = neutralise(s)
        assert n.startswith("'") and restore(n) == s
    assert neutralise("南山区-001") == "南山区-001" and neutralise(-3) == -3 and neutralise("") == ""


def test_plan_dir_cells_never_become_formulas(plan, tmp_path: Path) -> None:
    a, b, r = plan
    moves = pd.DataFrame({"member_id": HOSTILE[:2], "from_branch": ["x", "y"], "to_branch": ["=z", "w"],
                          "reason": ["oversized", "relocated"]})
    paths = write_plan_dir(AllocationResult(a, b, r), tmp_path, formats="csv,xlsx", moves=moves)
    for name in ("assignments", "branches", "moves"):
        with open(paths[name], encoding="utf-8", newline="") as fh:
            cells = [c for row in csv.reader(fh) for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")], name
        assert not [c for c in cells if c[:1] == "-" and not _number(c)], name
    wb = openpyxl.load_workbook(paths["xlsx"])
    for ws in wb:
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (ws.title, cell.coordinate, cell.value)
                if isinstance(cell.value, str):
                    assert cell.value[:1] not in ("=", "+", "-", "@", "\t", "\r"), (ws.title, cell.value)
    # and the plan directory reads back exactly what was written
    a2, _b2, _r2, mv = read_plan_dir(tmp_path)
    assert list(a2["member_id"]) == list(a["member_id"].astype(str))
    assert list(mv["to_branch"]) == ["=z", "w"]


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_xlsx_sheets_in_chinese_with_members_at_the_privacy_grid(plan, tmp_path: Path) -> None:
    a, b, r = plan
    moves = pd.DataFrame({"member_id": ["m1"], "from_branch": ["a"], "to_branch": ["b"], "reason": ["oversized"]})
    paths = write_plan_dir(AllocationResult(a, b, r), tmp_path, formats=["xlsx"], moves=moves)
    wb = openpyxl.load_workbook(paths["xlsx"])
    assert wb.sheetnames == ["汇总", "支部", "成员", "调整"]
    members = pd.DataFrame(wb["成员"].values)
    header = list(members.iloc[0])
    assert {"成员编号", "支部编号", "经度", "纬度", "未分配原因"} <= set(header) and "姓名" not in header
    rows = members.iloc[1:].set_axis(header, axis=1).reset_index(drop=True)
    exact = (a["geo_precision"] == "exact").to_numpy()
    assert exact.any()
    moved = np.abs(rows["经度"].astype(float).to_numpy()[exact] - a["lon"].to_numpy()[exact])
    assert moved.max() > 1e-4  # exact homes are not in the workbook
    assert (rows.loc[a["branch_id"].astype(str).to_numpy() == "", "未分配原因"] == "失联").all()
    assert pd.DataFrame(wb["调整"].values).iloc[1, 3] == "支部超编"
    summary = [c for row in wb["汇总"].values for c in row if c]
    assert "做了什么" in summary and "方案质量" in summary and "需要关注" in summary
    assert len(list(wb["支部"].values)) == len(b) + 1


def test_gpkg_layers_readable_by_geopandas(plan, tmp_path: Path) -> None:
    a, b, r = plan
    paths = write_plan_dir(AllocationResult(a, b, r), tmp_path, formats="gpkg,geojson")
    assert "xlsx" not in paths and not (tmp_path / "plan.xlsx").exists()
    layers = dict(pyogrio.list_layers(paths["gpkg"]))
    assert layers == {"branches": "Point", "branch_areas": "Polygon", "members": "Point", "districts": "MultiPolygon"}
    br = gpd.read_file(paths["gpkg"], layer="branches")
    assert br.crs.to_epsg() == 4326 and len(br) == len(b) and set(br["branch_id"]) == set(b["branch_id"])
    areas = gpd.read_file(paths["gpkg"], layer="branch_areas")
    assert len(areas) == (b["size"] > 0).sum() and areas.geometry.is_valid.all()
    members = gpd.read_file(paths["gpkg"], layer="members")
    assert len(members) == len(a) and "name" not in members.columns
    assert len(gpd.read_file(paths["gpkg"], layer="districts")) == 10
    gj = gpd.read_file(paths["geojson"])
    assert set(gj["layer"]) == {"branches", "branch_areas", "members", "districts"}


def test_formats_are_checked() -> None:
    assert parse_formats(None) == ("csv", "xlsx", "gpkg")
    assert parse_formats("CSV, geojson") == ("csv", "geojson")
    with pytest.raises(ValueError, match="unknown output format.*shp"):
        parse_formats("csv,shp")


def test_report_words_say_what_was_done_how_good_and_what_to_look_at() -> None:
    report = {"n_members": 120, "n_assigned": 110, "n_unassigned": 10, "n_branches": 4, "min_size": 3,
              "max_size": 50, "min_full": 3, "seconds": 1.5, "objective_m": 40000.0, "lower_bound_m": 30000.0,
              "gap": 0.25, "branch_size": {"min": 4, "mean": 27.5, "max": 50},
              "distance_m": {"mean": 363.6, "p90": 1200.0}, "violations": {"over_max": 0, "under_min": 0, "under_full": 0},
              "unassigned_by_reason": {"lost_contact": 7, "not_located": 3},
              "quality_by_unit": [{"unit": "宝安区", "gap": 0.31, "forced_min_branch_size": 48},
                                  {"unit": "南山区", "gap": 0.01, "forced_min_branch_size": 10}]}
    branches = pd.DataFrame({"branch_id": ["宝安区-001", "宝安区-002", "南山区-001", "南山区-002"],
                             "size": [50, 49, 7, 4], "n_full": [40, 40, 3, 4]})
    zh = report_words(report, branches)
    assert [s["title"] for s in zh] == ["做了什么", "方案质量", "需要关注"]
    text = "\n".join(line for s in zh for line in s["lines"])
    assert "110 人分入 4 个支部" in text and "失联 7 人" in text and "无法定位 3 人" in text
    assert "25.0%" in text and "下界偏弱" in text
    look = "\n".join(zh[2]["lines"])
    assert "宝安区 31.0%" in look and "南山区 1.0%" not in look  # only the weak certificate is pointed out
    assert "宝安区-001（50）" in look and "宝安区-002（49）" in look and "南山区-002（4）" in look
    assert "南山区-001" in look  # 3 full members: just enough
    assert "计算时间不够" not in text  # 宝安区 is tight (48 of 50): its bound is weak, not its search
    en = report_words(dict(report, gap=0.01, quality_by_unit=[]), branches, lang="en")
    assert "close to optimal" in " ".join(en[1]["lines"])
    # a small total gap does not hide a weak district: the words say so, and why
    hidden = dict(report, gap=0.04)
    for lang, small, why in (("en", "small overall, but 1 district(s) are above 5.0%", "bound is usually what is weak"),
                             ("zh", "总体差距很小，但有 1 个区的差距超过 5.0%", "下界偏弱")):
        lines = " ".join(report_words(hidden, branches, lang=lang)[1]["lines"])
        assert small in lines and why in lines and "close to optimal" not in lines and "接近最优" not in lines
    # a loose district far from its bound ran out of time: say so, and how to fix it
    loose = dict(report, quality_by_unit=[{"unit": "光明区", "gap": 0.2, "forced_min_branch_size": 3}])
    zh = report_words(loose, branches)
    assert "光明区 20.0%（计算时间不够）" in "\n".join(zh[2]["lines"])
    assert any("--time-limit" in line for line in zh[1]["lines"]) and not any("下界偏弱" in line for line in zh[1]["lines"])
    en = report_words(loose, branches, lang="en")
    assert "光明区 20.0% (out of time)" in " ".join(en[2]["lines"])
    # the same gap where the search and the bound had finished their work: more time is no advice
    done = dict(report, quality_by_unit=[{"unit": "光明区", "gap": 0.2, "forced_min_branch_size": 3,
                                          "more_time_helps": False}])
    en = report_words(done, branches, lang="en")
    text = " ".join(line for s in en for line in s["lines"])
    assert "光明区 20.0% (more time would not change it)" in text
    assert "out of time" not in text and "for a better plan" not in text and "tightens the bound" not in text
    zh = "\n".join(line for s in report_words(done, branches) for line in s["lines"])
    assert "计算时间不够" not in zh and "延长时间不会改变" in zh
    # a tight district whose bound had finished: its bound is weak, and time would not tighten it
    tight = dict(report, quality_by_unit=[{"unit": "宝安区", "gap": 0.31, "forced_min_branch_size": 48,
                                           "more_time_helps": False}])
    en = " ".join(line for s in report_words(tight, branches, lang="en") for line in s["lines"])
    assert "a weak bound" in en and "tightens the bound" not in en and "would not change either" in en


def test_cli_allocate_writes_xlsx_and_gpkg_by_default_and_neutralised_rejects(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from geoalloc.cli import app

    rng = np.random.default_rng(2)
    roster = pd.DataFrame({"member_id": [f"M{i:03d}" for i in range(60)],
                           "lon": 114.05 + rng.normal(0, 0.01, 60), "lat": 22.54 + rng.normal(0, 0.005, 60)})
    roster = pd.concat([roster, pd.DataFrame([{"member_id": "=1+1", "lon": "abc", "lat": 22.5}])])
    roster.to_csv(tmp_path / "roster.csv", index=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["allocate", str(tmp_path / "roster.csv"), "-o", str(out), "--time-limit", "1"])
    assert res.exit_code == 0, res.output
    for name in ("assignments.csv", "branches.csv", "report.json", "map.html", "plan.xlsx", "plan.gpkg"):
        assert (out / name).stat().st_size > 0, name
    assert not (out / "plan.geojson").exists()
    with open(out / "rejects.csv", encoding="utf-8", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert "'=1+1" in cells and "=1+1" not in cells
    bad = CliRunner().invoke(app, ["allocate", str(tmp_path / "roster.csv"), "-o", str(out), "--format", "pdf"])
    assert bad.exit_code == 2 and "unknown output format" in bad.output


def test_report_words_of_a_rebalance() -> None:
    report = {"n_members": 10, "n_assigned": 8, "n_unassigned": 2, "n_branches": 2, "moved": 3, "joined": 1,
              "removed": 0, "moves_by_reason": {"oversized": 3, "relocated": 0},
              "violations_before": {"total": 1}, "violations_after": {"total": 0},
              "unassigned": [{"member_id": "a", "reason": "lost_contact"}, {"member_id": "b", "reason": "transfer_out"}]}
    text = " ".join(line for s in report_words(report) for line in s["lines"])
    assert "3 人调整了支部（支部超编 3）" in text and "由 1 个变为 0 个" in text
    assert "失联 1 人、转出 1 人" in text
