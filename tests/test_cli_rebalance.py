"""`geoalloc rebalance` end to end: a new versioned plan, moves with reasons, budgets honoured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from geoalloc.cli import app
from geoalloc.samples import generate_roster

runner = CliRunner()
REASONS = {"oversized", "undersized", "relocated", "closed_branch", "improvement"}


@pytest.fixture(scope="module")
def first_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("rb")
    roster = generate_roster(600, seed=21, coordinate_share=1.0)
    path = tmp / "roster.csv"
    roster.to_csv(path, index=False)
    result = runner.invoke(app, ["allocate", str(path), "-o", str(tmp / "plan1"), "--no-map", "--time-limit", "3"])
    assert result.exit_code == 0, result.output
    return tmp, path, roster


def test_unchanged_roster_gives_zero_moves(first_plan: tuple[Path, Path, pd.DataFrame]) -> None:
    tmp, path, _ = first_plan
    out = tmp / "same"
    result = runner.invoke(app, ["rebalance", str(path), "--current", str(tmp / "plan1" / "assignments.csv"),
                                 "-o", str(out), "--no-map"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["moved"] == 0
    assert len(pd.read_csv(out / "moves.csv")) == 0
    parent = json.loads((tmp / "plan1" / "report.json").read_text())
    assert report["parent_plan_id"] == parent["plan_id"] and report["plan_id"] != parent["plan_id"]


def test_relocated_members_are_moved_within_budget(first_plan: tuple[Path, Path, pd.DataFrame]) -> None:
    tmp, _, roster = first_plan
    moved = roster.copy()
    rng = np.random.default_rng(3)
    # 40 active members of 南山区 move house to 福田区 (WGS-84 coordinates there)
    who = moved.index[(moved["district_zh"] == "南山区") & (moved["status"] == "active")][:40]
    moved.loc[who, ["lon", "lat", "datum"]] = [114.0553, 22.5395, "wgs84"]
    moved.loc[who, "lon"] += rng.normal(0, 0.004, len(who))
    moved.loc[who, "district_zh"] = "福田区"
    path = tmp / "moved.csv"
    moved.to_csv(path, index=False)
    out = tmp / "after"
    result = runner.invoke(app, ["rebalance", str(path), "--current", str(tmp / "plan1"), "-o", str(out),
                                 "--max-moves", "60", "--no-map", "--time-limit", "4", "--seed", "7"])
    assert result.exit_code == 0, result.output
    moves = pd.read_csv(out / "moves.csv", dtype=str, keep_default_na=False)
    report = json.loads((out / "report.json").read_text())
    assert (report["policy"]["time_limit"], report["policy"]["seed"]) == (4.0, 7)
    assert report["violations"]["total"] == 0 and report["violations"]["split_groups"] == 0
    assert report["moved"] == len(moves) <= 60
    assert set(moves["reason"]) <= REASONS
    assert set(moves.loc[moves["reason"] == "relocated", "member_id"]) <= set(moved.loc[who, "member_id"])
    a = pd.read_csv(out / "assignments.csv", dtype={"branch_id": str}, keep_default_na=False)
    sizes = a[a["branch_id"] != ""].groupby("branch_id").size()
    assert sizes.min() >= 3 and sizes.max() <= 50
    assert report["violations_after"]["total"] == 0
    # the old plan is untouched
    assert (tmp / "plan1" / "report.json").exists() and not (tmp / "plan1" / "moves.csv").exists()


def test_rebalance_refuses_to_overwrite_and_bad_flags(first_plan: tuple[Path, Path, pd.DataFrame]) -> None:
    tmp, path, _ = first_plan
    same = runner.invoke(app, ["rebalance", str(path), "--current", str(tmp / "plan1"), "-o", str(tmp / "plan1")])
    assert same.exit_code == 2 and "never overwritten" in same.output
    both = runner.invoke(app, ["rebalance", str(path), "--current", str(tmp / "plan1"), "-o", str(tmp / "x"),
                               "--max-moves", "3", "--move-penalty", "100"])
    assert both.exit_code == 2
    missing = runner.invoke(app, ["rebalance", str(path), "--current", str(tmp / "nope.csv"), "-o", str(tmp / "y")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_curve_is_printed_and_written(first_plan: tuple[Path, Path, pd.DataFrame]) -> None:
    tmp, _, roster = first_plan
    grown = pd.concat([roster, generate_roster(120, seed=99, coordinate_share=1.0).assign(
        member_id=lambda d: "N" + d["member_id"])], ignore_index=True)
    path = tmp / "grown.csv"
    grown.to_csv(path, index=False)
    out = tmp / "curve"
    result = runner.invoke(app, ["rebalance", str(path), "--current", str(tmp / "plan1"), "-o", str(out),
                                 "--curve", "--no-map"])
    assert result.exit_code == 0, result.output
    curve = pd.read_csv(out / "curve.csv")
    assert {"max_moves", "moved", "total_distance_m"} <= set(curve.columns)
    assert (curve["moved"] <= curve["max_moves"]).all()
    assert curve["total_distance_m"].is_monotonic_decreasing or curve["total_distance_m"].iloc[-1] <= curve["total_distance_m"].iloc[0]
    assert (out / "curve.png").stat().st_size > 1000


def test_map_command_draws_a_plan_and_a_comparison(first_plan: tuple[Path, Path, pd.DataFrame]) -> None:
    tmp, path, _ = first_plan
    after = tmp / "after"
    if not after.exists():  # run on its own: make the second plan
        test_relocated_members_are_moved_within_budget(first_plan)
    single = runner.invoke(app, ["map", str(tmp / "plan1"), "-o", str(tmp / "one.html"), "--lang", "en"])
    assert single.exit_code == 0, single.output
    html = (tmp / "one.html").read_text(encoding="utf-8")
    assert "leaflet" in html.lower() and "M00001" not in html  # no member ids or names by default
    compare = runner.invoke(app, ["map", "--compare", str(tmp / "plan1"), str(after), "-o", str(tmp / "cmp.html")])
    assert compare.exit_code == 0, compare.output
    assert (tmp / "cmp.html").stat().st_size > (tmp / "one.html").stat().st_size / 2
    assert runner.invoke(app, ["map", str(tmp / "nowhere"), "-o", str(tmp / "x.html")]).exit_code == 2
    assert runner.invoke(app, ["map", str(tmp / "plan1"), "--lang", "fr"]).exit_code == 2
