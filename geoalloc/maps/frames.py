"""Check and normalise the plan directory's frames before anything is drawn.

The maps read ``assignments.csv``/``branches.csv`` as written by ``geoalloc allocate`` but
also as edited by hand, so every problem is reported with the CSV row (header = row 1) and
the field, and optional columns fall back to values derived from the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geoalloc.maps.privacy import normalise_precision

ASSIGNMENT_COLUMNS = ("member_id", "branch_id", "lon", "lat")
BRANCH_COLUMNS = ("branch_id", "lon", "lat")


def _blank(series: pd.Series) -> pd.Series:
    text = series.astype("string").str.strip()
    return text.isna() | (text == "") | (text.str.lower() == "nan")


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s): {', '.join(missing)}")


def _numeric(frame: pd.DataFrame, column: str, what: str, *, allow_missing: bool) -> pd.Series:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & ~_blank(raw)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{what} row {pos + 2}: field {column!r} is not a number ({raw.iloc[pos]!r})")
    if not allow_missing and values.isna().any():
        pos = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"{what} row {pos + 2}: field {column!r} is empty")
    return values.astype(float)


def clean_branches(branches: pd.DataFrame, assignments: pd.DataFrame) -> pd.DataFrame:
    """Branches with numeric fields; size, full members and distances derived when absent."""
    what = "branches.csv"
    _require(branches, BRANCH_COLUMNS, what)
    out = branches.reset_index(drop=True).copy()
    out["branch_id"] = out["branch_id"].astype("string").str.strip()
    if _blank(out["branch_id"]).any():
        pos = int(np.flatnonzero(_blank(out["branch_id"]).to_numpy())[0])
        raise ValueError(f"{what} row {pos + 2}: field 'branch_id' is empty")
    dup = out["branch_id"].duplicated()
    if dup.any():
        pos = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(f"{what} row {pos + 2}: branch_id {out['branch_id'].iloc[pos]!r} appears twice")
    out["branch_id"] = out["branch_id"].astype(object)
    out["lon"] = _numeric(out, "lon", what, allow_missing=False)
    out["lat"] = _numeric(out, "lat", what, allow_missing=False)

    members = assignments[assignments["branch_id"].notna()]
    grouped = members.groupby("branch_id")
    derived = {
        "size": grouped.size(),
        "n_full": grouped["full_member"].sum() if "full_member" in members else None,
        "mean_distance_m": grouped["distance_m"].mean() if "distance_m" in members else None,
        "max_distance_m": grouped["distance_m"].max() if "distance_m" in members else None,
    }
    for column, fallback in derived.items():
        if column in out.columns:
            out[column] = _numeric(out, column, what, allow_missing=True)
        else:
            out[column] = np.nan
        if fallback is not None:
            out[column] = out[column].fillna(out["branch_id"].map(fallback))
    out["size"] = out["size"].fillna(0).round().astype(int)
    out["joint"] = (
        pd.to_numeric(out["joint"], errors="coerce").fillna(0).astype(int) if "joint" in out.columns else 0
    )
    if "district_zh" not in out.columns:
        out["district_zh"] = ""
    out["district_zh"] = out["district_zh"].astype("string").fillna("").astype(object)
    return out


def clean_assignments(assignments: pd.DataFrame) -> pd.DataFrame:
    """Assignments with numeric coordinates, empty branch ids as missing, known precisions."""
    what = "assignments.csv"
    _require(assignments, ASSIGNMENT_COLUMNS, what)
    out = assignments.reset_index(drop=True).copy()
    out["member_id"] = out["member_id"].astype("string").str.strip().astype(object)
    if _blank(out["member_id"]).any():
        pos = int(np.flatnonzero(_blank(out["member_id"]).to_numpy())[0])
        raise ValueError(f"{what} row {pos + 2}: field 'member_id' is empty")
    blank_branch = _blank(out["branch_id"])
    out["branch_id"] = out["branch_id"].astype("string").str.strip().astype(object).where(~blank_branch, None)
    out["lon"] = _numeric(out, "lon", what, allow_missing=True)
    out["lat"] = _numeric(out, "lat", what, allow_missing=True)
    if "distance_m" in out.columns:
        out["distance_m"] = _numeric(out, "distance_m", what, allow_missing=True)
    if "full_member" in out.columns:
        out["full_member"] = pd.to_numeric(out["full_member"], errors="coerce").fillna(0).astype(int)
    out["geo_precision"] = normalise_precision(
        out["geo_precision"] if "geo_precision" in out.columns else pd.Series([None] * len(out))
    )
    status = out["status"] if "status" in out.columns else pd.Series(["active"] * len(out))
    out["status"] = status.astype("string").str.strip().str.lower().fillna("active").astype(object)
    return out


def check_links(assignments: pd.DataFrame, branches: pd.DataFrame) -> None:
    """Every assigned member must point at a branch in branches.csv."""
    known = set(branches["branch_id"])
    unknown = assignments["branch_id"].notna() & ~assignments["branch_id"].isin(known)
    if unknown.any():
        pos = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ValueError(
            f"assignments.csv row {pos + 2}: branch_id {assignments['branch_id'].iloc[pos]!r} "
            "is not in branches.csv"
        )
