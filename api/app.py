"""The FastAPI app factory: ``create_app()`` for uvicorn, tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import heap, library, problems
from api.context import ServiceContext
from api.fastpath import RelocateFastPath
from api.routes import console, health, keys, members, plans
from api.settings import Settings

DESCRIPTION = """\
Branch allocation for Shenzhen member organisations, as a service.

Authenticate with `Authorization: Bearer KEY` (keys from `geoalloc keys create`). Roles:
**viewer** (aggregates and maps without personal data), **planner** (plans and relocations;
personal data of their own district only), **admin** (keys, imports, every district).
Errors are RFC 9457 `application/problem+json`. Forming and rebalancing plans are background
jobs (202 + job id, poll `/jobs/{id}`); relocations apply to the newest plan.
"""


class MetricsMiddleware:
    """Request count and latency by route template (plain ASGI: no per-request task or stream)."""

    def __init__(self, app: ASGIApp, metrics: Any) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status[0])).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


class ServiceApp(FastAPI):
    """FastAPI with :class:`api.fastpath.RelocateFastPath` in front of its whole middleware stack
    (ordinary relocations skip the error, telemetry, body-limit and metrics middleware; the fast
    path answers errors and records metrics the same way itself)."""

    fast_path: RelocateFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is not None and scope["type"] == "http":
            await self.fast_path(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Everything but the fast path: what the fast path falls through to."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, database_url: str | None = None) -> FastAPI:
    """Build the app; the database is created or upgraded on start (``GEOALLOC_INIT_DB``)."""
    settings = settings or Settings()
    if database_url is not None:
        settings = settings.model_copy(update={"database_url": database_url})
    ctx = ServiceContext(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        library.warm_up()
        heap.settle()  # the imported app is long-lived: out of the collector's full passes
        yield
        ctx.close()

    app = ServiceApp(title="geoalloc", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.ctx = ctx
    problems.install(app)
    for r in (members.router, plans.router, keys.router, health.router, console.router):
        app.include_router(r)

    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)
    app.fast_path = RelocateFastPath(app._stack, fastapi_app=app)
    return app
