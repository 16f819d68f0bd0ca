"""Group commit for relocations: one writer thread applies queued relocations in batches.

Relocations of the newest plan must be serialised (the library's in-memory plan is one object,
and the database needs one writer at a time to keep limits exact). Serialising them one
transaction each makes throughput ``1 / (transaction cost)``. Instead, requests queue up here
while a batch is being written; the writer takes everything queued (up to ``max_batch``), applies
each relocation to the in-memory plan in arrival order, exactly as one-by-one would, then writes
all their rows with one executemany per table in ONE transaction (under the same plan lock and
database lock as before), and answers each request. A failure of the transaction fails nobody
silently: the cached plan is dropped and every request of the batch is retried on its own, so
each gets its own answer (and an error only if its own relocation fails).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select

from api.problems import ProblemError
from api.relocation import (
    Location,
    PlanHead,
    _finite,
    _rows_after,
    locate,
    newest_head,
    stored_answer,
)
from geoalloc.model import GeoStatus, MemberStatus
from geoalloc.store.db import WalCheckpointer
from geoalloc.store.keys import Principal
from geoalloc.store.members import LOCATION_FIELDS, _address_values, _jsonable
from geoalloc.store.models import (
    Assignment,
    AuditEntry,
    Branch,
    IdempotencyRecord,
    Member,
    MemberAddress,
    Plan,
    RelocationEvent,
    utcnow,
)
from geoalloc.store.plans import apply_assignment_changes
from geoalloc.store.rawsql import SqliteStatements

if TYPE_CHECKING:
    from api.context import ServiceContext

log = logging.getLogger("geoalloc.api.batching")


@dataclass
class Request:
    """One queued relocation and the future its HTTP handler waits on."""

    who: Principal
    member_id: str
    where: Location | tuple[float, float, str]  # a located address, or (lon, lat, datum) to locate
    idem_key: str | None
    req_hash: str
    future: Future[tuple[int, dict[str, Any]]] = field(default_factory=Future)
    #: For callers on an event loop: resolved from ``future`` by one loop wake-up per batch
    #: (a wake-up per request cost the writer about an eighth of its time under load).
    waiter: asyncio.Future[tuple[int, dict[str, Any]]] | None = None


def _wake(batch: list[Request]) -> None:
    """Hand the batch's answers to the event loops waiting for them: one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Request]] = {}
    for req in batch:
        if req.waiter is not None:
            by_loop.setdefault(req.waiter.get_loop(), []).append(req)
    for loop, reqs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, reqs)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def _deliver(reqs: list[Request]) -> None:
    """On the waiting loop: copy each answer (or error) from ``future`` to ``waiter``."""
    for req in reqs:
        waiter = req.waiter
        if waiter is None or waiter.done():  # timed out or cancelled meanwhile
            continue
        if not req.future.done():  # not answered by its batch (never expected): wait for it on its own
            req.future.add_done_callback(lambda _f, r=req: _wake([r]))
            continue
        exc = req.future.exception()
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(req.future.result())


class RowCache:
    """The newest plan's head and member rows as one writer connection last read or wrote them.

    Why: every relocation transaction read the plan row and the member's row back from SQLite
    (two statements, and datetime parsing of every column), although nobody but this writer had
    written them since. SQLite's ``PRAGMA data_version`` changes on a connection exactly when
    another connection (this process's or another's) commits, so the rows stay valid while it is
    unchanged; read inside the ``BEGIN IMMEDIATE`` transaction, nobody can commit after it.
    A failed transaction clears the cache (its rows may be ahead of the database).
    """

    MAX_MEMBERS = 200_000  # bound on remembered rows (a city's roster is ~7,000)

    def __init__(self) -> None:
        self.data_version: int | None = None
        self.head: PlanHead | None = None
        self.have_head = False
        self.members: dict[str, dict[str, Any]] = {}

    def clear(self) -> None:
        self.data_version, self.head, self.have_head = None, None, False
        self.members = {}

    def check(self, data_version: int) -> None:
        """Start a transaction: forget everything if another connection committed since."""
        if data_version != self.data_version or len(self.members) > self.MAX_MEMBERS:
            self.clear()
            self.data_version = data_version


class RelocationWriter:
    """The single writer of relocations for one service context."""

    def __init__(self, ctx: ServiceContext, max_batch: int = 64) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self.queue: queue.Queue[Request | None] = queue.Queue()
        #: SQLite: the batch's statements on the driver's cursor (see ``geoalloc.store.rawsql``).
        self.raw = SqliteStatements(ctx.db.engine.dialect) if ctx.db.sqlite else None
        self._conn: Connection | None = None
        #: SQLite: batches are written on the event loop itself when nothing else holds the plan
        #: (see :meth:`submit`); their own connection, which never waits for the database lock.
        self.inline = bool(ctx.db.sqlite)
        self._inline_conn: Connection | None = None
        #: SQLite: rows known per writer connection (see :class:`RowCache`): the thread's, the loop's.
        self._rows = {False: RowCache(), True: RowCache()}
        self._counters: dict[str, Any] = {}  # relocations by action: the labelled Prometheus children
        self._pending: list[Request] = []
        self._flush_scheduled = False
        #: SQLite: WAL checkpoints off the writer's commits (see ``WalCheckpointer``).
        self.checkpointer = WalCheckpointer(ctx.db.engine) if ctx.db.sqlite else None
        self.thread = threading.Thread(target=self._loop, name="geoalloc-relocations", daemon=True)
        self.thread.start()

    def enqueue(self, req: Request) -> Future[tuple[int, dict[str, Any]]]:
        """Queue a relocation; its future gets the answer (or the exception its relocation raised)."""
        self.queue.put(req)
        return req.future

    def submit(self, req: Request) -> None:
        """From the event loop (``req.waiter`` on it): write the relocation with the others that
        arrive in the same loop iteration.

        Why on the loop: with one GIL, a writer thread costs the process more than the writing
        itself at a few relocations per batch (the two threads hand the GIL over around every
        SQLite call, and every batch wakes the loop from another thread). A batch is written on
        the loop (one callback after the requests that arrived together have queued) when
        nobody else holds the plan (the writer thread, a plan being saved) and the database's
        write lock is free; otherwise it goes to the writer thread, which waits for both.
        """
        if not self.inline:
            self.queue.put(req)
            return
        self._pending.append(req)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        lock = self.ctx.plan_lock
        if self.queue.qsize() or not lock.acquire(blocking=False):  # busy: in order, behind the thread's work
            for req in batch:
                self.queue.put(req)
            return
        try:
            for k in range(0, len(batch), self.max_batch):
                chunk = batch[k:k + self.max_batch]
                started = time.perf_counter()
                try:
                    self._write(chunk, inline=True)
                except _LoadOnThread:  # nothing written yet: the thread loads the plan and writes them
                    for req in chunk:
                        self.queue.put(req)
                    continue
                except Exception as exc:  # noqa: BLE001 - nothing committed: the thread retries them
                    self.ctx.cache.invalidate()
                    self._drop_connection(inline=True)
                    if not _locked(exc):
                        log.warning("relocation batch of %d failed on the loop (%s); the writer retries it",
                                    len(chunk), exc)
                    for req in chunk:
                        if not req.future.done():
                            self.queue.put(req)
                    continue
                self.ctx.metrics.batch_size.observe(len(chunk))
                self.ctx.metrics.batch_seconds.observe(time.perf_counter() - started)
        finally:
            lock.release()
        _deliver([req for req in batch if req.waiter is not None])

    def close(self) -> None:
        """Stop after the queued relocations are written."""
        self.queue.put(None)
        self.thread.join(timeout=30)
        self._drop_connection(inline=True)
        if self.checkpointer is not None:
            self.checkpointer.close()

    # -- the writer thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            self._serve()
        finally:
            self._drop_connection()

    def _connection(self) -> Connection:
        """The writer's own connection, kept between batches (no pool checkout and reset per batch)."""
        if self._conn is None:
            self._conn = self.ctx.db.writer_connection(checkpoint=self.checkpointer is None)
        return self._conn

    def _inline_connection(self) -> Connection:
        """The loop's writer connection: like the thread's, but it fails at once (SQLITE_BUSY)
        instead of waiting when another process holds the database's write lock."""
        if self._inline_conn is None:
            conn = self.ctx.db.writer_connection(checkpoint=self.checkpointer is None)
            conn.connection.driver_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
            self._inline_conn = conn
        return self._inline_conn

    def _drop_connection(self, inline: bool = False) -> None:
        self._rows[inline].clear()
        conn = self._inline_conn if inline else self._conn
        if conn is not None:
            try:
                if inline and not conn.invalidated:
                    conn.connection.driver_connection.execute("PRAGMA busy_timeout=30000")  # type: ignore[union-attr]
                self.ctx.db.close_writer_connection(conn)
            except Exception:  # a broken connection may fail to close; it is dropped anyway
                log.warning("closing the relocation writer's connection failed", exc_info=True)
            if inline:
                self._inline_conn = None
            else:
                self._conn = None

    def _serve(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
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

    @contextmanager
    def _transaction(self, conn: Connection) -> Iterator[None]:
        """One serialised write transaction on the writer's connection.

        SQLite: ``BEGIN IMMEDIATE`` and ``COMMIT`` on the driver's connection, as the engine's begin
        hook and SQLAlchemy's commit would issue them, without their per-transaction Python work
        (events, transaction objects: about a tenth of a single relocation's writer time). A
        SQLAlchemy statement in it (loading the plan) joins it (see ``db._on_begin``).
        """
        if self.raw is None:
            with conn.begin():
                yield
            return
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        dbapi.execute("BEGIN IMMEDIATE")
        try:
            yield
            if conn.in_transaction():  # SQLAlchemy statements joined it (a plan load): commit through it
                conn.commit()
            else:
                dbapi.commit()
        except BaseException:
            if conn.in_transaction():
                conn.rollback()
            elif dbapi.in_transaction:
                dbapi.rollback()
            raise

    def _run(self, batch: list[Request]) -> None:
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
                    batch[0].future.set_exception(exc)
                return
            log.warning("relocation batch of %d failed (%s); retrying one by one", len(batch), exc)
            for req in batch:
                if not req.future.done():
                    self._run([req])

    def _write(self, batch: list[Request], inline: bool = False) -> None:
        ctx = self.ctx
        results: list[tuple[Request, dict[str, Any]]] = []
        with ctx.plan_lock:
            conn = self._inline_connection() if inline else self._connection()
            with self._transaction(conn):
                raw = self.raw
                cur = raw.cursor(conn) if raw is not None else None
                ids = list({r.member_id for r in batch})
                rows = self._rows[inline]
                if raw is not None:
                    rows.check(cur.execute("PRAGMA data_version").fetchone()[0])
                    if not rows.have_head:
                        rows.head, rows.have_head = _raw_head(raw, cur), True
                    plan = rows.head
                    missing = [i for i in ids if i not in rows.members]
                    if missing:
                        rows.members.update((row["member_id"], row) for row in raw.select(
                            cur, _m, _MEMBER_COLS, f"member_id IN ({', '.join('?' for _ in missing)})", missing))
                    members = {i: rows.members[i] for i in ids if i in rows.members}
                else:
                    plan = newest_head(conn, lock=True)
                    members = {row["member_id"]: dict(row) for row in
                               conn.execute(_MEMBERS, {"ids": ids}).mappings().all()}
                if inline and plan is not None and not ctx.cache.holds(plan.id, plan.state_version):
                    raise _LoadOnThread  # loading a plan takes a fifth of a second: not on the event loop
                state = ctx.cache.get(conn, plan.id, plan.state_version, plan.policy) if plan else None
                version = plan.state_version if plan else 0
                now = utcnow()
                seen_idem: dict[tuple[str, str], dict[str, Any]] = {}
                member_updates: list[dict[str, Any]] = []
                closes: list[str] = []
                addresses: list[dict[str, Any]] = []
                events: list[dict[str, Any]] = []
                audits: list[dict[str, Any]] = []
                idem_rows: list[dict[str, Any]] = []
                touched_members: set[str] = set()
                touched_branches: set[str] = set()
                precision: dict[str, str] = {}
                pending: list[tuple[Request, dict[str, Any], int]] = []  # request, response, event index
                for req in batch:
                    if req.idem_key:
                        key = (req.who.key_id, req.idem_key)
                        answer = (_raw_stored_answer(raw, cur, req) if raw is not None
                                  else stored_answer(conn, req.who, req.idem_key, req.req_hash))
                        if answer is None and key in seen_idem:
                            if seen_idem[key]["hash"] != req.req_hash:
                                req.future.set_exception(ProblemError(
                                    422, "this Idempotency-Key was already used for a different request",
                                    title="Idempotency-Key reused"))
                                continue
                            pending.append((req, seen_idem[key]["out"], -1))
                            continue
                        if answer is not None:
                            req.future.set_result(answer)
                            continue
                    m = members.get(req.member_id)
                    if m is None or not req.who.sees_district(m["district_zh"]):
                        req.future.set_exception(ProblemError(404, f"no member {req.member_id!r} in your districts"))
                        continue
                    where = req.where if isinstance(req.where, Location) else locate(req.member_id, None, *req.where)
                    status = m["status"]
                    if where.geo_status == GeoStatus.OUT_OF_CITY.value:
                        status = MemberStatus.TRANSFER_OUT.value
                    elif status == MemberStatus.TRANSFER_OUT.value and where.geo_status != GeoStatus.FAILED.value:
                        status = MemberStatus.ACTIVE.value
                    district = where.district_zh or m["district_zh"]
                    fields: dict[str, Any] = {"lon": where.lon, "lat": where.lat, "district_zh": district,
                                              "geo_precision": where.precision, "geo_status": where.geo_status,
                                              "status": status}
                    if where.address is not None:
                        fields["address"] = where.address
                        fields["subdistrict_zh"] = where.subdistrict_zh
                    changed = {k: v for k, v in fields.items() if m.get(k) != v}
                    if changed:
                        audits.append({"key_id": req.who.key_id, "action": "relocate", "entity": "member",
                                       "entity_id": m["member_id"], "plan_id": None,
                                       "before": _jsonable({k: m[k] for k in changed}), "after": _jsonable(changed),
                                       "at": now})
                        new_m = m | changed
                        new_m["version"] = m["version"] + 1
                        new_m["updated_at"] = now
                        members[m["member_id"]] = new_m
                        member_updates.append({"_id": m["member_id"], **{k: new_m[k] for k in _MEMBER_SET},
                                               "version": new_m["version"], "updated_at": now})
                        if any(k in LOCATION_FIELDS for k in changed):
                            closes.append(m["member_id"])
                            addresses.append(_address_values(new_m, where.datum, "relocate", now))
                    base = {"member_id": m["member_id"], "status": status, "geo_status": where.geo_status,
                            "geo_precision": where.precision}
                    if state is None:
                        reason = "no plan yet: the new address is stored"
                        events.append({"plan_id": None, "member_id": m["member_id"], "from_branch": None,
                                       "to_branch": None, "action": "no_plan", "reason": reason, "distance_m": None,
                                       "changes": [], "key_id": req.who.key_id, "created_at": now})
                        out = base | {"plan_id": 0, "plan_version": 0, "from_branch": None, "to_branch": None,
                                      "action": "no_plan", "reason": reason, "distance_m": None, "changes": []}
                    else:
                        rel = state.relocate(m["member_id"], lon=where.lon, lat=where.lat, district_zh=district,
                                             full_member=bool(m["full_member"]), status=status,
                                             geo_status=where.geo_status)
                        state.take_events()  # the relocation_events rows below record it; the list would only grow
                        changes = [(str(a), f or None, t or None) for a, f, t in (rel.changes or [])]
                        touched_members.add(m["member_id"])
                        touched_members.update(a for a, _, _ in changes)
                        touched_branches.update(b for _, f, t in changes for b in (f, t) if b)
                        touched_branches.update(str(b) for b in (rel.from_branch, rel.to_branch) if b)
                        precision[m["member_id"]] = where.precision
                        version += 1
                        events.append({"plan_id": plan.id, "member_id": m["member_id"],
                                       "from_branch": rel.from_branch or None, "to_branch": rel.to_branch or None,
                                       "action": str(rel.action), "reason": str(rel.reason),
                                       "distance_m": _finite(rel.distance_m), "changes": [list(c) for c in changes],
                                       "key_id": req.who.key_id, "created_at": now})
                        audits += [{"key_id": req.who.key_id, "action": "relocate", "entity": "assignment",
                                    "entity_id": a, "plan_id": plan.id, "before": {"branch_id": f},
                                    "after": {"branch_id": t}, "at": now} for a, f, t in changes]
                        reason = str(rel.reason)
                        if where.reason and where.geo_status != GeoStatus.OK.value:
                            reason = f"{reason} (geocoding: {where.reason})"
                        out = base | {"plan_id": plan.id, "plan_version": version, "from_branch": rel.from_branch or None,
                                      "to_branch": rel.to_branch or None, "action": str(rel.action), "reason": reason,
                                      "distance_m": _finite(rel.distance_m),
                                      "changes": [{"member_id": a, "from_branch": f, "to_branch": t} for a, f, t in changes]}
                    pending.append((req, out, len(events) - 1))
                    if req.idem_key:
                        seen_idem[(req.who.key_id, req.idem_key)] = {"hash": req.req_hash, "out": out}
                        idem_rows.append({"key_id": req.who.key_id, "idem_key": req.idem_key,
                                          "request_hash": req.req_hash, "status_code": 200, "response": out,
                                          "created_at": now})

                # -- one executemany per table ------------------------------------------------------
                if member_updates:
                    if raw is not None:
                        raw.update(cur, _m, ("member_id",), member_updates, where_params=("_id",))
                    else:
                        conn.execute(_MEMBER_UPDATE, member_updates)
                if closes:
                    last = {a["member_id"]: k for k, a in enumerate(addresses)}
                    for k, a in enumerate(addresses):  # moved twice in one batch: only the last is current
                        if last[a["member_id"]] != k:
                            a["valid_to"] = now
                    if raw is not None:
                        t = raw.bind(_a, "valid_to", now)
                        cur.executemany("UPDATE member_addresses SET valid_to = ? WHERE member_id = ? "
                                        "AND valid_to IS NULL AND valid_from < ?", [(t, mid, t) for mid in closes])
                        raw.insert(cur, _a, addresses)
                    else:
                        conn.execute(_CLOSE_ADDRESSES, {"ids": closes, "now": now})
                        conn.execute(_INSERT_ADDRESS, addresses)
                if state is not None and touched_members:
                    a_rows, b_rows, removed = _rows_after(state, plan.id, touched_members, touched_branches)
                    for r in a_rows:
                        if r["member_id"] in precision:
                            r["geo_precision"] = precision[r["member_id"]]
                    if raw is not None:
                        raw.apply_assignment_changes(cur, Assignment.__table__, Branch.__table__, plan.id,
                                                     a_rows, b_rows, removed)
                    else:
                        apply_assignment_changes(conn, plan.id, a_rows, b_rows, removed)
                event_ids: list[int] = []
                if events:
                    event_ids = (raw.insert_returning(cur, _e, events, "id") if raw is not None
                                 else list(conn.execute(_INSERT_EVENTS, events).scalars().all()))
                for req, out, k in pending:
                    if k >= 0:
                        out["event_id"] = int(event_ids[k])
                if audits:
                    if raw is not None:
                        raw.insert(cur, AuditEntry.__table__, audits)
                    else:
                        conn.execute(_INSERT_AUDIT, audits)
                if plan is not None and version != plan.state_version:
                    if raw is not None:
                        raw.update(cur, _p, ("id",), [{"state_version": version, "id": plan.id}])
                    else:
                        conn.execute(_PLAN_VERSION, {"_id": plan.id, "state_version": version})
                if idem_rows:
                    if raw is not None:
                        raw.insert(cur, IdempotencyRecord.__table__, idem_rows)
                    else:
                        conn.execute(_INSERT_IDEM, idem_rows)
                results = [(req, out) for req, out, _ in pending]
            if raw is not None:  # committed: what this connection now knows to be stored
                rows.members.update(members)
                rows.head = PlanHead(plan.id, version, plan.policy) if plan is not None else None
            if state is not None:
                ctx.cache.put(plan.id, version, state)
        for req, out in results:
            counter = self._counters.get(out["action"])
            if counter is None:  # labels() costs more than the increment: one child per action, kept
                counter = self._counters[out["action"]] = ctx.metrics.relocations.labels(action=out["action"])
            counter.inc()
            if not req.future.done():
                req.future.set_result((200, out))


_MEMBER_SET = ("lon", "lat", "district_zh", "geo_precision", "geo_status", "status", "address", "subdistrict_zh")
_m = Member.__table__
_MEMBER_UPDATE = (_m.update().where(_m.c.member_id == bindparam("_id"))
                  .values({k: bindparam(k) for k in (*_MEMBER_SET, "version", "updated_at")}))

# The other statements of a batch, built once (building one per batch costs more than running it).
_a, _e, _p = MemberAddress.__table__, RelocationEvent.__table__, Plan.__table__
_MEMBERS = select(_m).where(_m.c.member_id.in_(bindparam("ids", expanding=True)))
_CLOSE_ADDRESSES = (_a.update().where(_a.c.member_id.in_(bindparam("ids", expanding=True)), _a.c.valid_to.is_(None),
                                      _a.c.valid_from < bindparam("now")).values(valid_to=bindparam("now")))
_INSERT_ADDRESS = _a.insert()
_INSERT_EVENTS = _e.insert().returning(_e.c.id, sort_by_parameter_order=True)
_INSERT_AUDIT = AuditEntry.__table__.insert()
_INSERT_IDEM = IdempotencyRecord.__table__.insert()
_PLAN_VERSION = _p.update().where(_p.c.id == bindparam("_id")).values(state_version=bindparam("state_version"))
_MEMBER_COLS = tuple(c.name for c in _m.columns)


class _LoadOnThread(Exception):
    """The batch needs the plan loaded first: the writer thread does that, off the event loop."""


def _locked(exc: BaseException) -> bool:
    """SQLite's "database is locked": another connection holds the write lock."""
    return "locked" in str(exc) or "busy" in str(exc)


def _raw_head(raw: SqliteStatements, cur: Any) -> PlanHead | None:
    """``newest_head`` on SQLite's cursor (the transaction began IMMEDIATE: nobody else writes)."""
    rows = raw.select(cur, _p, ("id", "state_version", "policy"), "status = ? ORDER BY id DESC LIMIT 1", ("ready",))
    if not rows:
        return None
    return PlanHead(int(rows[0]["id"]), int(rows[0]["state_version"]), dict(rows[0]["policy"] or {}))


def _raw_stored_answer(raw: SqliteStatements, cur: Any, req: Request) -> tuple[int, dict[str, Any]] | None:
    """``stored_answer`` on SQLite's cursor."""
    rows = raw.select(cur, IdempotencyRecord.__table__, ("request_hash", "status_code", "response"),
                      "key_id = ? AND idem_key = ?", (req.who.key_id, req.idem_key))
    if not rows:
        return None
    if rows[0]["request_hash"] != req.req_hash:
        raise ProblemError(422, "this Idempotency-Key was already used for a different request",
                           title="Idempotency-Key reused")
    return int(rows[0]["status_code"]), dict(rows[0]["response"])
