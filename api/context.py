"""The service context one app instance carries: database, settings, metrics, key and plan caches.

It holds state only; the services that act on it (``api.services``) are built beside it by the
app factory, so nothing here imports them.

The plan cache holds the library's in-memory ``PlanState`` of the newest plan, tagged with
the plan's ``state_version``; it is reloaded from the database whenever the stored version
differs (another process relocated someone, or a write failed and the copy was dropped).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from api import heap, library
from api.metrics import Metrics
from api.settings import Settings
from geoalloc.rules import Policy
from geoalloc.store.db import Database, init_db
from geoalloc.store.keys import Principal, authenticate
from geoalloc.store.plans import plan_frames


class PlanCache:
    """``PlanState`` of the newest plan, valid for one ``state_version``."""

    def __init__(self) -> None:
        self._entry: tuple[int, int, Any] | None = None  # plan id, version, state
        self._guard = threading.Lock()

    def get(self, conn: Any, plan_id: int, version: int, policy: dict[str, Any]) -> Any:
        """The state of plan ``plan_id`` at ``version``, loading it when the cached one is stale."""
        with self._guard:
            entry = self._entry
        if entry is not None and entry[0] == plan_id and entry[1] == version:
            return entry[2]
        assignments, branches = plan_frames(conn, plan_id)
        state = library.plan_state(assignments, branches, Policy.from_dict(policy))
        del assignments, branches
        with self._guard:
            self._entry = (plan_id, version, state)
        heap.settle()  # the state lives as long as the plan: keep it out of every later full GC pass
        return state

    def holds(self, plan_id: int, version: int) -> bool:
        """True when :meth:`get` would answer without loading."""
        with self._guard:
            entry = self._entry
        return entry is not None and entry[0] == plan_id and entry[1] == version

    def put(self, plan_id: int, version: int, state: Any) -> None:
        """Record that ``state`` is plan ``plan_id`` at ``version`` (after a committed change)."""
        with self._guard:
            self._entry = (plan_id, version, state)

    def invalidate(self, plan_id: int | None = None) -> None:
        """Drop the cached state (after a failed write, its in-memory copy may be ahead of the DB)."""
        with self._guard:
            if plan_id is None or (self._entry is not None and self._entry[0] == plan_id):
                self._entry = None


class KeyCache:
    """Recently checked API keys, for ``ttl`` seconds, so a request costs no key lookup.

    A key revoked through this process is dropped at once; one revoked elsewhere (the CLI,
    another process) stops working within ``ttl`` seconds.
    """

    def __init__(self, db: Database, ttl: float = 2.0) -> None:
        self.db, self.ttl = db, ttl
        self._hits: dict[str, tuple[float, Principal]] = {}
        self._guard = threading.Lock()

    def cached(self, presented: str) -> Principal | None:
        """The caller if the key was checked less than ``ttl`` seconds ago (no database access)."""
        with self._guard:
            hit = self._hits.get(presented)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def check(self, presented: str) -> Principal | None:
        """The caller behind a presented key, or None."""
        now = time.monotonic()
        hit = self.cached(presented)
        if hit is not None:
            return hit
        who = authenticate(self.db, presented)
        with self._guard:
            if who is None:
                self._hits.pop(presented, None)
            else:
                if len(self._hits) > 10_000:
                    self._hits.clear()
                self._hits[presented] = (now + self.ttl, who)
        return who

    def forget(self, key_id: str) -> None:
        """Drop a key (after revoking it)."""
        with self._guard:
            for k in [k for k, (_, p) in self._hits.items() if p.key_id == key_id]:
                del self._hits[k]


class ServiceContext:
    """What every service and request handler shares, owned by one FastAPI app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
        if settings.init_db:
            init_db(settings.database_url)
        self.db = Database(settings.database_url)
        self.metrics = Metrics()
        self.keys = KeyCache(self.db)
        self.cache = PlanCache()
        #: Serialises, inside this process, every writer of the newest plan (member changes, plan saves).
        #: The database lock (BEGIN IMMEDIATE / FOR UPDATE) does the same across processes.
        self.plan_lock = threading.RLock()

    def close(self) -> None:
        """Close the connection pool."""
        self.db.dispose()
