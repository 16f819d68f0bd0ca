"""Shared helpers for the service tests (tests/test_api*.py, tests/test_store*.py).

Backends: SQLite always; PostgreSQL + PostGIS when ``GEOALLOC_TEST_POSTGRES_URL`` is set
(``scripts/postgres.sh start`` prints it). In CI (``CI=true``) the PostgreSQL run is required:
a missing URL fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from api import library
from geoalloc.rules import Policy
from geoalloc.samples import generate_roster

BACKENDS = ["sqlite", "postgres"]


def postgres_base_url() -> str | None:
    """The test server's URL, or None (a failure in CI, where it is required)."""
    url = os.environ.get("GEOALLOC_TEST_POSTGRES_URL")
    if not url and os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail("CI=true but GEOALLOC_TEST_POSTGRES_URL is not set: run `eval \"$(scripts/postgres.sh start)\"` "
                    "first (make test does)")
    return url or None


@contextmanager
def database_url(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty database for one test module: a SQLite file, or a new PostGIS database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'geoalloc.db'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip("PostgreSQL not configured (set GEOALLOC_TEST_POSTGRES_URL; required when CI=true)")
    name = f"geoalloc_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    """The app served by uvicorn in a thread on 127.0.0.1 (real sockets, real concurrency)."""

    app: Any
    port: int = field(default_factory=free_port)
    server: Any = None
    thread: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        import uvicorn

        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        assert self.thread is not None
        self.thread.join(timeout=20)


def wait_job(client: Any, job_id: str, headers: dict[str, str], timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /jobs/{id} until the job has finished; returns its last state."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")
        time.sleep(0.05)


# --- a seeded service -------------------------------------------------------------------------------

POLICY = Policy(min_size=3, max_size=20, min_full=3, time_limit=2.0, seed=1)

_ROSTER: dict[str, pd.DataFrame] = {}
_ALLOCATION: dict[str, Any] = {}


def roster() -> pd.DataFrame:
    """600 synthetic members across Shenzhen, some with coordinates, some with addresses only."""
    if "r" not in _ROSTER:
        _ROSTER["r"] = generate_roster(600, seed=3)
    return _ROSTER["r"]


def _allocation(members: pd.DataFrame) -> Any:
    """The library's plan for the imported members, computed once per process (every backend holds the same)."""
    key = str(pd.util.hash_pandas_object(members[["member_id", "lon", "lat", "status"]]).sum())
    if key not in _ALLOCATION:
        _ALLOCATION[key] = library.allocate(members, POLICY, None)
    return _ALLOCATION[key]


@dataclass
class Service:
    """One app on one backend, with a key per role and a seeded plan."""

    backend: str
    url: str
    client: Any
    app: Any
    keys: dict[str, str]
    plan_id: int
    member_ns: str  # an assigned member of 南山区
    member_ft: str  # an assigned member of 福田区

    def h(self, who: str) -> dict[str, str]:
        """Headers for a role (``none`` sends no key)."""
        return {} if who == "none" else {"Authorization": f"Bearer {self.keys[who]}"}

    @property
    def ctx(self) -> Any:
        return self.app.state.ctx


@contextmanager
def seeded_service(backend: str, tmp: Path) -> Iterator[Service]:
    """A fresh database with the roster imported over HTTP and a plan committed by the service."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.services import jobs as jobs_module
    from api.settings import Settings
    from geoalloc.store.keys import create_key, revoke_key
    from geoalloc.store.members import members_frame

    with database_url(backend, tmp) as url:
        app = create_app(Settings(database_url=url, job_workers=1))
        keys = {
            "admin": create_key(url, "admin")[1],
            "viewer": create_key(url, "viewer")[1],
            "planner_ns": create_key(url, "planner", "南山区")[1],
            "planner_ft": create_key(url, "planner", "福田区")[1],
            "planner_city": create_key(url, "planner")[1],
        }
        rid, keys["revoked"] = create_key(url, "planner", "南山区")
        revoke_key(url, rid)
        keys["garbage"] = "gak_nothere_xxxxxxxx"
        with TestClient(app) as client:
            body = roster().to_csv(index=False).encode("utf-8")
            r = client.post("/members/import", files={"file": ("members.csv", body, "text/csv")},
                            headers={"Authorization": f"Bearer {keys['admin']}"})
            assert r.status_code == 200, r.text
            ctx = app.state.ctx
            with ctx.db.read() as s:
                members = members_frame(s)
            result = _allocation(members)
            plan_id = jobs_module.commit(ctx, result.assignments, result.branches, dict(result.report), POLICY,
                                         marker=0, parent_id=None, kind="form", key_id=None)
            a = result.assignments
            assigned = a[a["branch_id"] != ""]
            ns = assigned[assigned["district_zh"] == "南山区"]["member_id"].iloc[0]
            ft = assigned[assigned["district_zh"] == "福田区"]["member_id"].iloc[0]
            yield Service(backend, url, client, app, keys, plan_id, str(ns), str(ft))
