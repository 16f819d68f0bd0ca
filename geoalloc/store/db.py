"""Engines, sessions and the write lock, for SQLite (default) and PostgreSQL + PostGIS.

SQLite is opened in WAL mode with a busy timeout and foreign keys on. Its Python driver's own
transaction handling is switched off so that we emit ``BEGIN`` ourselves: write transactions
that must be serialised (relocations, plan saves) start with ``BEGIN IMMEDIATE``, which takes
the database's write lock up front instead of failing half-way. On PostgreSQL the same
serialisation is a ``SELECT ... FOR UPDATE`` on the plan row (see ``plans.lock_plan``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("geoalloc.store")

#: Default database: a file in the working directory, created on first start.
DEFAULT_URL = "sqlite:///geoalloc.db"

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    """True for SQLite URLs and engines."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (or ``GEOALLOC_DATABASE_URL``, or the default SQLite file)."""
    url = url or os.environ.get("GEOALLOC_DATABASE_URL") or DEFAULT_URL
    if is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=kwargs.pop("pool_size", 20),
            max_overflow=kwargs.pop("max_overflow", 40),
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        pool_size=kwargs.pop("pool_size", 20),
        max_overflow=kwargs.pop("max_overflow", 20),
        pool_pre_ping=True,
        **kwargs,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see module doc)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.connection.driver_connection.execute(f"BEGIN {mode}")


class Database:
    """An engine with two session factories: ordinary reads/writes, and serialised writes."""

    def __init__(self, url: str | None = None, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        self.url = self.engine.url.render_as_string(hide_password=False)
        self.sqlite = is_sqlite(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.sqlite else self.engine
        self._write_session = sessionmaker(self._write_engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads (and unserialised writes); rolled back unless committed."""
        with self.session() as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A serialised write transaction: committed on success, rolled back on any error.

        SQLite: ``BEGIN IMMEDIATE`` (database write lock). PostgreSQL: an ordinary transaction;
        callers take row locks with ``SELECT ... FOR UPDATE`` where order matters.
        """
        with self._write_session() as s, s.begin():
            yield s

    def writer_connection(self, checkpoint: bool = True) -> Connection:
        """A long-lived connection whose transactions are serialised writes (``conn.begin()``:
        ``BEGIN IMMEDIATE`` on SQLite), for a single writer thread; the caller closes it.
        ``checkpoint=False`` (SQLite): its commits never run the automatic WAL checkpoint; run a
        :class:`WalCheckpointer` beside it."""
        conn = self._write_engine.connect()
        if self.sqlite and not checkpoint:
            conn.connection.driver_connection.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
        return conn

    def check_writable(self) -> None:
        """Raise now if the database cannot be written (read-only file, replica or role), instead of
        on the first request: a no-op update in a serialised transaction, rolled back."""
        with self._write_engine.connect() as conn, conn.begin() as tx:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
            tx.rollback()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def init_db(url: str | None = None) -> str:
    """Create or upgrade the schema to the newest migration; returns the URL used.

    Safe to call on every start: Alembic only applies what is missing.
    """
    from alembic import command
    from alembic.config import Config

    url = url or os.environ.get("GEOALLOC_DATABASE_URL") or DEFAULT_URL
    if is_sqlite(url):
        db_path = make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["url"] = url
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    finally:
        engine.dispose()
    return url


class WalCheckpointer:
    """Checkpoints a SQLite database's write-ahead log from a thread of its own, every ``interval`` s.

    Why: SQLite's automatic checkpoint runs inside whichever commit pushes the log past 1000
    pages, so every relocation queued behind that commit waits for it. The relocation writer turns
    the automatic checkpoint off on its connection (``writer_connection(checkpoint=False)``) and
    this thread does the work instead; a PASSIVE checkpoint never blocks writers or readers.
    """

    def __init__(self, engine: Engine, interval: float = 0.2) -> None:
        self.engine, self.interval = engine, interval
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="geoalloc-wal-checkpoint", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                raw = self.engine.raw_connection()
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
                finally:
                    raw.close()
            except Exception:  # a failed checkpoint is retried next time; SQLite stays consistent
                log.warning("WAL checkpoint failed", exc_info=True)

    def close(self) -> None:
        """Stop the thread (SQLite checkpoints the log itself when the last connection closes)."""
        self._stop.set()
        self.thread.join(timeout=10)


class StorageUnavailable(RuntimeError):
    """The database cannot be used for writing at start-up; the message says why in one line."""


def storage_unavailable(exc: BaseException, url: str) -> str | None:
    """A one-line reason when ``exc`` means the database is read-only, full or unreachable; else None."""
    from sqlalchemy.exc import DBAPIError

    shown = make_url(url).render_as_string(hide_password=True)
    text = str(getattr(exc, "orig", exc)).lower()
    if isinstance(exc, PermissionError) or "readonly" in text or "read-only" in text or "unable to open" in text:
        return (f"the database {shown} cannot be written (read-only file or folder, or no permission): "
                "make it writable or set GEOALLOC_DATABASE_URL to one that is")
    if isinstance(exc, OSError) and exc.errno == 28 or "disk is full" in text:
        return f"the database {shown} is on a full disk: free some space and start again"
    if isinstance(exc, DBAPIError) and (isinstance(exc.orig, Exception) and exc.connection_invalidated
                                        or type(exc).__name__ == "OperationalError"):
        return f"the database {shown} is unreachable: {str(exc.orig).strip().splitlines()[0][:200]}"
    return None
