"""The trade-off between members moved and total distance, for a planner to pick a budget.

Each point is a full :func:`~geoalloc.solver.rebalance.rebalance` under one move budget;
the sweep is cheap because rebalancing works region by region on sparse arcs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from geoalloc.rules import Policy
from geoalloc.solver.rebalance import rebalance

CURVE_COLUMNS = ["max_moves", "moved", "total_distance_m", "mean_distance_m", "violations"]


def default_budgets(n_members: int) -> list[int]:
    """0, then roughly doubling steps up to a fifth of the roster."""
    out, b = [0], 10
    while b < max(20, n_members // 5):
        out.append(b)
        b *= 2
    return out


def trade_off_curve(
    members: pd.DataFrame,
    current: pd.DataFrame,
    policy: Policy,
    budgets: Sequence[int] | None = None,
    *,
    current_branches: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per budget: moves used, total and mean distance (m), branches outside limits."""
    if budgets is None:
        budgets = default_budgets(len(members))
    rows = []
    cache: dict[object, object] = {}  # each penalty setting is solved once for the whole sweep
    for k in sorted({int(b) for b in budgets}):
        r = rebalance(
            members, current, policy, max_moves=k, current_branches=current_branches, certify=False, ladder_cache=cache
        )
        d = r.report["distance_after"]
        rows.append(
            {
                "max_moves": k,
                "moved": int(r.report["moved"]),
                "total_distance_m": float(d["total"]),
                "mean_distance_m": float(d["mean"]),
                "violations": int(r.report["violations_after"]["total"]),
            }
        )
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def write_curve(df: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write curve.csv and curve.png (total distance against members moved) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "curve.csv", "png": out / "curve.png"}
    df.to_csv(paths["csv"], index=False)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.plot(df["moved"], df["total_distance_m"] / 1000.0, marker="o")
    # budgets that gave the same plan share one label
    for (moved, total), grp in df.groupby(["moved", "total_distance_m"], sort=False):
        label = ", ".join(f"≤{k}" for k in grp["max_moves"])
        v = int(grp["violations"].iloc[0])
        label += f" ({v} outside limits)" if v else ""
        ax.annotate(label, (moved, total / 1000.0), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("members moved")
    ax.set_ylabel("total distance (km)")
    ax.set_title("Rebalance trade-off: distance vs members moved")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(paths["png"])
    plt.close(fig)
    return paths


def format_curve(df: pd.DataFrame) -> str:
    """A plain-text table for the terminal."""
    lines = [f"{'max_moves':>9} {'moved':>6} {'total_km':>10} {'mean_m':>8} {'violations':>10}"]
    for r in df.itertuples():
        lines.append(f"{r.max_moves:>9} {r.moved:>6} {r.total_distance_m / 1000:>10.1f} {r.mean_distance_m:>8.0f} {r.violations:>10}")
    return "\n".join(lines)
