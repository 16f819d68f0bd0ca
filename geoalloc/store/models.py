"""The relational schema: members and their address history, versioned plans, keys, audit, jobs.

Points are stored as ``lon``/``lat`` WGS-84 floats on every database. On PostgreSQL the
migration adds a generated ``geom geometry(Point, 4326)`` column with a GiST index beside
them (see ``migrations/versions/0001_initial.py``), so spatial queries can use PostGIS
while the ORM and SQLite see plain floats: one schema, two engines, no divergent code.

Plans are never updated in place except for the relocations that apply to the newest plan;
each such change bumps ``plans.state_version`` so every in-memory cache can tell it is stale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Timestamps are UTC everywhere (the API prints them as ISO 8601 with offset)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every engine (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of the service's tables."""


class Member(Base):
    """A member as the organisation knows them now (the current address is also in the history)."""

    __tablename__ = "members"

    member_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    city_zh: Mapped[str] = mapped_column(String(32), default="", server_default="")  # "" : Shenzhen
    district_zh: Mapped[str] = mapped_column(String(32), default="", index=True)
    subdistrict_zh: Mapped[str] = mapped_column(String(64), default="")
    industry: Mapped[str] = mapped_column(String(64), default="")
    full_member: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    theme: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(64), default="")
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    group_id: Mapped[str] = mapped_column(String(64), default="")
    geo_precision: Mapped[str] = mapped_column(String(16), default="none")
    geo_status: Mapped[str] = mapped_column(String(16), default="failed")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberAddress(Base):
    """Every address a member has had; ``valid_to`` is NULL for the current one."""

    __tablename__ = "member_addresses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(Text, default="")
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    datum: Mapped[str] = mapped_column(String(8), default="wgs84")
    district_zh: Mapped[str] = mapped_column(String(32), default="")
    geo_precision: Mapped[str] = mapped_column(String(16), default="none")
    geo_status: Mapped[str] = mapped_column(String(16), default="failed")
    source: Mapped[str] = mapped_column(String(16), default="import")  # import | relocate | patch
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Plan(Base):
    """One version of the allocation. A new plan never overwrites an old one."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="form")  # form | rebalance | import
    status: Mapped[str] = mapped_column(String(16), default="ready")
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, deferred=True)  # large: load on use
    state_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Branch(Base):
    """A branch of one plan (branches.csv of the plan directory)."""

    __tablename__ = "branches"

    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True)
    branch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    city_zh: Mapped[str] = mapped_column(String(32), default="", server_default="")
    district_zh: Mapped[str] = mapped_column(String(32), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    n_full: Mapped[int] = mapped_column(Integer, default=0)
    mean_distance_m: Mapped[float] = mapped_column(Float, default=0.0)
    max_distance_m: Mapped[float] = mapped_column(Float, default=0.0)
    joint: Mapped[bool] = mapped_column(Boolean, default=False)
    region: Mapped[str] = mapped_column(String(96), default="", server_default="")  # district or district·theme


class Assignment(Base):
    """One member's place in one plan (assignments.csv of the plan directory)."""

    __tablename__ = "assignments"
    __table_args__ = (Index("ix_assignments_plan_branch", "plan_id", "branch_id"),)

    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), primary_key=True)
    branch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    city_zh: Mapped[str] = mapped_column(String(32), default="", server_default="")
    district_zh: Mapped[str] = mapped_column(String(32), default="")
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    geo_precision: Mapped[str] = mapped_column(String(16), default="none")
    full_member: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="active")
    weight: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    group_id: Mapped[str] = mapped_column(String(64), default="", server_default="")


class RelocationEvent(Base):
    """A relocation as the API applied it: who, when, from, to, why, and every member it moved."""

    __tablename__ = "relocation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True, nullable=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.member_id"), index=True)
    from_branch: Mapped[str | None] = mapped_column(String(64), nullable=True)
    to_branch: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    changes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """Every change anyone made: who (API key id), when, what, before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(128), default="")
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ApiKey(Base):
    """An API key: only a hash of its secret is stored; the plaintext is shown once."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    district_zh: Mapped[str | None] = mapped_column(String(32), nullable=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IdempotencyRecord(Base):
    """The stored answer to a call made with an ``Idempotency-Key``, per API key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        ForeignKeyConstraint(["key_id"], ["api_keys.key_id"], ondelete="CASCADE"),
    )

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idem_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Job(Base):
    """A background job (forming or rebalancing a plan). Rows outlive the process that ran them."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # form | rebalance
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|succeeded|failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
