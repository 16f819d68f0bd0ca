"""The service context one app instance carries: database, settings, metrics, plan cache, jobs.

The plan cache holds the library's in-memory ``PlanState`` of the newest plan, tagged with
the plan's ``state_version``; it is reloaded from the database whenever the stored version
differs (another process relocated someone, or a write failed and the copy was dropped).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.orm import Session

from api import library
from api.metrics import Metrics
from api.settings import Settings
from geoalloc.model import Policy
from geoalloc.store.db import Database, init_db
from geoalloc.store.models import Plan
from geoalloc.store.plans import plan_frames


class PlanCache:
    """``PlanState`` of the newest plan, valid for one ``state_version``."""

    def __init__(self) -> None:
        self._entry: tuple[int, int, Any] | None = None  # plan id, version, state
        self._guard = threading.Lock()

    def get(self, s: Session, plan: Plan) -> Any:
        """The state for ``plan`` at its stored version, loading it when the cached one is stale."""
        with self._guard:
            entry = self._entry
        if entry is not None and entry[0] == plan.id and entry[1] == plan.state_version:
            return entry[2]
        assignments, branches = plan_frames(s, plan.id)
        state = library.plan_state(assignments, branches, Policy.from_dict(plan.policy or {}))
        with self._guard:
            self._entry = (plan.id, plan.state_version, state)
        return state

    def put(self, plan_id: int, version: int, state: Any) -> None:
        """Record that ``state`` is plan ``plan_id`` at ``version`` (after a committed change)."""
        with self._guard:
            self._entry = (plan_id, version, state)

    def invalidate(self, plan_id: int | None = None) -> None:
        """Drop the cached state (after a failed write, its in-memory copy may be ahead of the DB)."""
        with self._guard:
            if plan_id is None or (self._entry is not None and self._entry[0] == plan_id):
                self._entry = None


class ServiceContext:
    """Everything a request handler needs, owned by one FastAPI app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        if settings.init_db:
            init_db(settings.database_url)
        self.db = Database(settings.database_url)
        self.metrics = Metrics()
        self.cache = PlanCache()
        #: Serialises, inside this process, every writer of the newest plan (relocations, plan saves).
        #: The database lock (BEGIN IMMEDIATE / FOR UPDATE) does the same across processes.
        self.plan_lock = threading.RLock()
        from api.jobs import JobRunner

        self.jobs = JobRunner(self, settings.job_workers)

    def close(self) -> None:
        """Stop the job threads and close the pool."""
        self.jobs.shutdown()
        self.db.dispose()
