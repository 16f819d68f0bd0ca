"""The FastAPI app factory: ``create_app()`` for uvicorn, tests and the benchmark.

Every request enters here and passes the same middleware (``api.middleware``) and the routes'
dependencies (``api.deps``); there is no second way in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import heap, library, problems
from api.context import ServiceContext
from api.middleware import CatchAll, Guard, Metrics, SecurityHeaders
from api.routes import console, docs, health, keys, members, plans, relocations
from api.services.jobs import JobRunner
from api.services.relocations import MemberWriter
from api.settings import Settings
from geoalloc.store.db import StorageUnavailable, storage_unavailable

DESCRIPTION = """\
Branch allocation for Shenzhen member organisations, as a service.

Authenticate with `Authorization: Bearer KEY` (keys from `geoalloc keys create`). Roles:
**viewer** (aggregates and maps without personal data), **planner** (plans and relocations;
personal data of their own district only), **admin** (keys, imports, every district).
Errors are RFC 9457 `application/problem+json`. Forming and rebalancing plans are background
jobs (202 + job id, poll `/jobs/{id}`); relocations apply to the newest plan.
"""


def body_limits(settings: Settings) -> dict[str, int]:
    """The largest body (bytes) per path; every other path takes ``max_body_kb``."""
    return {"/members/import": settings.max_upload_mb * 2**20 + 64 * 2**10,  # the file plus multipart framing
            "/relocations": settings.max_bulk_mb * 2**20}


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    """Build the app; the database is created or upgraded on start (``GEOALLOC_INIT_DB``).

    Raises :class:`geoalloc.store.db.StorageUnavailable` (a one-line reason) when the database
    cannot be opened for writing: read-only, full or unreachable.
    """
    settings = settings or Settings()
    if database_url is not None:
        settings = settings.model_copy(update={"database_url": database_url})
    try:
        ctx = ServiceContext(settings)
        ctx.db.check_writable()
        jobs = JobRunner(ctx, settings.job_workers)
    except Exception as exc:
        reason = storage_unavailable(exc, settings.database_url)
        if reason is None:
            raise
        raise StorageUnavailable(reason) from exc
    writer = MemberWriter(ctx)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        library.warm_up()
        heap.settle()  # the imported app is long-lived: out of the collector's full passes
        yield
        writer.close()
        jobs.shutdown()
        ctx.close()

    app = FastAPI(title="geoalloc", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # /docs with self-served assets: api.routes.docs
    app.state.ctx, app.state.writer, app.state.jobs = ctx, writer, jobs
    problems.install(app)
    for r in (members.router, relocations.router, plans.router, keys.router, health.router, console.router,
              docs.router):
        app.include_router(r)

    limits = body_limits(settings)
    default = settings.max_body_kb * 2**10
    app.add_middleware(Guard, keys=ctx.keys, limit_for=lambda path: limits.get(path, default))
    app.add_middleware(Metrics, metrics=ctx.metrics)
    app.add_middleware(CatchAll)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so every answer carries the headers
    return app


def close_app(app: FastAPI) -> None:
    """Stop an app's writer, jobs and pool when its lifespan did not run (a second app in a test)."""
    app.state.writer.close()
    app.state.jobs.shutdown()
    app.state.ctx.close()
