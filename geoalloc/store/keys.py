"""API keys: create (plaintext shown once), list, revoke, and check a presented key.

A key reads ``gak_<key_id>_<secret>``. Only SHA-256 of the secret is stored: the secret is 256
random bits, so a fast hash is enough (there is nothing to brute-force), and checking a key
costs one primary-key lookup plus a constant-time compare, which keeps the relocation path fast.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from geoalloc.store.db import Database, init_db
from geoalloc.store.models import ApiKey, AuditEntry, utcnow

ROLES = ("viewer", "planner", "admin")
_PREFIX = "gak"


class KeyError_(ValueError):
    """A key request that cannot be honoured (unknown role or district, unknown key id)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and district scope (None: every district)."""

    key_id: str
    role: str
    district_zh: str | None

    def sees_district(self, district: str | None) -> bool:
        """Whether this caller may see personal data of a member in ``district``."""
        if self.role == "admin":
            return True
        if self.role != "planner":
            return False
        return self.district_zh is None or self.district_zh == (district or "")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_district(district: str | None) -> str | None:
    if not district:
        return None
    from geoalloc.districts import district_names

    names = district_names()
    if district not in names:
        raise KeyError_(f"unknown district {district!r} (expected one of {', '.join(names)})")
    return district


def add_key(db: Database, role: str, district: str | None = None, label: str = "", by: str | None = None) -> tuple[str, str]:
    """Store a new key; returns ``(key_id, plaintext)``. The plaintext is never stored."""
    if role not in ROLES:
        raise KeyError_(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    if district and role != "planner":
        raise KeyError_(f"a district scopes planner keys only: an {role} key sees "
                        f"{'every district' if role == 'admin' else 'no personal data in any district'}; "
                        "create it without a district")
    district = _check_district(district)
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    with db.write() as s:
        s.add(ApiKey(key_id=key_id, secret_hash=_hash(secret), role=role, district_zh=district, label=label))
        s.add(AuditEntry(key_id=by, action="create", entity="api_key", entity_id=key_id,
                         after={"role": role, "district_zh": district, "label": label}))
    return key_id, f"{_PREFIX}_{key_id}_{secret}"


def key_rows(db: Database) -> list[dict[str, Any]]:
    """Every key (never a secret or hash): id, role, district, label, created, revoked."""
    with db.read() as s:
        rows = s.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()
        return [_row(k) for k in rows]


def _row(k: ApiKey) -> dict[str, Any]:
    return {"key_id": k.key_id, "role": k.role, "district_zh": k.district_zh, "label": k.label,
            "created_at": k.created_at, "revoked_at": k.revoked_at}


def revoke(db: Database, key_id: str, by: str | None = None) -> dict[str, Any]:
    """Revoke a key (effective on its next request); revoking twice keeps the first time."""
    with db.write() as s:
        k = s.get(ApiKey, key_id)
        if k is None:
            raise KeyError_(f"no API key with id {key_id!r}")
        if k.revoked_at is None:
            k.revoked_at = utcnow()
            s.add(AuditEntry(key_id=by, action="revoke", entity="api_key", entity_id=key_id,
                             before={"revoked_at": None}, after={"revoked_at": k.revoked_at.isoformat()}))
        return _row(k)


def authenticate(db: Database, presented: str) -> Principal | None:
    """The caller behind a presented key, or None when it is malformed, unknown or revoked."""
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != _PREFIX:
        return None
    key_id, secret = parts[1], parts[2]
    with db.read() as s:
        k = s.get(ApiKey, key_id)
        if k is None or k.revoked_at is not None:
            return None
        if not hmac.compare_digest(k.secret_hash, _hash(secret)):
            return None
        return Principal(k.key_id, k.role, k.district_zh)


# --- functions the CLI wires (`geoalloc keys ...`) -------------------------------------------


def create_key(db_url: str | None, role: str, district: str | None = None, label: str = "") -> tuple[str, str]:
    """``geoalloc keys create``: make the database if needed, add a key, return (id, plaintext)."""
    db = Database(init_db(db_url))
    try:
        return add_key(db, role, district, label)
    finally:
        db.dispose()


def list_keys(db_url: str | None) -> list[dict[str, Any]]:
    """``geoalloc keys list``: every key without secrets."""
    db = Database(init_db(db_url))
    try:
        return key_rows(db)
    finally:
        db.dispose()


def revoke_key(db_url: str | None, key_id: str) -> dict[str, Any]:
    """``geoalloc keys revoke ID``."""
    db = Database(init_db(db_url))
    try:
        return revoke(db, key_id)
    finally:
        db.dispose()


def format_time(t: datetime | None) -> str:
    """For the CLI table: ISO 8601 to the second, or empty."""
    return t.isoformat(timespec="seconds") if t else ""
