"""Versioned plans: save one whole (one transaction), read its frames back, lock it, patch it.

A plan is written in a single transaction: the plan row, its branches and its assignments
are committed together or not at all, so a crash half-way through leaves the previous plan
the newest. Relocations patch the newest plan's rows in place and bump ``state_version``
so in-memory caches know to reload.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.orm import Session

from geoalloc.rules import branch_region
from geoalloc.store.models import Assignment, AuditEntry, Branch, Plan
from geoalloc.tables import ASSIGNMENT_COLUMNS, BRANCH_COLUMNS


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def _flag(v: Any) -> bool:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return True
    return str(v).strip().lower() in {"1", "true", "1.0", "yes"}


def assignment_values(plan_id: int, rec: dict[str, Any]) -> dict[str, Any]:
    """One assignments.csv record as a row of the ``assignments`` table."""
    branch = _text(rec.get("branch_id"))
    return {"plan_id": plan_id, "member_id": str(rec["member_id"]), "branch_id": branch or None,
            "distance_m": _num(rec.get("distance_m")), "district_zh": _text(rec.get("district_zh")),
            "lon": _num(rec.get("lon")), "lat": _num(rec.get("lat")),
            "geo_precision": _text(rec.get("geo_precision")) or "none", "full_member": _flag(rec.get("full_member")),
            "status": _text(rec.get("status")) or "active", "weight": max(1, int(_num(rec.get("weight")) or 1)),
            "group_id": _text(rec.get("group_id")), "city_zh": _text(rec.get("city_zh"))}


def branch_values(plan_id: int, rec: dict[str, Any]) -> dict[str, Any]:
    """One branches.csv record as a row of the ``branches`` table."""
    return {"plan_id": plan_id, "branch_id": str(rec["branch_id"]), "lon": _num(rec.get("lon")),
            "lat": _num(rec.get("lat")), "district_zh": _text(rec.get("district_zh")),
            "size": int(_num(rec.get("size")) or 0), "n_full": int(_num(rec.get("n_full")) or 0),
            "mean_distance_m": _num(rec.get("mean_distance_m")) or 0.0,
            "max_distance_m": _num(rec.get("max_distance_m")) or 0.0, "joint": bool(_num(rec.get("joint")) or 0),
            "region": _text(rec.get("region")) or branch_region(str(rec["branch_id"])),
            "city_zh": _text(rec.get("city_zh"))}


def _json_safe(obj: Any) -> Any:
    """Reports hold numpy numbers and NaN; JSON columns need plain, finite values."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def _insert_rows(s: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Bulk insert (a seam the crash test breaks on purpose)."""
    for start in range(0, len(rows), 2000):
        s.execute(table.insert(), rows[start:start + 2000])


def save_plan(s: Session, assignments: pd.DataFrame, branches: pd.DataFrame, report: dict[str, Any],
              policy: dict[str, Any], *, parent_id: int | None, kind: str, key_id: str | None) -> int:
    """Insert a whole plan in the caller's transaction; returns the new plan id."""
    plan = Plan(parent_id=parent_id, kind=kind, status="ready", policy=_json_safe(policy),
                report=_json_safe(report), state_version=1, created_by=key_id)
    s.add(plan)
    s.flush()
    _insert_rows(s, Branch.__table__, [branch_values(plan.id, r) for r in branches.to_dict("records")])
    _insert_rows(s, Assignment.__table__, [assignment_values(plan.id, r) for r in assignments.to_dict("records")])
    s.add(AuditEntry(key_id=key_id, action="create", entity="plan", entity_id=str(plan.id), plan_id=plan.id,
                     after={"parent_id": parent_id, "kind": kind, "n_branches": len(branches),
                            "n_members": len(assignments), "policy": _json_safe(policy)}))
    return int(plan.id)


def newest_plan(s: Session) -> Plan | None:
    """The plan relocations apply to: the newest ready one."""
    return s.scalars(select(Plan).where(Plan.status == "ready").order_by(Plan.id.desc()).limit(1)).first()


def lock_plan(s: Session, plan_id: int) -> Plan | None:
    """Serialise writers of one plan: ``SELECT ... FOR UPDATE`` on PostgreSQL.

    On SQLite the enclosing ``BEGIN IMMEDIATE`` already holds the database write lock, and
    ``FOR UPDATE`` is not rendered there, so the same call is correct on both.
    """
    return s.scalars(select(Plan).where(Plan.id == plan_id).with_for_update()
                     .execution_options(populate_existing=True)).first()


def plan_frames(s: Session | Any, plan_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stored plan as the plan-directory frames (assignments, branches)."""
    a_cols, b_cols = [*ASSIGNMENT_COLUMNS, "city_zh"], [*BRANCH_COLUMNS, "city_zh"]
    a_rows = s.execute(select(*[getattr(Assignment, c) for c in a_cols])
                       .where(Assignment.plan_id == plan_id).order_by(Assignment.member_id)).all()
    b_rows = s.execute(select(*[getattr(Branch, c) for c in b_cols])
                       .where(Branch.plan_id == plan_id).order_by(Branch.branch_id)).all()
    a = _with_city(pd.DataFrame(a_rows, columns=a_cols))
    a["branch_id"] = a["branch_id"].fillna("")
    a["full_member"] = a["full_member"].astype(int)
    for c in ("distance_m", "lon", "lat"):
        a[c] = pd.to_numeric(a[c], errors="coerce")
    a["weight"] = a["weight"].fillna(1).astype(int)
    a["group_id"] = a["group_id"].fillna("")
    b = _with_city(pd.DataFrame(b_rows, columns=b_cols))
    b["joint"] = b["joint"].astype(int)
    b["region"] = [r or branch_region(str(x)) for r, x in zip(b["region"].fillna(""), b["branch_id"])]
    return a, b


def _with_city(frame: pd.DataFrame) -> pd.DataFrame:
    """``city_zh`` where the plan directory has it (fourth, after the district for a roster of
    several cities); a Shenzhen plan's frames keep their columns as before (no city)."""
    city = frame.pop("city_zh").fillna("").astype(str)
    if (city != "").any():
        frame.insert(3, "city_zh", city)
    return frame


_UPDATES: dict[tuple[str, tuple[str, ...]], Any] = {}


def apply_assignment_changes(conn: Any, plan_id: int, rows: list[dict[str, Any]],
                             branch_rows: list[dict[str, Any]], removed_branches: list[str]) -> None:
    """Overwrite some assignment rows and branch rows of a plan (a relocation's footprint).

    One executemany per table: a relocation touches a few rows and runs under the plan lock,
    so statement count is latency. Rows that do not exist yet (a member new to the plan, a
    branch just opened) are inserted.
    """
    a_tab: Table = Assignment.__table__  # type: ignore[assignment]
    b_tab: Table = Branch.__table__  # type: ignore[assignment]
    for table, key, recs in ((a_tab, "member_id", rows), (b_tab, "branch_id", branch_rows)):
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for r in recs:  # executemany needs one column set per statement
            groups.setdefault(tuple(k for k in r if k not in ("plan_id", key)), []).append(r)
        for keys, group in groups.items():
            stmt = _UPDATES.get((table.name, keys))
            if stmt is None:  # built once per column set: building costs more than executing
                stmt = (table.update().where(table.c.plan_id == bindparam("_plan"), table.c[key] == bindparam("_key"))
                        .values({k: bindparam(k) for k in keys}))
                _UPDATES[(table.name, keys)] = stmt
            res = conn.execute(stmt, [{**{k: r[k] for k in keys}, "_plan": plan_id, "_key": r[key]} for r in group])
            if res.rowcount != len(group):  # some rows are new: insert those
                have = set(conn.execute(select(table.c[key]).where(
                    table.c.plan_id == plan_id, table.c[key].in_([r[key] for r in group]))).scalars().all())
                new = [r for r in group if r[key] not in have]
                if new:
                    conn.execute(table.insert(), new)
    if removed_branches:
        conn.execute(delete(Branch).where(Branch.plan_id == plan_id, Branch.branch_id.in_(removed_branches)))


def branch_sizes(s: Session, plan_id: int) -> dict[str, int]:
    """Members per branch counted from the assignment rows, each for the members it stands for
    (``weight``): the ground truth the tests check."""
    rows = s.execute(select(Assignment.branch_id, func.sum(Assignment.weight)).where(Assignment.plan_id == plan_id,
                                                                                     Assignment.branch_id.is_not(None))
                     .group_by(Assignment.branch_id)).all()
    return {str(b): int(n) for b, n in rows}
