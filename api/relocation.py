"""One member moves: locate the new address, let the library re-place them, store it atomically.

The library's ``PlanState.relocate`` decides (keep the branch, move to a nearby branch with
room, or re-solve the few branches around) and never leaves a branch outside its limits.
This module only makes that safe to call from many requests at once:

* relocations of the newest plan are serialised: an in-process lock (cheap, fair) plus the
  database lock (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on the plan row on
  PostgreSQL) for other processes;
* the member row, their address history, the plan's assignment and branch rows, the
  relocation event, the audit rows, the plan's version and the idempotency record are
  written in one transaction; if it fails, the cached in-memory plan is dropped and reloaded;
* a retried call with the same ``Idempotency-Key`` gets the stored answer, not a second move.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from api import library
from api.context import ServiceContext
from api.problems import ProblemError
from geoalloc.model import GeoPrecision, GeoStatus
from geoalloc.store.keys import Principal
from geoalloc.store.members import set_fields
from geoalloc.store.models import (
    AuditEntry,
    IdempotencyRecord,
    Member,
    Plan,
    RelocationEvent,
    utcnow,
)
from geoalloc.store.plans import (
    apply_assignment_changes,
    assignment_values,
    branch_values,
)


@dataclass(frozen=True)
class Location:
    """Where a member now lives, as the geocoder (or the caller's point) says."""

    address: str | None
    lon: float | None
    lat: float | None
    datum: str
    district_zh: str
    subdistrict_zh: str
    precision: str
    geo_status: str
    reason: str


def locate(member_id: str, address: str | None, lon: float | None, lat: float | None, datum: str) -> Location:
    """Geocode an address offline, or convert a point to WGS-84 and find its district."""
    if address is not None:
        r = library.geocode_address(address, member_id)
        return Location(address, r.lon, r.lat, "wgs84", r.district_zh or "", r.subdistrict_zh or "",
                        str(r.precision), str(r.status), r.reason or "")
    assert lon is not None and lat is not None
    wlon, wlat = library.to_wgs84(lon, lat, datum)
    district = library.district_of(wlon, wlat)
    if district is None:
        return Location(None, wlon, wlat, datum, "", "", GeoPrecision.EXACT.value, GeoStatus.OUT_OF_CITY.value,
                        "the point lies outside Shenzhen")
    return Location(None, wlon, wlat, datum, district, "", GeoPrecision.EXACT.value, GeoStatus.OK.value, "")


def request_hash(member_id: str, body: dict[str, Any]) -> str:
    """What an idempotent retry must repeat exactly."""
    return hashlib.sha256(json.dumps([member_id, body], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def stored_answer(conn: Any, who: Principal, idem_key: str, req_hash: str) -> tuple[int, dict[str, Any]] | None:
    """The stored answer for a retried call, or None; 422 if the key was used for another request."""
    rec = conn.execute(_STORED_ANSWER, {"key_id": who.key_id, "idem_key": idem_key}).first()
    if rec is None:
        return None
    if rec.request_hash != req_hash:
        raise ProblemError(422, "this Idempotency-Key was already used for a different request",
                           title="Idempotency-Key reused")
    return int(rec.status_code), dict(rec.response)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rows_after(state: Any, plan_id: int, member_ids: set[str], branch_ids: set[str]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Database rows of the touched members and branches as the library state now has them,
    and the ids of branches left without members (to delete)."""
    a_rows = []
    for rec in state.member_rows(sorted(member_ids)):
        row = assignment_values(plan_id, rec)
        row.pop("geo_precision")  # the state does not carry it; the caller sets it for the moved member
        a_rows.append(row)
    branch_recs, removed = state.branch_rows(sorted(branch_ids))
    return a_rows, [branch_values(plan_id, rec) for rec in branch_recs], removed


# Built once: a statement object built per call costs more than its execution (cache-key walk).
_i, _p = IdempotencyRecord.__table__, Plan.__table__
_STORED_ANSWER = select(_i.c.request_hash, _i.c.status_code, _i.c.response).where(
    _i.c.key_id == bindparam("key_id"), _i.c.idem_key == bindparam("idem_key"))
_NEWEST = (select(_p.c.id, _p.c.state_version, _p.c.policy).where(_p.c.status == "ready")
           .order_by(_p.c.id.desc()).limit(1))


@dataclass(frozen=True)
class PlanHead:
    """The newest plan's id, version and policy (what a relocation needs of the plan row)."""

    id: int
    state_version: int
    policy: dict[str, Any]


def newest_head(conn: Any, lock: bool) -> PlanHead | None:
    """The newest ready plan, locked against other writers when ``lock`` (PostgreSQL: FOR UPDATE).

    On SQLite the transaction began with ``BEGIN IMMEDIATE``: nobody else can write, so the newest
    plan cannot change under us. On PostgreSQL a plan committed between our read and our lock is
    caught by reading again after locking.
    """
    t, q = Plan.__table__, _NEWEST
    if not lock or conn.dialect.name == "sqlite":
        row = conn.execute(q).first()
        return PlanHead(int(row.id), int(row.state_version), dict(row.policy or {})) if row else None
    for _ in range(5):
        row = conn.execute(q).first()
        if row is None:
            return None
        locked = conn.execute(select(t.c.id, t.c.state_version, t.c.policy).where(t.c.id == row.id).with_for_update()).first()
        again = conn.execute(q).first()
        if again is not None and locked is not None and again.id == locked.id:
            return PlanHead(int(locked.id), int(locked.state_version), dict(locked.policy or {}))
    raise ProblemError(503, "plans are changing too fast to relocate; retry", headers={"Retry-After": "1"})


def apply(conn: Any, ctx: ServiceContext, plan: PlanHead, member_id: str, *, lon: float | None, lat: float | None,
          district_zh: str, full_member: bool, status: str, geo_status: str, geo_precision: str,
          key_id: str | None, audits: list[dict[str, Any]], action_label: str = "relocate",
          ) -> tuple[Any, int, list[tuple[str, Any, Any]], tuple[int, int, Any]]:
    """Relocate one member in the plan's cached state and write the footprint on ``conn``.

    Returns the library's Relocation, the event id, the branch changes and the cache entry to
    record once the caller has committed (on failure the caller drops the cache instead).
    """
    state = ctx.cache.get(conn, plan.id, plan.state_version, plan.policy)
    rel = state.relocate(member_id, lon=lon, lat=lat, district_zh=district_zh, full_member=full_member,
                         status=status, geo_status=geo_status)
    state.take_events()  # recorded as a relocation_events row below; the state's list would only grow
    changes = [(str(m), f or None, t or None) for m, f, t in (rel.changes or [])]
    touched_members = {member_id} | {m for m, _, _ in changes}
    touched_branches = {b for _, f, t in changes for b in (f, t) if b}
    for b in (rel.from_branch, rel.to_branch):
        if b:
            touched_branches.add(str(b))
    a_rows, b_rows, removed = _rows_after(state, plan.id, touched_members, touched_branches)
    for r in a_rows:
        if r["member_id"] == member_id:
            r["geo_precision"] = geo_precision
    apply_assignment_changes(conn, plan.id, a_rows, b_rows, removed)
    ev = RelocationEvent.__table__
    now = utcnow()
    event_id = conn.execute(ev.insert().returning(ev.c.id), [{
        "plan_id": plan.id, "member_id": member_id, "from_branch": rel.from_branch or None,
        "to_branch": rel.to_branch or None, "action": str(rel.action), "reason": str(rel.reason),
        "distance_m": _finite(rel.distance_m), "changes": [list(c) for c in changes], "key_id": key_id,
        "created_at": now}]).scalar_one()
    audits += [{"key_id": key_id, "action": action_label, "entity": "assignment", "entity_id": m, "plan_id": plan.id,
                "before": {"branch_id": f}, "after": {"branch_id": t}, "at": now} for m, f, t in changes]
    new_version = plan.state_version + 1
    p = Plan.__table__
    conn.execute(p.update().where(p.c.id == plan.id).values(state_version=new_version))
    return rel, int(event_id), changes, (plan.id, new_version, state)


async def relocate(ctx: ServiceContext, who: Principal, member_id: str, body: dict[str, Any],
                   idem_key: str | None) -> tuple[int, dict[str, Any]]:
    """``POST /members/{id}/relocate``: returns (HTTP status, response body).

    A point is located inline (microseconds); an address is geocoded in the thread pool, after
    checking that the caller may see the member (no geocoding on behalf of other districts).
    The write itself is queued to the relocation writer (group commit, see ``api.batching``),
    which checks scope and idempotency again inside its transaction.
    """
    from fastapi.concurrency import run_in_threadpool

    from api.batching import Request

    req_hash = request_hash(member_id, body) if idem_key is not None else ""  # only idempotent calls store one
    datum = str(body.get("datum") or "wgs84")
    where: Location | tuple[float, float, str]
    if body.get("address") is not None:
        where = await run_in_threadpool(_checked_geocode, ctx, who, member_id, str(body["address"]))
    else:
        # Located by the writer, with the rest of its batch.
        where = (float(body["lon"]), float(body["lat"]), datum)
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[tuple[int, dict[str, Any]]] = loop.create_future()
    ctx.writer.submit(Request(who, member_id, where, idem_key, req_hash, waiter=waiter))
    # a timer instead of asyncio.wait_for (which wraps the wait in more futures and callbacks)
    timer = loop.call_later(WRITER_TIMEOUT_S, _time_out, waiter)
    try:
        return await waiter
    finally:
        timer.cancel()


#: A relocation not answered by then fails (500); its write may still happen, as after any timeout.
WRITER_TIMEOUT_S = 60.0


def _time_out(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"the relocation writer did not answer in {WRITER_TIMEOUT_S:.0f} s"))


def _checked_geocode(ctx: ServiceContext, who: Principal, member_id: str, address: str) -> Location:
    with ctx.db.engine.connect() as conn:
        district = conn.execute(select(Member.__table__.c.district_zh)
                                .where(Member.__table__.c.member_id == member_id)).scalar()
        conn.rollback()
    if district is None or not who.sees_district(district):
        raise ProblemError(404, f"no member {member_id!r} in your districts")
    return locate(member_id, address, None, None, "wgs84")


def apply_status_change(ctx: ServiceContext, who: Principal, member_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``PATCH /members/{id}``: store the fields; a changed status or full-member flag re-places the member."""
    with ctx.plan_lock:
        pending = None
        try:
            with ctx.db.write() as s:
                plan = newest_head(s.connection(), lock=True)
                m = s.get(Member, member_id)
                if m is None or not who.sees_district(m.district_zh):
                    raise ProblemError(404, f"no member {member_id!r} in your districts")
                before_status, before_full = m.status, bool(m.full_member)
                set_fields(s, m, fields, who.key_id, source="patch", action="update")
                s.flush()
                if plan is not None and (m.status != before_status or bool(m.full_member) != before_full):
                    audits: list[dict[str, Any]] = []
                    _, _, _, pending = apply(
                        s.connection(), ctx, plan, m.member_id, lon=m.lon, lat=m.lat, district_zh=m.district_zh,
                        full_member=bool(m.full_member), status=m.status, geo_status=m.geo_status,
                        geo_precision=m.geo_precision, key_id=who.key_id, audits=audits, action_label="update")
                    if audits:
                        s.connection().execute(AuditEntry.__table__.insert(), audits)
            if pending is not None:
                ctx.cache.put(*pending)
            return {"member_id": member_id}
        except BaseException:
            ctx.cache.invalidate()
            raise


def replay(s: Session, state: Any, since_event_id: int) -> int:
    """Re-apply to a freshly computed plan every member change committed after its snapshot.

    A plan job reads members at event ``since_event_id`` and takes seconds; relocations keep
    landing on the old plan meanwhile. Replaying them with the members' current data on the new
    plan's state (under the plan lock) makes sure no update is lost. Returns members replayed.
    """
    ids = list(dict.fromkeys(s.scalars(select(RelocationEvent.member_id).where(RelocationEvent.id > since_event_id)
                                       .order_by(RelocationEvent.id)).all()))
    for mid in ids:
        m = s.get(Member, mid)
        if m is None:
            continue
        state.relocate(mid, lon=m.lon, lat=m.lat, district_zh=m.district_zh, full_member=bool(m.full_member),
                       status=m.status, geo_status=m.geo_status)
    return len(ids)

