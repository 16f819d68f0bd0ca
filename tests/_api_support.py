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
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

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

    def __enter__(self) -> LiveServer:
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
