"""Plan statistics, the plan diff, and the trade-off curve."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geoalloc.curve import CURVE_COLUMNS, trade_off_curve, write_curve
from geoalloc.rules import Policy
from geoalloc.plan_diff import diff_plans, distance_stats, plan_report, size_histogram, violations
from geoalloc.solver.rebalance import rebalance

POLICY = Policy(min_size=3, max_size=12, min_full=2)


def test_statistics_and_violations():
    a = pd.DataFrame({"member_id": list("abcde"), "branch_id": ["x", "x", "y", "", "y"],
                      "distance_m": [100.0, 300.0, 200.0, np.nan, 1000.0]})
    s = distance_stats(a)
    assert s["mean"] == 400.0 and s["max"] == 1000.0 and s["n"] == 4
    assert s["p90"] == round(float(np.percentile([100, 300, 200, 1000], 90)), 1)
    b = pd.DataFrame({"branch_id": ["x", "y", "z", "w"], "size": [2, 13, 5, 0], "n_full": [2, 13, 1, 0]})
    v = violations(b, POLICY)
    assert (v["over_max"], v["under_min"], v["under_full"], v["total"]) == (1, 1, 1, 3)
    assert set(v["branches"]) == {"x", "y", "z"}  # the empty branch is closed, not a violation
    h = size_histogram(b, bins=(0, 3, 10, 100))
    assert h == {"0-3": 1, "3-10": 1, "10-100": 1}


def test_diff_plans_lists_moves_joins_and_leavers():
    old = pd.DataFrame({"member_id": ["a", "b", "c", "d"], "branch_id": ["x", "x", "y", "y"]})
    new = pd.DataFrame({"member_id": ["a", "b", "c", "e"], "branch_id": ["x", "y", "", "x"]})
    d = diff_plans(old, new).set_index("member_id")
    assert d.loc["b", ["from_branch", "to_branch"]].tolist() == ["x", "y"]
    assert d.loc["c", ["from_branch", "to_branch"]].tolist() == ["y", ""]
    assert d.loc["d", ["from_branch", "to_branch"]].tolist() == ["y", ""]
    assert d.loc["e", ["from_branch", "to_branch"]].tolist() == ["", "x"]
    assert "a" not in d.index


def test_plan_report_counts_reasons():
    a = pd.DataFrame({"member_id": ["a"], "branch_id": ["x"], "distance_m": [10.0]})
    b = pd.DataFrame({"branch_id": ["x"], "size": [1], "n_full": [1]})
    moves = pd.DataFrame({"member_id": ["a"], "from_branch": ["y"], "to_branch": ["x"], "reason": ["relocated"]})
    r = plan_report((a, b), (a, b), moves, POLICY)
    assert r["moved"] == 1 and r["moves_by_reason"]["relocated"] == 1 and r["moves_by_reason"]["oversized"] == 0
    assert r["policy"]["max_size"] == 12


def test_trade_off_curve_respects_each_budget(tmp_path):
    rng = np.random.default_rng(2)
    n = 150
    m = pd.DataFrame({"member_id": [f"m{i}" for i in range(n)], "lon": 113.93 + rng.normal(0, 0.02, n),
                      "lat": 22.53 + rng.normal(0, 0.02, n), "district_zh": "南山区", "full_member": 1,
                      "status": "active"})
    start = rebalance(m, pd.DataFrame(columns=["member_id", "branch_id"]), POLICY, certify=False)
    m2 = m.copy()
    movers = rng.choice(n, 30, replace=False)
    m2.loc[movers, "lon"] = 113.93 + rng.normal(0, 0.02, 30)
    df = trade_off_curve(m2, start.assignments, POLICY, [0, 5, 15, 60], current_branches=start.branches)
    assert list(df.columns) == CURVE_COLUMNS
    assert (df["moved"] <= df["max_moves"]).all()
    assert df["total_distance_m"].iloc[-1] < df["total_distance_m"].iloc[0]
    paths = write_curve(df, tmp_path)
    assert paths["csv"].exists() and paths["png"].stat().st_size > 1000
    assert pd.read_csv(paths["csv"]).shape == df.shape
