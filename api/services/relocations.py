"""Member changes that touch the newest plan: relocations (one or many) and PATCHes, one write path.

The library's ``PlanState.relocate`` decides where a member goes (keep the branch, move to a
nearby branch with room, or re-solve the few branches around) and never leaves a branch outside
its limits. This module makes that safe and cheap to call from many requests at once:

* every change of a member goes through :class:`MemberWriter`, one thread per service that
  applies queued changes in arrival order, a batch per transaction (group commit): the member
  row, their address history, the plan's assignment and branch rows, the relocation event, the
  audit rows, the plan's version and the idempotency records are committed together or not at
  all; a failed transaction drops the cached plan and retries every change of the batch alone,
  so each gets its own answer;
* writers of the newest plan are serialised by the context's plan lock in this process and by
  the database (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL) across
  processes;
* a district planner's change never changes or reveals another district's members: a move into
  another district is refused before anything happens, and a change whose re-solve would move a
  member the key may not see is rolled back and refused;
* a retried call with the same ``Idempotency-Key`` gets the stored answer, not a second move.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from dataclasses import replace as with_fields
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.exc import IntegrityError

from api.problems import ProblemError
from api.services.locate import Location, locate_address, locate_point
from geoalloc.model import GeoStatus, MemberStatus
from geoalloc.rules import is_other_city
from geoalloc.store.db import WalCheckpointer
from geoalloc.store.keys import Principal
from geoalloc.store.members import LOCATION_FIELDS, _address_values, _jsonable
from geoalloc.store.models import (
    AuditEntry,
    IdempotencyRecord,
    Member,
    MemberAddress,
    Plan,
    RelocationEvent,
    utcnow,
)
from geoalloc.store.plans import apply_assignment_changes, assignment_values, branch_values

if TYPE_CHECKING:
    from api.context import ServiceContext

log = logging.getLogger("geoalloc.api.relocations")

#: Items of ``POST /relocations`` written per transaction: single relocations queued meanwhile
#: are written between two chunks instead of waiting for the whole bulk.
BULK_CHUNK = 250
#: A change not answered by then fails (500); its write may still happen, as after any timeout.
WRITER_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class PlanHead:
    """The newest plan's id, version and policy (what a change needs of the plan row)."""

    id: int
    state_version: int
    policy: dict[str, Any]


@dataclass
class Change:
    """One queued change of one member, and the future its caller waits on.

    ``where`` is a new location (a relocation); ``fields`` are other fields to set (a PATCH).
    """

    who: Principal
    member_id: str
    where: Location | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    action: str = "relocate"
    idem_key: str | None = None
    req_hash: str = ""
    future: Future[tuple[int, dict[str, Any]]] = field(default_factory=Future)
    waiter: asyncio.Future[tuple[int, dict[str, Any]]] | None = None


class ScopeViolation(Exception):
    """A change would move a member its caller may not see: the whole transaction is dropped."""


def request_hash(member_id: str, body: dict[str, Any]) -> str:
    """What an idempotent retry must repeat exactly."""
    return hashlib.sha256(json.dumps([member_id, body], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _other_district(who: Principal, district: str) -> ProblemError | None:
    """A district planner moving a member into another district changes that district's branches."""
    if who.role == "planner" and who.district_zh is not None and district and district != who.district_zh:
        return ProblemError(403, f"the new location is in {district}; this key is scoped to {who.district_zh}. "
                                 f"A relocation into {district} changes its branches: a city-wide planner or an "
                                 "admin must make it", title="Outside your district")
    return None


# --- statements, built once (a statement object built per call costs more than its execution) -----

_m, _a, _e, _p, _i, _audit = (cast(Table, t) for t in (Member.__table__, MemberAddress.__table__,
                                                         RelocationEvent.__table__, Plan.__table__,
                                                         IdempotencyRecord.__table__, AuditEntry.__table__))
#: Member columns a change may set (every update row carries all of them: one executemany).
_MEMBER_SET = ("lon", "lat", "district_zh", "subdistrict_zh", "geo_precision", "geo_status", "status", "address",
               "name", "industry", "full_member", "theme", "role", "frozen")
_MEMBERS = select(_m).where(_m.c.member_id.in_(bindparam("ids", expanding=True)))
_FAMILIES = select(_m).where(_m.c.group_id.in_(bindparam("groups", expanding=True)))
_MEMBER_UPDATE = (_m.update().where(_m.c.member_id == bindparam("_id"))
                  .values({k: bindparam(k) for k in (*_MEMBER_SET, "version", "updated_at")}))
_CLOSE_ADDRESSES = (_a.update().where(_a.c.member_id.in_(bindparam("ids", expanding=True)), _a.c.valid_to.is_(None),
                                      _a.c.valid_from < bindparam("now")).values(valid_to=bindparam("now")))
_INSERT_EVENTS = _e.insert().returning(_e.c.id, sort_by_parameter_order=True)
_INSERT_ADDRESS, _INSERT_AUDIT, _INSERT_IDEM = _a.insert(), _audit.insert(), _i.insert()
_PLAN_VERSION = _p.update().where(_p.c.id == bindparam("_id")).values(state_version=bindparam("state_version"))
_STORED_ANSWER = select(_i.c.request_hash, _i.c.status_code, _i.c.response).where(
    _i.c.key_id == bindparam("key_id"), _i.c.idem_key == bindparam("idem_key"))
_NEWEST = (select(_p.c.id, _p.c.state_version, _p.c.policy).where(_p.c.status == "ready")
           .order_by(_p.c.id.desc()).limit(1))


def newest_head(conn: Any, lock: bool) -> PlanHead | None:
    """The newest ready plan, locked against other writers when ``lock`` (PostgreSQL: FOR UPDATE).

    On SQLite the transaction began with ``BEGIN IMMEDIATE``: nobody else can write, so the newest
    plan cannot change under us. On PostgreSQL a plan committed between our read and our lock is
    caught by reading again after locking.
    """
    if not lock or conn.dialect.name == "sqlite":
        row = conn.execute(_NEWEST).first()
        return PlanHead(int(row.id), int(row.state_version), dict(row.policy or {})) if row else None
    for _ in range(5):
        row = conn.execute(_NEWEST).first()
        if row is None:
            return None
        locked = conn.execute(select(_p.c.id, _p.c.state_version, _p.c.policy).where(_p.c.id == row.id)
                              .with_for_update()).first()
        again = conn.execute(_NEWEST).first()
        if again is not None and locked is not None and again.id == locked.id:
            return PlanHead(int(locked.id), int(locked.state_version), dict(locked.policy or {}))
    raise ProblemError(503, "plans are changing too fast to relocate; retry", headers={"Retry-After": "1"})


def stored_answer(conn: Any, key_id: str, idem_key: str, req_hash: str) -> tuple[int, dict[str, Any]] | None:
    """The stored answer for a retried call, or None; 422 if the key was used for another request."""
    rec = conn.execute(_STORED_ANSWER, {"key_id": key_id, "idem_key": idem_key}).first()
    if rec is None:
        return None
    if rec.request_hash != req_hash:
        raise ProblemError(422, "this Idempotency-Key was already used for a different request",
                           title="Idempotency-Key reused")
    return int(rec.status_code), dict(rec.response)


@dataclass
class _Footprint:
    """Rows one transaction writes, collected over its batch and written one executemany per table."""

    member_updates: list[dict[str, Any]] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)
    addresses: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    idem_rows: list[dict[str, Any]] = field(default_factory=list)
    touched_members: set[str] = field(default_factory=set)
    touched_branches: set[str] = field(default_factory=set)


class MemberWriter:
    """The single writer of member changes (and so of the newest plan's assignments) of one service."""

    def __init__(self, ctx: ServiceContext, max_batch: int = 64) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self.queue: queue.Queue[Change | None] = queue.Queue()
        self._conn: Connection | None = None
        #: SQLite: WAL checkpoints on a thread of their own, not inside some relocation's commit.
        self.checkpointer = WalCheckpointer(ctx.db.engine) if ctx.db.sqlite else None
        self._counters: dict[str, Any] = {}  # relocations by action: the labelled Prometheus children
        self.thread = threading.Thread(target=self._loop, name="geoalloc-relocations", daemon=True)
        self.thread.start()

    # -- callers ------------------------------------------------------------------------------------

    async def apply(self, changes: Sequence[Change]) -> list[tuple[int, dict[str, Any]] | BaseException]:
        """From the event loop: queue ``changes`` (in order) and wait for each answer or error."""
        loop = asyncio.get_running_loop()
        for c in changes:
            c.waiter = loop.create_future()
            self.queue.put(c)
        timer = loop.call_later(WRITER_TIMEOUT_S, _time_out, [c.waiter for c in changes])
        try:
            return list(await asyncio.gather(*(c.waiter for c in changes if c.waiter is not None),
                                             return_exceptions=True))
        finally:
            timer.cancel()

    async def apply_one(self, change: Change) -> tuple[int, dict[str, Any]]:
        """:meth:`apply` for one change: its answer, or its error raised."""
        (out,) = await self.apply([change])
        if isinstance(out, BaseException):
            raise out
        return out

    def apply_blocking(self, change: Change) -> tuple[int, dict[str, Any]]:
        """From a worker thread: queue one change and wait for it."""
        self.queue.put(change)
        return change.future.result(timeout=WRITER_TIMEOUT_S)

    def close(self) -> None:
        """Stop after the queued changes are written."""
        self.queue.put(None)
        self.thread.join(timeout=30)
        if self.checkpointer is not None:
            self.checkpointer.close()

    # -- the writer thread --------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                first = self.queue.get()
                if first is None:
                    return
                batch, stop = [first], False
                while len(batch) < self.max_batch:
                    try:
                        nxt = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._run(batch)
                _wake(batch)
                if stop:
                    return
        finally:
            self._drop_connection()

    def _connection(self) -> Connection:
        """The writer's own connection, kept between batches (no pool checkout per batch)."""
        if self._conn is None:
            self._conn = self.ctx.db.writer_connection(checkpoint=self.checkpointer is None)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                if self.ctx.db.sqlite and not self._conn.invalidated:  # back in the pool: checkpoints as usual
                    self._conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                        "PRAGMA wal_autocheckpoint=1000")
                self._conn.close()
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                log.warning("closing the writer's connection failed", exc_info=True)
            self._conn = None

    def _run(self, batch: list[Change]) -> None:
        started = time.perf_counter()
        try:
            self._write(batch)
            self.ctx.metrics.batch_size.observe(len(batch))
            self.ctx.metrics.batch_seconds.observe(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - the transaction failed: nothing of the batch was committed
            self.ctx.cache.invalidate()
            self._drop_connection()  # it may be broken: the next batch opens a fresh one
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(_client_error(exc, batch[0]))
                return
            if not isinstance(exc, ScopeViolation):
                log.warning("a batch of %d member changes failed (%s); retrying one by one", len(batch), exc)
            for c in batch:
                if not c.future.done():
                    self._run([c])

    def _write(self, batch: list[Change]) -> None:
        ctx = self.ctx
        results: list[tuple[Change, dict[str, Any]]] = []
        with ctx.plan_lock:
            conn = self._connection()
            with conn.begin():
                plan = newest_head(conn, lock=True)
                ids = list({c.member_id for c in batch})
                members = {row["member_id"]: dict(row) for row in conn.execute(_MEMBERS, {"ids": ids}).mappings()}
                families = sorted({m["group_id"] for m in members.values() if m.get("group_id")})
                if families:  # a family shares a home: their rows move with the member who moved
                    for row in conn.execute(_FAMILIES, {"groups": families}).mappings():
                        members.setdefault(row["member_id"], dict(row))
                state = ctx.cache.get(conn, plan.id, plan.state_version, plan.policy) if plan else None
                version = plan.state_version if plan else 0
                now = utcnow()
                fp = _Footprint()
                seen_idem: dict[tuple[str, str], dict[str, Any]] = {}
                pending: list[tuple[Change, dict[str, Any], int]] = []  # change, answer, event index
                for c in batch:
                    if c.idem_key:
                        key = (c.who.key_id, c.idem_key)
                        try:
                            answer = stored_answer(conn, c.who.key_id, c.idem_key, c.req_hash)
                        except ProblemError as exc:
                            c.future.set_exception(exc)
                            continue
                        if answer is None and key in seen_idem:  # the same key twice in one batch
                            if seen_idem[key]["hash"] != c.req_hash:
                                c.future.set_exception(ProblemError(
                                    422, "this Idempotency-Key was already used for a different request",
                                    title="Idempotency-Key reused"))
                                continue
                            pending.append((c, seen_idem[key]["out"], -1))
                            continue
                        if answer is not None:
                            c.future.set_result(answer)
                            continue
                    try:
                        out, version = self._one(c, members, plan, state, version, now, fp)
                    except ProblemError as exc:  # refused before anything changed
                        c.future.set_exception(exc)
                        continue
                    pending.append((c, out, len(fp.events) - 1 if "event_id" in out else -1))
                    if c.idem_key:
                        seen_idem[(c.who.key_id, c.idem_key)] = {"hash": c.req_hash, "out": out}
                        fp.idem_rows.append({"key_id": c.who.key_id, "idem_key": c.idem_key,
                                             "request_hash": c.req_hash, "status_code": 200, "response": out,
                                             "created_at": now})
                event_ids = self._flush(conn, fp, plan, state, version, now)
                for c, out, k in pending:
                    if k >= 0:
                        out["event_id"] = int(event_ids[k])
                if fp.idem_rows:  # after the event ids are known: the stored answer is the full one
                    conn.execute(_INSERT_IDEM, fp.idem_rows)
                results = [(c, out) for c, out, _ in pending]
            if state is not None and plan is not None:
                ctx.cache.put(plan.id, version, state)
        for c, out in results:
            action = out.get("action")
            if action:
                counter = self._counters.get(action)
                if counter is None:  # labels() costs more than the increment: one child per action, kept
                    counter = self._counters[action] = ctx.metrics.relocations.labels(action=action)
                counter.inc()
            if not c.future.done():
                c.future.set_result((200, out))

    def _one(self, c: Change, members: dict[str, dict[str, Any]], plan: PlanHead | None, state: Any, version: int,
             now: Any, fp: _Footprint) -> tuple[dict[str, Any], int]:
        """Apply one change to the member row (in ``members``), the plan state and the footprint.

        Every refusal is raised before the state changes; the returned answer is the relocation's
        (for a PATCH, the member id and whether the plan changed).
        """
        m = members.get(c.member_id)
        if m is None or not c.who.sees_district(m["district_zh"]):
            raise ProblemError(404, f"no member {c.member_id!r} in your districts")
        new: dict[str, Any] = {}
        where = c.where
        if (where is not None and where.address is None and where.geo_status == GeoStatus.OUT_OF_CITY.value
                and is_other_city(m.get("city_zh"))):
            # a member of another city (a national roster): Shenzhen's districts do not apply to
            # their point, which is taken as given, in the district they are in (as on import)
            where = with_fields(where, district_zh=str(m["district_zh"] or ""), geo_status=GeoStatus.OK.value, reason="")
        if where is not None:
            status = m["status"]
            if where.geo_status == GeoStatus.OUT_OF_CITY.value:
                status = MemberStatus.TRANSFER_OUT.value
            elif status == MemberStatus.TRANSFER_OUT.value:
                status = MemberStatus.ACTIVE.value
            district = where.district_zh or m["district_zh"]
            refused = _other_district(c.who, district)
            if refused is not None:
                raise refused
            new |= {"lon": where.lon, "lat": where.lat, "district_zh": district, "geo_precision": where.precision,
                    "geo_status": where.geo_status, "status": status}
            if where.address is not None:
                new |= {"address": where.address, "subdistrict_zh": where.subdistrict_zh}
        new |= c.fields
        after = m | new
        activated = new.get("status") == MemberStatus.ACTIVE.value and m["status"] != MemberStatus.ACTIVE.value
        if activated and (after["lon"] is None or after["lat"] is None):
            raise ProblemError(422, f"member {c.member_id!r} has no known home point, so they cannot be active in a "
                                    "plan: relocate them first (POST /members/{id}/relocate with an address or "
                                    "lon/lat)", title="No home point")
        changed = {k: v for k, v in new.items() if m.get(k) != v}
        if changed:
            fp.audits.append({"key_id": c.who.key_id, "action": c.action, "entity": "member",
                              "entity_id": c.member_id, "plan_id": None,
                              "before": _jsonable({k: m[k] for k in changed}), "after": _jsonable(changed), "at": now})
            after["version"] = m["version"] + 1
            after["updated_at"] = now
            members[c.member_id] = after
            fp.member_updates.append({"_id": c.member_id, **{k: after[k] for k in _MEMBER_SET},
                                      "version": after["version"], "updated_at": now})
            if any(k in LOCATION_FIELDS for k in changed):
                fp.closes.append(c.member_id)
                fp.addresses.append(_address_values(after, where.datum if where else "wgs84", c.action, now))
        replace = where is not None or any(k in changed for k in ("status", "full_member"))
        if where is None:
            out: dict[str, Any] = {"member_id": c.member_id, "changed": sorted(changed)}
        else:
            out = {"member_id": c.member_id, "status": after["status"], "geo_status": where.geo_status,
                   "geo_precision": where.precision}
        if not replace:
            return out, version
        if state is None or plan is None:
            if where is None:
                return out, version
            reason = "no plan yet: the new address is stored"
            fp.events.append({"plan_id": None, "member_id": c.member_id, "from_branch": None, "to_branch": None,
                              "action": "no_plan", "reason": reason, "distance_m": None, "changes": [],
                              "key_id": c.who.key_id, "created_at": now})
            return out | {"plan_id": 0, "plan_version": 0, "from_branch": None, "to_branch": None,
                          "action": "no_plan", "reason": reason, "distance_m": None, "changes": [],
                          "event_id": -1}, version
        rel = state.relocate(c.member_id, lon=after["lon"], lat=after["lat"], district_zh=after["district_zh"],
                             full_member=bool(after["full_member"]), status=after["status"],
                             geo_status=after["geo_status"], weight=int(after.get("weight") or 1),
                             group_id=str(after.get("group_id") or ""),
                             geo_precision=str(after.get("geo_precision") or "none"))
        state.take_events()  # the relocation_events rows record it; the state's list would only grow
        changes = [(str(a), f or None, t or None) for a, f, t in (rel.changes or [])]
        # the member's family shares the home: their plan rows and member records moved with them
        moved = {c.member_id} | {a for a, _, _ in changes} | set(rel.family)
        if where is not None:
            for k in rel.family:
                self._follow(members, k, after, c, now, fp, where.datum)
        if c.who.district_zh is not None and c.who.role != "admin":
            for row in state.member_rows(sorted(moved)):
                if not c.who.sees_district(str(row.get("district_zh") or "")):
                    raise ScopeViolation(c.member_id)
        fp.touched_members |= moved
        fp.touched_branches |= {b for _, f, t in changes for b in (f, t) if b}
        fp.touched_branches |= {str(b) for b in (rel.from_branch, rel.to_branch) if b}
        version += 1
        fp.events.append({"plan_id": plan.id, "member_id": c.member_id, "from_branch": rel.from_branch or None,
                          "to_branch": rel.to_branch or None, "action": str(rel.action), "reason": str(rel.reason),
                          "distance_m": _finite(rel.distance_m), "changes": [list(x) for x in changes],
                          "key_id": c.who.key_id, "created_at": now})
        fp.audits += [{"key_id": c.who.key_id, "action": c.action, "entity": "assignment", "entity_id": a,
                       "plan_id": plan.id, "before": {"branch_id": f}, "after": {"branch_id": t}, "at": now}
                      for a, f, t in changes]
        reason = str(rel.reason)
        if where is not None and where.reason and where.geo_status != GeoStatus.OK.value:
            reason = f"{reason} (geocoding: {where.reason})"
        return out | {"plan_id": plan.id, "plan_version": version, "from_branch": rel.from_branch or None,
                      "to_branch": rel.to_branch or None, "action": str(rel.action), "reason": reason,
                      "distance_m": _finite(rel.distance_m), "event_id": -1,
                      "changes": [{"member_id": a, "from_branch": f, "to_branch": t} for a, f, t in changes]}, version

    @staticmethod
    def _follow(members: dict[str, dict[str, Any]], member_id: str, home: dict[str, Any], c: Change, now: Any,
                fp: _Footprint, datum: str) -> None:
        """A family member takes the new home of the member who moved (same address, point, district)."""
        m = members.get(member_id)
        if m is None:
            return
        moved = {k: home[k] for k in (*LOCATION_FIELDS, "subdistrict_zh") if m.get(k) != home[k]}
        if not moved:
            return
        after = m | moved | {"version": m["version"] + 1, "updated_at": now}
        members[member_id] = after
        fp.audits.append({"key_id": c.who.key_id, "action": c.action, "entity": "member", "entity_id": member_id,
                          "plan_id": None, "before": _jsonable({k: m[k] for k in moved}),
                          "after": _jsonable(moved | {"with": c.member_id}), "at": now})
        fp.member_updates.append({"_id": member_id, **{k: after[k] for k in _MEMBER_SET},
                                  "version": after["version"], "updated_at": now})
        fp.closes.append(member_id)
        fp.addresses.append(_address_values(after, datum, c.action, now))

    @staticmethod
    def _flush(conn: Connection, fp: _Footprint, plan: PlanHead | None, state: Any, version: int,
               now: Any) -> list[int]:
        """Write the batch's rows, one executemany per table; the new events' ids in order."""
        if fp.member_updates:
            conn.execute(_MEMBER_UPDATE, fp.member_updates)
        if fp.closes:
            last = {a["member_id"]: k for k, a in enumerate(fp.addresses)}
            for k, a in enumerate(fp.addresses):  # moved twice in one batch: only the last is current
                if last[a["member_id"]] != k:
                    a["valid_to"] = now
            conn.execute(_CLOSE_ADDRESSES, {"ids": fp.closes, "now": now})
            conn.execute(_INSERT_ADDRESS, fp.addresses)
        if state is not None and plan is not None and fp.touched_members:
            # the state carries each row's precision (the moved member's and their family's new one)
            a_rows = [assignment_values(plan.id, rec) for rec in state.member_rows(sorted(fp.touched_members))]
            branch_recs, removed = state.branch_rows(sorted(fp.touched_branches))
            apply_assignment_changes(conn, plan.id, a_rows, [branch_values(plan.id, r) for r in branch_recs], removed)
        event_ids = list(conn.execute(_INSERT_EVENTS, fp.events).scalars().all()) if fp.events else []
        if fp.audits:
            conn.execute(_INSERT_AUDIT, fp.audits)
        if plan is not None and version != plan.state_version:
            conn.execute(_PLAN_VERSION, {"_id": plan.id, "state_version": version})
        return [int(i) for i in event_ids]


def _client_error(exc: BaseException, change: Change) -> BaseException:
    """What the caller of a change that failed on its own gets."""
    if isinstance(exc, ScopeViolation):
        return ProblemError(403, f"relocating {change.member_id!r} there would move members of districts this key "
                                 "may not see; a city-wide planner or an admin must make it",
                            title="Outside your district")
    return exc


def _time_out(waiters: list[asyncio.Future[Any] | None]) -> None:
    for w in waiters:
        if w is not None and not w.done():
            w.set_exception(TimeoutError(f"the member writer did not answer in {WRITER_TIMEOUT_S:.0f} s"))


def _wake_one(c: Any, _future: Any) -> None:
    """A done-callback that wakes one change's waiter."""
    _wake([c])


def _wake(batch: list[Change]) -> None:
    """Hand the batch's answers to the event loops waiting for them: one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Change]] = {}
    for c in batch:
        if c.waiter is not None:
            by_loop.setdefault(c.waiter.get_loop(), []).append(c)
    for loop, cs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, cs)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def _deliver(changes: list[Change]) -> None:
    """On the waiting loop: copy each answer (or error) from ``future`` to ``waiter``."""
    for c in changes:
        waiter = c.waiter
        if waiter is None or waiter.done():  # timed out meanwhile
            continue
        if not c.future.done():  # not answered by its batch (never expected): wait for it on its own
            c.future.add_done_callback(partial(_wake_one, c))
            continue
        exc = c.future.exception()
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(c.future.result())


# --- the operations the routes call -------------------------------------------------------------------


def _district_of(ctx: ServiceContext, member_ids: Sequence[str]) -> dict[str, str]:
    """Current districts of some members (to refuse out-of-scope work before geocoding for it)."""
    out: dict[str, str] = {}
    with ctx.db.read() as s:
        for k in range(0, len(member_ids), 900):
            chunk = list(member_ids[k:k + 900])
            out |= dict(s.execute(select(_m.c.member_id, _m.c.district_zh).where(_m.c.member_id.in_(chunk))).all())
    return {str(k): str(v or "") for k, v in out.items()}


def _where(body: dict[str, Any]) -> Location | None:
    """A point located at once (microseconds); None for an address (geocoded in the thread pool)."""
    if body.get("address") is not None:
        return None
    return locate_point(float(body["lon"]), float(body["lat"]), str(body.get("datum") or "wgs84"))


def _geocode_checked(ctx: ServiceContext, who: Principal, member_id: str, address: str) -> Location:
    """Geocode for a member the caller may see (no geocoding on behalf of other districts)."""
    district = _district_of(ctx, [member_id]).get(member_id)
    if district is None or not who.sees_district(district):
        raise ProblemError(404, f"no member {member_id!r} in your districts")
    return locate_address(address, member_id)


async def relocate(ctx: ServiceContext, writer: MemberWriter, who: Principal, member_id: str, body: dict[str, Any],
                   idem_key: str | None) -> tuple[int, dict[str, Any]]:
    """``POST /members/{id}/relocate``: (HTTP status, answer)."""
    where = _where(body)
    if where is None:
        where = await run_in_threadpool(_geocode_checked, ctx, who, member_id, str(body["address"]))
    change = Change(who, member_id, where=where, idem_key=idem_key,
                    req_hash=request_hash(member_id, body) if idem_key is not None else "")
    return await writer.apply_one(change)


def patch(writer: MemberWriter, who: Principal, member_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``PATCH /members/{id}`` from a worker thread: a changed status or full-member flag re-places the member."""
    _, out = writer.apply_blocking(Change(who, member_id, fields=fields, action="update"))
    return out


def _item_key(idem_key: str, index: int) -> str:
    """The idempotency key of one item of a bulk request (the bulk's key is at most 128 characters)."""
    return f"bulk:{hashlib.sha256(idem_key.encode()).hexdigest()[:40]}:{index}"


def _problem_item(index: int, member_id: str, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ProblemError):
        return {"index": index, "member_id": member_id, "status": exc.status,
                "problem": {"title": exc.title or "Refused", "detail": exc.detail}}
    log.error("relocation %d (%s) of a bulk request failed", index, member_id, exc_info=exc)
    return {"index": index, "member_id": member_id, "status": 500,
            "problem": {"title": "Internal Server Error", "detail": "this relocation failed; it has been logged"}}


def _geocode_items(ctx: ServiceContext, who: Principal, items: list[dict[str, Any]],
                   answers: dict[int, dict[str, Any]], where: dict[int, Location]) -> None:
    """In a worker thread: scope-check every item, geocode the addresses of the admitted ones."""
    districts = _district_of(ctx, [str(it["member_id"]) for it in items])
    for k, it in enumerate(items):
        mid = str(it["member_id"])
        d = districts.get(mid)
        if d is None or not who.sees_district(d):
            answers[k] = _problem_item(k, mid, ProblemError(404, f"no member {mid!r} in your districts"))
            continue
        if k in where:
            continue
        try:
            where[k] = locate_address(str(it["address"]), mid)
        except ProblemError as exc:
            answers[k] = _problem_item(k, mid, exc)


async def relocate_many(ctx: ServiceContext, writer: MemberWriter, who: Principal, items: list[dict[str, Any]],
                        idem_key: str | None) -> dict[str, Any]:
    """``POST /relocations``: every item through the single relocation's code, answered per item.

    Idempotent as a whole: with an ``Idempotency-Key`` each item is stored under a key derived from
    it, so a retry (after a timeout, or a crash half-way) applies only the items not yet applied
    and answers every item as the first call did; the same key with another body is refused.
    """
    if idem_key is not None:
        await run_in_threadpool(_claim_bulk_key, ctx, who, idem_key, items)
    where: dict[int, Location] = {}
    for k, it in enumerate(items):
        if it.get("address") is None:
            where[k] = locate_point(float(it["lon"]), float(it["lat"]), str(it.get("datum") or "wgs84"))
    answers: dict[int, dict[str, Any]] = {}
    await run_in_threadpool(_geocode_items, ctx, who, items, answers, where)
    todo = [k for k in range(len(items)) if k not in answers]
    for start in range(0, len(todo), BULK_CHUNK):
        chunk = todo[start:start + BULK_CHUNK]
        changes = [Change(who, str(items[k]["member_id"]), where=where[k],
                          idem_key=_item_key(idem_key, k) if idem_key is not None else None,
                          req_hash=request_hash(str(items[k]["member_id"]), items[k]) if idem_key is not None else "")
                   for k in chunk]
        for k, out in zip(chunk, await writer.apply(changes)):
            mid = str(items[k]["member_id"])
            if isinstance(out, BaseException):
                answers[k] = _problem_item(k, mid, out)
            else:
                answers[k] = {"index": k, "member_id": mid, "status": out[0], "result": out[1]}
    ordered = [answers[k] for k in range(len(items))]
    return {"total": len(items), "applied": sum(1 for a in ordered if a["status"] == 200),
            "refused": sum(1 for a in ordered if a["status"] != 200), "items": ordered}


def _claim_bulk_key(ctx: ServiceContext, who: Principal, idem_key: str, items: list[dict[str, Any]]) -> None:
    """Record the bulk request under its key, or check that a retry repeats it exactly (422 otherwise)."""
    digest = request_hash("/relocations", {"items": items})
    key = f"bulk:{hashlib.sha256(idem_key.encode()).hexdigest()[:40]}"
    try:
        with ctx.db.write() as s:
            conn = s.connection()
            if stored_answer(conn, who.key_id, key, digest) is None:
                conn.execute(_i.insert(), [{"key_id": who.key_id, "idem_key": key, "request_hash": digest,
                                            "status_code": 202, "response": {"items": len(items)},
                                            "created_at": utcnow()}])
    except IntegrityError:  # the same key claimed at the same moment (PostgreSQL): check it is the same body
        with ctx.db.read() as s:
            stored_answer(s.connection(), who.key_id, key, digest)


def replay(s: Any, state: Any, since_event_id: int) -> int:
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
