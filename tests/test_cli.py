"""The command line end to end on a small roster: the contract outside scripts rely on."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from geoalloc.cli import app

runner = CliRunner()


def _roster_with_bad_rows(small_roster: pd.DataFrame, path: Path) -> Path:
    bad = pd.DataFrame([
        {"member_id": small_roster.iloc[0]["member_id"], "address": "深圳市南山区粤海街道"},  # duplicate id
        {"member_id": "NOWHERE", "address": ""},  # neither address nor coordinates
        {"member_id": "BEIJING", "lon": 116.4, "lat": 39.9},  # outside Shenzhen
    ])
    pd.concat([small_roster, bad], ignore_index=True).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory, small_roster: pd.DataFrame) -> Path:
    tmp = tmp_path_factory.mktemp("plan")
    roster = _roster_with_bad_rows(small_roster, tmp / "roster.csv")
    out = tmp / "out"
    result = runner.invoke(app, ["allocate", str(roster), "-o", str(out), "--time-limit", "5", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_allocate_writes_the_contract_files(plan_dir: Path) -> None:
    for name in ("assignments.csv", "branches.csv", "report.json", "map.html", "rejects.csv"):
        assert (plan_dir / name).stat().st_size > 0, name
    report = json.loads((plan_dir / "report.json").read_text())
    for key in ("objective_m", "lower_bound_m", "gap", "n_members", "n_assigned", "n_unassigned", "n_branches",
                "min_size", "max_size", "seconds"):
        assert key in report, key
    assert report["lower_bound_m"] <= report["objective_m"] + 1e-6
    assert 0 <= report["gap"] < 1
    # where the gap sits: each independent problem's plan and bound add up to the totals
    units = report["quality_by_unit"]
    assert units and sum(u["branches"] for u in units) == report["n_branches"]
    assert sum(u["objective_m"] for u in units) == pytest.approx(report["objective_m"], abs=0.06 * report["n_assigned_members"] + 1)
    assert sum(u["lower_bound_m"] for u in units) >= report["lower_bound_m"] - 1
    for u in units:
        assert 0 <= u["gap"] <= 1 and u["lower_bound_m"] <= u["objective_m"] + 1e-6
        assert 0 <= u["forced_min_branch_size"] <= report["max_size"]


def test_every_active_member_assigned_exactly_once_within_limits(plan_dir: Path, small_roster: pd.DataFrame) -> None:
    a = pd.read_csv(plan_dir / "assignments.csv", dtype={"branch_id": str}, keep_default_na=False)
    b = pd.read_csv(plan_dir / "branches.csv")
    assert a["member_id"].is_unique
    assert set(a["member_id"]) == set(small_roster["member_id"])  # the duplicate row went to rejects
    report = json.loads((plan_dir / "report.json").read_text())
    unplaced = {u["member_id"] for u in report["unassigned"] if u["reason"] in ("not_located", "out_of_city")}
    assert len(unplaced) <= 0.02 * len(a)  # only addresses the geocoder could not place
    active = a[(a["status"] == "active") & ~a["member_id"].isin(unplaced)]
    inactive = a[a["status"] != "active"]
    assert (active["branch_id"] != "").all()
    assert (inactive["branch_id"] == "").all()
    assert (a.loc[a["member_id"].isin(unplaced), "branch_id"] == "").all()
    sizes = active.groupby("branch_id")["weight"].sum()  # members, not rows: a weighted row counts its weight
    assert sizes.min() >= 3 and sizes.max() <= 50
    assert set(sizes.index) == set(b["branch_id"])
    assert (sizes.sort_index().to_numpy() == b.set_index("branch_id")["size"].sort_index().to_numpy()).all()
    # no branch crosses a district line, except joint branches, which the report must name
    districts_per_branch = active.groupby("branch_id")["district_zh"].nunique()
    crossing = set(districts_per_branch[districts_per_branch > 1].index)
    joint = set(b.loc[b["joint"] == 1, "branch_id"])
    assert crossing <= joint
    assert joint == set(report["joint_branches"])
    if joint:
        assert any("joint" in note or "大鹏新区" in note for note in report["notes"])
    full = active.groupby("branch_id")["full_member"].sum()
    assert full.min() >= 3


def test_inactive_members_are_reported_not_assigned(plan_dir: Path, small_roster: pd.DataFrame) -> None:
    report = json.loads((plan_dir / "report.json").read_text())
    listed = {u["member_id"]: u["status"] for u in report["unassigned"]}
    inactive = small_roster[small_roster["status"] != "active"]
    assert len(inactive) > 0
    for row in inactive.itertuples():
        assert listed[row.member_id] == row.status
    assert report["n_assigned"] + report["n_unassigned"] == report["n_members"] == len(small_roster)


def test_rejected_rows_are_written_with_reasons(plan_dir: Path) -> None:
    rejects = pd.read_csv(plan_dir / "rejects.csv", dtype=str, keep_default_na=False)
    assert set(rejects["member_id"]) >= {"NOWHERE", "BEIJING"}
    assert set(rejects["field"]) >= {"member_id", "address", "lon"}
    assert (rejects["reason"] != "").all()


def test_infeasible_rules_exit_nonzero_naming_district_and_limit(tmp_path: Path, small_roster: pd.DataFrame) -> None:
    roster = tmp_path / "r.csv"
    small_roster.to_csv(roster, index=False)
    result = runner.invoke(app, ["allocate", str(roster), "-o", str(tmp_path / "o"), "--branches", "2",
                                 "--max-size", "10", "--no-map"])
    assert result.exit_code == 1
    assert "max_size" in result.output or "max-size" in result.output


def test_bad_limits_and_missing_file_are_usage_errors(tmp_path: Path, roster_csv: Path) -> None:
    result = runner.invoke(app, ["allocate", str(roster_csv), "-o", str(tmp_path / "o"), "--min-size", "60"])
    assert result.exit_code == 2 and "max_size" in result.output
    result = runner.invoke(app, ["allocate", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_geocode_adds_the_contract_columns(tmp_path: Path, roster_csv: Path) -> None:
    out = tmp_path / "geo.csv"
    result = runner.invoke(app, ["geocode", str(roster_csv), "-o", str(out)])
    assert result.exit_code == 0, result.output
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    for col in ("lon", "lat", "geo_precision", "geo_district_zh", "geo_subdistrict_zh", "geo_status", "geo_reason"):
        assert col in df.columns, col
    assert len(df) == 400
    assert set(df["geo_status"]) <= {"ok", "approximate", "out_of_city", "failed"}
    located = df[df["geo_status"].isin(["ok", "approximate"])]
    assert len(located) > 0.95 * len(df)


def test_geocode_writes_the_same_file_whatever_the_workers(tmp_path: Path, roster_csv: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import geoalloc.geocode.frame as frame

    monkeypatch.setattr(frame, "PARALLEL_MIN_ROWS", 50)  # the 400-row roster in up to 8 processes
    outs = []
    for workers in ("1", "3"):
        out = tmp_path / f"geo{workers}.csv"
        result = runner.invoke(app, ["geocode", str(roster_csv), "-o", str(out), "--workers", workers])
        assert result.exit_code == 0, result.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_help_is_complete() -> None:
    for cmd in ("geocode", "allocate", "map", "demo"):
        result = runner.invoke(app, [cmd, "--help"])
        assert result.exit_code == 0
    assert "--max-size" in runner.invoke(app, ["allocate", "--help"]).output


def test_online_provider_without_key_is_a_usage_error(tmp_path: Path, roster_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEOALLOC_AMAP_KEY", raising=False)
    result = runner.invoke(app, ["geocode", str(roster_csv), "-o", str(tmp_path / "g.csv"), "--provider", "amap"])
    assert result.exit_code == 2 and "GEOALLOC_AMAP_KEY" in result.output
    assert not (tmp_path / "g.csv").exists()


def test_themed_branches_gather_opted_in_members_near_home(tmp_path: Path) -> None:
    from geoalloc.samples import generate_roster

    roster = tmp_path / "r.csv"
    df = generate_roster(1500, seed=4)
    df.to_csv(roster, index=False)
    out = tmp_path / "o"
    result = runner.invoke(app, ["allocate", str(roster), "-o", str(out), "--themes", "IT", "--no-map", "--time-limit", "3"])
    assert result.exit_code == 0, result.output
    a = pd.read_csv(out / "assignments.csv", dtype={"branch_id": str}, keep_default_na=False)
    b = pd.read_csv(out / "branches.csv", keep_default_na=False)
    themed = b[b["region"].str.endswith("·IT")]
    assert len(themed) > 0
    assert all(bid.startswith(region + "-") for bid, region in zip(themed["branch_id"], themed["region"]))
    members = a.merge(df[["member_id", "theme"]], on="member_id")
    in_themed = members[members["branch_id"].isin(themed["branch_id"])]
    assert (in_themed["theme"] == "IT").all()  # only opted-in members sit in themed branches
    # a themed branch stays inside its district
    assert (in_themed.merge(b[["branch_id", "district_zh"]], on="branch_id", suffixes=("", "_b"))
            .pipe(lambda m: m["district_zh"] == m["district_zh_b"]).all())
    report = json.loads((out / "report.json").read_text())
    assert report["policy"]["themes"] == ["IT"]
    assert "roles" in report and report["roles"]["branches_with_secretary"] >= 1


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'k.db'}"
    created = runner.invoke(app, ["keys", "create", "--role", "planner", "--district", "南山区", "--db", db])
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[0]
    assert len(secret) >= 20
    listed = runner.invoke(app, ["keys", "list", "--db", db])
    assert listed.exit_code == 0 and "planner" in listed.stdout and "南山区" in listed.stdout
    assert secret not in listed.stdout  # only the hash is stored
    from geoalloc.store.keys import list_keys

    key_id = list_keys(db)[0]["key_id"]
    assert runner.invoke(app, ["keys", "revoke", key_id, "--db", db]).exit_code == 0
    assert list_keys(db)[0]["revoked_at"] is not None
    bad = runner.invoke(app, ["keys", "create", "--role", "emperor", "--db", db])
    assert bad.exit_code == 1


def test_branch_rule_default_fewest_and_bad_value(tmp_path: Path, plan_dir: Path, roster_csv: Path) -> None:
    default = json.loads((plan_dir / "report.json").read_text())
    assert default["branch_rule"].startswith("target") and "80%" in default["branch_rule"]
    out = tmp_path / "fewest"
    result = runner.invoke(app, ["allocate", str(roster_csv), "-o", str(out), "--time-limit", "3", "--branches",
                                 "fewest", "--no-map"])
    assert result.exit_code == 0, result.output
    fewest = json.loads((out / "report.json").read_text())
    assert fewest["branch_rule"].startswith("fewest") and fewest["policy"]["n_branches"] == "fewest"
    assert fewest["n_branches"] <= default["n_branches"]
    result = runner.invoke(app, ["allocate", str(roster_csv), "-o", str(tmp_path / "bad"), "--branches", "many"])
    assert result.exit_code == 2 and "fewest" in result.output
