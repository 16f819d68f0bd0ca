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

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import library
from api.context import ServiceContext
from api.problems import ProblemError
from geoalloc.model import GeoPrecision, GeoStatus, MemberStatus
from geoalloc.store.keys import Principal
from geoalloc.store.members import set_fields
from geoalloc.store.models import AuditEntry, IdempotencyRecord, Member, Plan, RelocationEvent
from geoalloc.store.plans import apply_assignment_changes, assignment_values, branch_values, lock_plan, newest_plan


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


def stored_answer(s: Session, who: Principal, idem_key: str, req_hash: str) -> tuple[int, dict[str, Any]] | None:
    """The stored answer for a retried call, or None; 422 if the key was used for another request."""
    rec = s.get(IdempotencyRecord, (who.key_id, idem_key))
    if rec is None:
        return None
    if rec.request_hash != req_hash:
        raise ProblemError(422, "this Idempotency-Key was already used for a different request",
                           title="Idempotency-Key reused")
    return rec.status_code, rec.response


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rows_after(state: Any, plan_id: int, member_ids: set[str], branch_ids: set[str]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Assignment and branch rows of the touched members/branches as the library state now has them.

    ``PlanState.to_frames()`` rebuilds the whole plan (milliseconds per call at 7,000 members); a
    relocation touches a handful of rows, so we read just those from the state's arrays, in the
    same units and rounding as ``to_frames``. Branches that no longer have members are removed.
    """
    from geoalloc.projection import to_lonlat

    a_rows: list[dict[str, Any]] = []
    for mid in sorted(member_ids):
        i = state.index.get(mid)
        if i is None:
            continue
        j = int(state.branch[i])
        lon, lat = to_lonlat(state.xy[i:i + 1, 0], state.xy[i:i + 1, 1])[0] if np.isfinite(state.xy[i]).all() else (None, None)
        dist = float(np.hypot(*(state.xy[i] - state.site[j]))) if j >= 0 else None
        d = state.mdist[i]
        row = assignment_values(plan_id, {
            "member_id": mid, "branch_id": state.bids[j] if j >= 0 else "",
            "distance_m": None if dist is None else round(dist, 1),
            "district_zh": state.dnames[d] if d >= 0 else "", "lon": lon, "lat": lat,
            "full_member": int(state.full[i]), "status": state.status[i]})
        row.pop("geo_precision")  # the state does not carry it; the caller sets it for the moved member
        a_rows.append(row)
    b_rows: list[dict[str, Any]] = []
    removed: list[str] = []
    for bid in sorted(branch_ids):
        j = state.bindex.get(bid)
        if j is None or state.size[j] <= 0:
            removed.append(bid)
            continue
        members = sorted(state.members_of[j])
        dists = np.hypot(*(state.xy[members] - state.site[j]).T) if members else np.zeros(0)
        lon, lat = to_lonlat(state.site[j:j + 1, 0], state.site[j:j + 1, 1])[0]
        bd = state.bdist[j]
        b_rows.append(branch_values(plan_id, {
            "branch_id": bid, "lon": float(lon), "lat": float(lat), "district_zh": state.dnames[bd] if bd >= 0 else "",
            "size": int(state.size[j]), "n_full": int(state.nfull[j]),
            "mean_distance_m": round(float(np.round(dists, 1).mean()), 1) if len(dists) else 0.0,
            "max_distance_m": round(float(np.round(dists, 1).max()), 1) if len(dists) else 0.0,
            "joint": int(len({state.mdist[i] for i in members}) > 1)}))
    return a_rows, b_rows, removed


def _lock_newest(s: Session) -> Plan | None:
    """Lock the newest plan's row; if a newer plan was committed meanwhile, lock that one instead.

    On SQLite the transaction began with ``BEGIN IMMEDIATE``: nobody else can write, so the
    newest plan cannot change under us and one read is enough.
    """
    if s.get_bind().dialect.name == "sqlite":
        return newest_plan(s)
    for _ in range(5):
        plan = newest_plan(s)
        if plan is None:
            return None
        locked = lock_plan(s, plan.id)
        newest = newest_plan(s)
        if newest is not None and locked is not None and newest.id == locked.id:
            return locked
    raise ProblemError(503, "plans are changing too fast to relocate; retry", headers={"Retry-After": "1"})


def apply(s: Session, ctx: ServiceContext, plan: Plan, member: Member, *, lon: float | None, lat: float | None,
          district_zh: str, full_member: bool, status: str, geo_status: str, key_id: str | None,
          action_label: str = "relocate") -> tuple[Any, RelocationEvent, list[tuple[str, Any, Any]]]:
    """Relocate one member in ``plan``'s cached state and write the footprint (caller's transaction).

    The caller must, after its commit, tell the cache the state is now ``plan.state_version``
    (see :func:`_committed`); on failure it must drop the cache.
    """
    state = ctx.cache.get(s, plan)
    rel = state.relocate(member.member_id, lon=lon, lat=lat, district_zh=district_zh, full_member=full_member,
                         status=status, geo_status=geo_status)
    changes = [(str(m), f or None, t or None) for m, f, t in (rel.changes or [])]
    touched_members = {member.member_id} | {m for m, _, _ in changes}
    touched_branches = {b for _, f, t in changes for b in (f, t) if b}
    for b in (rel.from_branch, rel.to_branch):
        if b:
            touched_branches.add(str(b))
    a_rows, b_rows, removed = _rows_after(state, plan.id, touched_members, touched_branches)
    for r in a_rows:
        if r["member_id"] == member.member_id:
            r["geo_precision"] = member.geo_precision
    apply_assignment_changes(s, plan.id, a_rows, b_rows, removed)
    event = RelocationEvent(plan_id=plan.id, member_id=member.member_id, from_branch=rel.from_branch or None,
                            to_branch=rel.to_branch or None, action=str(rel.action), reason=str(rel.reason),
                            distance_m=_finite(rel.distance_m), changes=[list(c) for c in changes], key_id=key_id)
    s.add(event)
    audits = [{"key_id": key_id, "action": action_label, "entity": "assignment", "entity_id": m, "plan_id": plan.id,
               "before": {"branch_id": f}, "after": {"branch_id": t}} for m, f, t in changes]
    if audits:
        s.execute(AuditEntry.__table__.insert(), audits)
    plan.state_version += 1
    s.info["geoalloc.pending_state"] = (plan.id, plan.state_version, state)
    return rel, event, changes


def _committed(ctx: ServiceContext, pending: tuple[int, int, Any] | None) -> None:
    """After a commit: the cached state is the plan at its new version (no reload next time)."""
    if pending is not None:
        ctx.cache.put(*pending)


def relocate(ctx: ServiceContext, who: Principal, member_id: str, body: dict[str, Any],
             idem_key: str | None) -> tuple[int, dict[str, Any]]:
    """``POST /members/{id}/relocate``: returns (HTTP status, response body)."""
    req_hash = request_hash(member_id, body)
    with ctx.db.read() as s:
        if idem_key:
            answer = stored_answer(s, who, idem_key, req_hash)
            if answer is not None:
                return answer
        m = s.get(Member, member_id)
        if m is None or not who.sees_district(m.district_zh):
            raise ProblemError(404, f"no member {member_id!r} in your districts")
    where = locate(member_id, body.get("address"), body.get("lon"), body.get("lat"), str(body.get("datum") or "wgs84"))

    with ctx.plan_lock:
        try:
            with ctx.db.write() as s:
                if idem_key:
                    answer = stored_answer(s, who, idem_key, req_hash)
                    if answer is not None:
                        return answer
                plan = _lock_newest(s)
                m = s.get(Member, member_id)
                if m is None or not who.sees_district(m.district_zh):
                    raise ProblemError(404, f"no member {member_id!r} in your districts")
                status = m.status
                if where.geo_status == GeoStatus.OUT_OF_CITY.value:
                    status = MemberStatus.TRANSFER_OUT.value
                elif status == MemberStatus.TRANSFER_OUT.value and where.geo_status != GeoStatus.FAILED.value:
                    status = MemberStatus.ACTIVE.value  # back in the city
                out = _store(s, ctx, who, plan, m, where, status)
                if plan is not None:
                    out["plan_version"] = plan.state_version
                if idem_key:
                    s.add(IdempotencyRecord(key_id=who.key_id, idem_key=idem_key, request_hash=req_hash,
                                            status_code=200, response=out))
                pending = s.info.pop("geoalloc.pending_state", None)
            _committed(ctx, pending)
        except BaseException:
            ctx.cache.invalidate()  # the in-memory plan may be ahead of what was committed
            raise
        ctx.metrics.relocations.labels(action=out["action"]).inc()
        return 200, out


def _store(s: Session, ctx: ServiceContext, who: Principal, plan: Plan | None, m: Member, where: Location,
           status: str) -> dict[str, Any]:
    """Write the member's new location and, when there is a plan, their new place in it."""
    # Out of the city (or not placed): the member stays on their district's books until the transfer is done.
    district = where.district_zh or m.district_zh
    changes_fields: dict[str, Any] = {"lon": where.lon, "lat": where.lat, "district_zh": district,
                                      "geo_precision": where.precision, "geo_status": where.geo_status,
                                      "status": status}
    if where.address is not None:
        changes_fields["address"] = where.address
    if where.subdistrict_zh or where.address is not None:
        changes_fields["subdistrict_zh"] = where.subdistrict_zh
    set_fields(s, m, changes_fields, who.key_id, source="relocate", datum=where.datum, action="relocate")
    if plan is None:
        event = RelocationEvent(plan_id=None, member_id=m.member_id, action="no_plan",
                                reason="no plan yet: the new address is stored", key_id=who.key_id, changes=[])
        s.add(event)
        s.flush()
        return {"member_id": m.member_id, "plan_id": 0, "plan_version": 0, "from_branch": None, "to_branch": None,
                "action": "no_plan", "reason": "no plan yet: the new address is stored", "distance_m": None,
                "status": status, "geo_status": where.geo_status, "geo_precision": where.precision, "changes": [],
                "event_id": int(event.id)}
    rel, event, changes = apply(s, ctx, plan, m, lon=where.lon, lat=where.lat, district_zh=where.district_zh,
                                full_member=bool(m.full_member), status=status, geo_status=where.geo_status,
                                key_id=who.key_id)
    s.flush()
    reason = str(rel.reason)
    if where.reason and where.geo_status != GeoStatus.OK.value:
        reason = f"{reason} (geocoding: {where.reason})"
    return {"member_id": m.member_id, "plan_id": plan.id, "plan_version": plan.state_version,
            "from_branch": rel.from_branch or None, "to_branch": rel.to_branch or None, "action": str(rel.action),
            "reason": reason, "distance_m": _finite(rel.distance_m), "status": status,
            "geo_status": where.geo_status, "geo_precision": where.precision,
            "changes": [{"member_id": a, "from_branch": f, "to_branch": t} for a, f, t in changes],
            "event_id": int(event.id)}


def apply_status_change(ctx: ServiceContext, who: Principal, member_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``PATCH /members/{id}``: store the fields; a changed status or full-member flag re-places the member."""
    with ctx.plan_lock:
        try:
            with ctx.db.write() as s:
                plan = _lock_newest(s)
                m = s.get(Member, member_id)
                if m is None or not who.sees_district(m.district_zh):
                    raise ProblemError(404, f"no member {member_id!r} in your districts")
                before_status, before_full = m.status, bool(m.full_member)
                set_fields(s, m, fields, who.key_id, source="patch", action="update")
                if plan is not None and (m.status != before_status or bool(m.full_member) != before_full):
                    apply(s, ctx, plan, m, lon=m.lon, lat=m.lat, district_zh=m.district_zh,
                          full_member=bool(m.full_member), status=m.status, geo_status=m.geo_status,
                          key_id=who.key_id, action_label="update")
                s.flush()
                pending = s.info.pop("geoalloc.pending_state", None)
            _committed(ctx, pending)
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
