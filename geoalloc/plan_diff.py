"""Before/after statistics of two plans and the list of members whose branch changed.

A rebalance is judged by what it fixed and what it cost the members: distances before
and after, branch sizes, limit violations, and who moved. These helpers work on the
plan-directory frames (``assignments.csv``/``branches.csv``) so the CLI, the API and the
benchmark all report the same figures.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from geoalloc.model import MoveReason
from geoalloc.rules import Policy, full_counts, weights

DEFAULT_SIZE_BINS: tuple[int, ...] = (0, 3, 10, 20, 30, 40, 50, 60, 100, 1_000_000)



def new_plan_id() -> str:
    """A unique plan id (uuid4 hex, as the pipeline's): plans are never overwritten."""
    return uuid.uuid4().hex


def _branch_col(df: pd.DataFrame) -> pd.Series:
    col = df["branch_id"] if "branch_id" in df.columns else pd.Series([None] * len(df), index=df.index)
    return col.astype(object).where(col.notna() & (col.astype(str) != ""), None)


def distance_stats(assignments: pd.DataFrame) -> dict[str, float]:
    """Mean, 90th percentile, maximum and total member-to-site distance (metres) over assigned
    members, each row counted for the members it stands for (``weight``)."""
    if "distance_m" not in assignments.columns:
        raise ValueError("assignments need a distance_m column")
    a = assignments[_branch_col(assignments).notna()]
    d = pd.to_numeric(a["distance_m"], errors="coerce").to_numpy(float)
    w = weights(a).astype(float)
    ok = np.isfinite(d)
    d, w = d[ok], w[ok]
    if len(d) == 0:
        return {"mean": 0.0, "p90": 0.0, "max": 0.0, "total": 0.0, "n": 0}
    p90 = float(np.percentile(np.repeat(d, w.astype(np.int64)), 90))  # weights are small whole numbers
    return {
        "mean": round(float((d * w).sum() / w.sum()), 1),
        "p90": round(p90, 1),
        "max": round(float(d.max()), 1),
        "total": round(float((d * w).sum()), 1),
        "n": int(w.sum()),
    }


def size_histogram(branches: pd.DataFrame, bins: Sequence[int] = DEFAULT_SIZE_BINS) -> dict[str, int]:
    """Branch counts per size bin, keyed ``"lo-hi"`` (hi exclusive), for the report."""
    sizes = pd.to_numeric(branches["size"], errors="coerce").fillna(0).to_numpy(int) if len(branches) else np.zeros(0, int)
    sizes = sizes[sizes > 0]
    counts, _ = np.histogram(sizes, bins=np.asarray(bins))
    return {f"{bins[i]}-{bins[i + 1]}": int(c) for i, c in enumerate(counts)}


def violations(branches: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """Limit violations of a branch table (non-empty branches only), with the keys of
    :class:`geoalloc.rules.Violations`: over_max, under_min, under_full, total, branches."""
    if len(branches) == 0:
        return {"over_max": 0, "under_min": 0, "under_full": 0, "total": 0, "branches": []}
    size = pd.to_numeric(branches["size"], errors="coerce").fillna(0).to_numpy(int)
    n_full = (
        pd.to_numeric(branches["n_full"], errors="coerce").fillna(0).to_numpy(int)
        if "n_full" in branches.columns
        else size.copy()
    )
    live = size > 0
    over = live & (size > policy.max_size)
    under = live & (size < policy.min_size)
    under_full = live & (n_full < policy.min_full)
    bad = over | under | under_full
    return {
        "over_max": int(over.sum()),
        "under_min": int(under.sum()),
        "under_full": int(under_full.sum()),
        "total": int(bad.sum()),
        "branches": [str(b) for b in branches["branch_id"].to_numpy()[bad]],
    }


def branch_table(assignments: pd.DataFrame) -> pd.DataFrame:
    """Sizes and full-member counts per branch, derived from assignments (for plans without branches.csv)."""
    df = pd.DataFrame({"branch_id": _branch_col(assignments), "w": weights(assignments), "f": full_counts(assignments)})
    g = df[df["branch_id"].notna()].groupby("branch_id", sort=True)
    return pd.DataFrame({"branch_id": g.size().index, "size": g["w"].sum().to_numpy(), "n_full": g["f"].sum().to_numpy()})


def diff_plans(old_assignments: pd.DataFrame, new_assignments: pd.DataFrame) -> pd.DataFrame:
    """Every member whose branch differs between two plans (joined: from empty; removed: to empty).

    ``reason`` is left empty here; :func:`geoalloc.solver.rebalance.rebalance` fills it in
    because only it knows why a member moved.
    """
    old = pd.Series(_branch_col(old_assignments).to_numpy(), index=old_assignments["member_id"].astype(str).to_numpy())
    new = pd.Series(_branch_col(new_assignments).to_numpy(), index=new_assignments["member_id"].astype(str).to_numpy())
    ids = old.index.union(new.index)
    o = np.array([x if isinstance(x, str) else "" for x in old.reindex(ids).to_numpy()], dtype=object)
    n = np.array([x if isinstance(x, str) else "" for x in new.reindex(ids).to_numpy()], dtype=object)
    changed = o != n
    out = pd.DataFrame({"member_id": ids[changed], "from_branch": o[changed], "to_branch": n[changed], "reason": ""})
    return out.reset_index(drop=True)


def plan_report(
    before: tuple[pd.DataFrame, pd.DataFrame],
    after: tuple[pd.DataFrame, pd.DataFrame],
    moves: pd.DataFrame,
    policy: Policy,
) -> dict[str, Any]:
    """The rebalance part of ``report.json``: moves per reason and before/after figures.

    ``before``/``after`` are ``(assignments, branches)`` pairs. ``moves`` has a ``reason``
    column with :class:`MoveReason` values (only members who changed branch).
    """
    reasons = {r.value: 0 for r in MoveReason}
    if len(moves):
        for r, c in moves["reason"].value_counts().items():
            reasons[str(r)] = int(c)
    vb = violations(before[1], policy)
    va = violations(after[1], policy)
    return {
        "moved": int(len(moves)),
        "moves_by_reason": reasons,
        "distance_before": distance_stats(before[0]),
        "distance_after": distance_stats(after[0]),
        "size_histogram_before": size_histogram(before[1]),
        "size_histogram_after": size_histogram(after[1]),
        "violations_before": vb,
        "violations_after": va,
        "n_branches_before": int((pd.to_numeric(before[1]["size"]) > 0).sum()) if len(before[1]) else 0,
        "n_branches_after": int((pd.to_numeric(after[1]["size"]) > 0).sum()) if len(after[1]) else 0,
        "policy": policy.to_dict(),
    }
