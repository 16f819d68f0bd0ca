"""The command line with a national roster: samples national, allocate --engine/--workers,
maps per city, and a rerun after the driver was killed that skips the finished districts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from geoalloc.cli import app
from geoalloc.national import COLUMNS

runner = CliRunner()


@pytest.fixture(scope="module")
def roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("national") / "national.csv"
    result = runner.invoke(app, ["samples", "national", "--members", "1500", "--seed", "4", "-o", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_samples_national_writes_the_same_roster_for_the_same_seed(roster: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(roster, dtype=str, keep_default_na=False)
    assert list(frame.columns) == COLUMNS and len(frame) == 1500 and frame["city_zh"].nunique() == 37
    again = tmp_path / "again.csv"
    assert runner.invoke(app, ["samples", "national", "--members", "1500", "--seed", "4", "-o", str(again)]).exit_code == 0
    assert again.read_bytes() == roster.read_bytes()


def test_allocate_a_national_roster_with_an_engine_and_a_map_per_city(roster: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    args = ["allocate", str(roster), "-o", str(out), "--time-limit", "2", "--engine", "local", "--workers", "2",
            "--map-city", "北京市"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["engine"]["name"] == "local" and report["engine"]["workers"] == 2
    assert report["roster"]["rejected"] == 0 and report["violations"]["over_max"] == 0
    assert report["n_assigned"] == (pd.read_csv(roster)["status"] == "active").sum()
    a = pd.read_csv(out / "assignments.csv", dtype=str, keep_default_na=False)
    b = pd.read_csv(out / "branches.csv", dtype=str, keep_default_na=False)
    assert set(a["city_zh"]) == set(pd.read_csv(roster)["city_zh"])
    assert (b["branch_id"].str.split("/").str[0] == b["city_zh"]).all()
    assert (out / "map-北京市.html").stat().st_size > 0 and not (out / "map.html").exists()
    assert len(list((out / ".units").glob("*.npz"))) == report["engine"]["units"]
    bad = runner.invoke(app, ["allocate", str(roster), "-o", str(tmp_path / "x"), "--engine", "spark"])
    assert bad.exit_code == 2 and "unknown engine" in bad.output


def test_a_rerun_after_the_driver_was_killed_skips_the_finished_districts(roster: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    cmd = [sys.executable, "-m", "geoalloc.cli", "allocate", str(roster), "-o", str(out), "--time-limit", "20",
           "--workers", "1", "--no-map"]
    env = {k: v for k, v in os.environ.items() if k not in ("GEOALLOC_ENGINE", "GEOALLOC_WORKERS")}
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    units = out / ".units"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if units.exists() and len(list(units.glob("*.npz"))) >= 5:
            break
        time.sleep(0.02)
    assert driver.poll() is None, "the run ended before it could be killed"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not (out / "report.json").exists()
    finished = len(list(units.glob("*.npz")))
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    run = json.loads((out / "report.json").read_text())["engine"]
    assert run["resumed"] == finished >= 5 and run["solved"] == run["units"] - finished > 0
