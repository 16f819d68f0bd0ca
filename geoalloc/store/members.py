"""Members and their address history: upsert from a placed roster, read back as a frame, move.

A member's current point is on the ``members`` row; every point they ever had is a row of
``member_addresses`` (the current one with ``valid_to`` NULL). Every change writes an audit row.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from geoalloc.store.models import AuditEntry, Member, MemberAddress, utcnow

#: Member columns as the library's roster frames name them (see geoalloc.roster).
MEMBER_COLUMNS = [
    "member_id", "name", "address", "lon", "lat", "city_zh", "district_zh", "subdistrict_zh", "industry",
    "full_member", "status", "theme", "role", "frozen", "weight", "group_id", "geo_precision", "geo_status",
]
#: Fields that say where a member is; changing one of them is a relocation.
LOCATION_FIELDS = ("address", "lon", "lat", "district_zh", "geo_precision", "geo_status")

#: The longest address kept (the column is unbounded text; a real address is under 100 characters).
ADDRESS_MAX = 500
#: Longest value of each text field a roster or a PATCH may set: the column's own length, so the
#: schema, the import and PATCH cannot disagree.
TEXT_LIMITS: dict[str, int] = {
    c: int(Member.__table__.c[c].type.length)  # type: ignore[attr-defined]
    for c in ("member_id", "name", "city_zh", "district_zh", "industry", "theme", "role", "group_id")
} | {"address": ADDRESS_MAX}


def text_problem(field: str, value: str) -> str | None:
    """Why ``value`` may not be stored in text field ``field``, or None when it may.

    Refused everywhere alike (import, PATCH, relocation): more characters than the field holds,
    and control or invisible format characters (NUL, line breaks, zero-width and bidirectional
    marks), which no name or address needs and which make stored text lie about what it says.
    """
    limit = TEXT_LIMITS.get(field)
    if limit is not None and len(value) > limit:
        return f"at most {limit} characters (got {len(value)})"
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf"):
            return f"contains a control or invisible character (U+{ord(ch):04X})"
    return None


def _clean(value: Any) -> Any:
    """NaN and pandas NA become None; numpy scalars become Python scalars."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value


def _flag(value: Any, default: bool) -> bool:
    v = _clean(value)
    if v is None or v == "":
        return default
    return str(v).strip().lower() in {"1", "true", "yes", "y"}


def member_dict(m: Member) -> dict[str, Any]:
    """A member row as a plain dict (what the API serialises, and what audit rows record)."""
    return {c: getattr(m, c) for c in MEMBER_COLUMNS} | {"version": m.version}


def _location(m: Member) -> dict[str, Any]:
    return {f: getattr(m, f) for f in LOCATION_FIELDS}


def upsert_members(s: Session, placed: pd.DataFrame, key_id: str | None) -> dict[str, int]:
    """Insert new members and update changed ones from a placed roster frame.

    A changed location closes the old address row and opens a new one. Returns counts
    ``created``, ``updated``, ``unchanged``. Runs inside the caller's transaction.
    """
    existing = {m.member_id: m for m in s.scalars(select(Member)).all()}
    now = utcnow()
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    new_members: list[dict[str, Any]] = []
    new_addresses: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for rec in placed.to_dict("records"):
        values = {
            "member_id": str(rec["member_id"]),
            "name": str(_clean(rec.get("name")) or ""),
            "address": str(_clean(rec.get("address")) or ""),
            "lon": _clean(rec.get("lon")),
            "lat": _clean(rec.get("lat")),
            "city_zh": str(_clean(rec.get("city_zh")) or ""),
            "district_zh": str(_clean(rec.get("district_zh")) or ""),
            "subdistrict_zh": str(_clean(rec.get("geo_subdistrict_zh")) or _clean(rec.get("subdistrict_zh")) or ""),
            "industry": str(_clean(rec.get("industry")) or ""),
            "full_member": _flag(rec.get("full_member"), True),
            "status": str(_clean(rec.get("status")) or "active"),
            "theme": str(_clean(rec.get("theme")) or ""),
            "role": str(_clean(rec.get("role")) or ""),
            "frozen": _flag(rec.get("frozen"), False),
            "weight": int(_clean(rec.get("weight")) or 1),
            "group_id": str(_clean(rec.get("group_id")) or ""),
            "geo_precision": str(_clean(rec.get("geo_precision")) or ("exact" if _clean(rec.get("lon")) is not None else "none")),
            "geo_status": str(_clean(rec.get("geo_status")) or ("ok" if _clean(rec.get("lon")) is not None else "failed")),
        }
        datum = str(_clean(rec.get("datum")) or "wgs84")
        old = existing.get(values["member_id"])
        if old is None:
            new_members.append(values | {"version": 1, "created_at": now, "updated_at": now})
            new_addresses.append(_address_values(values, datum, "import", now))
            audits.append({"key_id": key_id, "action": "import", "entity": "member", "entity_id": values["member_id"],
                           "before": None, "after": _jsonable(values), "at": now})
            counts["created"] += 1
            continue
        before = member_dict(old)
        changed = {k: v for k, v in values.items() if k != "member_id" and before.get(k) != v}
        if not changed:
            counts["unchanged"] += 1
            continue
        moved = any(k in LOCATION_FIELDS for k in changed)
        for k, v in changed.items():
            setattr(old, k, v)
        old.version += 1
        old.updated_at = now
        if moved:
            _close_address(s, old.member_id, now)
            new_addresses.append(_address_values(values, datum, "import", now))
        audits.append({"key_id": key_id, "action": "import", "entity": "member", "entity_id": old.member_id,
                       "before": _jsonable({k: before[k] for k in changed}), "after": _jsonable(changed), "at": now})
        counts["updated"] += 1
    if new_members:
        s.execute(insert(Member), new_members)
    if new_addresses:
        s.execute(insert(MemberAddress), new_addresses)
    if audits:
        s.execute(insert(AuditEntry), audits)
    return counts


def _address_values(values: dict[str, Any], datum: str, source: str, now: Any) -> dict[str, Any]:
    return {"member_id": values["member_id"], "address": values["address"], "lon": values["lon"], "lat": values["lat"],
            "datum": datum, "district_zh": values["district_zh"], "geo_precision": values["geo_precision"],
            "geo_status": values["geo_status"], "source": source, "valid_from": now, "valid_to": None}


def _close_address(s: Session, member_id: str, now: Any) -> None:
    s.execute(update(MemberAddress).where(MemberAddress.member_id == member_id, MemberAddress.valid_to.is_(None))
              .values(valid_to=now))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}


def members_frame(s: Session) -> pd.DataFrame:
    """Every member, in the roster columns the library's pipeline expects (full_member/frozen 0/1)."""
    rows = s.execute(select(*[getattr(Member, c) for c in MEMBER_COLUMNS]).order_by(Member.member_id)).all()
    df = pd.DataFrame(rows, columns=MEMBER_COLUMNS)
    df["full_member"] = df["full_member"].astype(int)
    df["frozen"] = df["frozen"].astype(int)
    df["lon"] = pd.to_numeric(df["lon"], errors="coerce")
    df["lat"] = pd.to_numeric(df["lat"], errors="coerce")
    if not (df["city_zh"].fillna("") != "").any():
        df = df.drop(columns="city_zh")  # a Shenzhen roster has no city column (its plans are as before)
    return df


def list_members(s: Session, district: str | None, status: str | None, limit: int, offset: int) -> tuple[list[Member], int]:
    """A page of members (by id), optionally of one district and status, and the total count."""
    q = select(Member)
    c = select(func.count()).select_from(Member)
    if district:
        q, c = q.where(Member.district_zh == district), c.where(Member.district_zh == district)
    if status:
        q, c = q.where(Member.status == status), c.where(Member.status == status)
    total = int(s.scalar(c) or 0)
    return list(s.scalars(q.order_by(Member.member_id).limit(limit).offset(offset)).all()), total


def set_fields(s: Session, m: Member, changes: dict[str, Any], key_id: str | None, source: str,
               datum: str = "wgs84", action: str = "update") -> dict[str, Any]:
    """Change a member's fields in the caller's transaction; a moved location opens a new address row.

    Returns the audit ``before`` values of the changed fields (empty when nothing changed).
    """
    before = member_dict(m)
    changed = {k: v for k, v in changes.items() if before.get(k) != v}
    if not changed:
        return {}
    now = utcnow()
    for k, v in changed.items():
        setattr(m, k, v)
    m.version += 1
    m.updated_at = now
    if any(k in LOCATION_FIELDS for k in changed):
        _close_address(s, m.member_id, now)
        s.add(MemberAddress(**_address_values(member_dict(m), datum, source, now)))
    s.add(AuditEntry(key_id=key_id, action=action, entity="member", entity_id=m.member_id,
                     before=_jsonable({k: before[k] for k in changed}), after=_jsonable(changed), at=now))
    return {k: before[k] for k in changed}


def address_history(s: Session, member_id: str) -> list[MemberAddress]:
    """Every address of a member, oldest first."""
    return list(s.scalars(select(MemberAddress).where(MemberAddress.member_id == member_id)
                          .order_by(MemberAddress.id)).all())

