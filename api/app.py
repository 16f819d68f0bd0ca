"""The FastAPI app factory: ``create_app()`` for uvicorn, tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from api import problems
from api.context import ServiceContext
from api.routes import health, keys, members, plans
from api.settings import Settings

DESCRIPTION = """\
Branch allocation for Shenzhen member organisations, as a service.

Authenticate with `Authorization: Bearer KEY` (keys from `geoalloc keys create`). Roles:
**viewer** (aggregates and maps without personal data), **planner** (plans and relocations;
personal data of their own district only), **admin** (keys, imports, every district).
Errors are RFC 9457 `application/problem+json`. Forming and rebalancing plans are background
jobs (202 + job id, poll `/jobs/{id}`); relocations apply to the newest plan.
"""


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    """Build the app; the database is created or upgraded on start (``GEOALLOC_INIT_DB``)."""
    settings = settings or Settings()
    if database_url is not None:
        settings = settings.model_copy(update={"database_url": database_url})
    ctx = ServiceContext(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(title="geoalloc", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    problems.install(app)
    for r in (members.router, plans.router, keys.router, health.router):
        app.include_router(r)

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        ctx.metrics.requests.labels(request.method, name, str(response.status_code)).inc()
        ctx.metrics.latency.labels(request.method, name).observe(time.perf_counter() - started)
        return response

    return app
