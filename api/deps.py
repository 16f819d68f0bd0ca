"""Request dependencies: the service context, the caller (from ``Authorization: Bearer KEY``), roles.

Every route declares the roles it admits with :func:`require`; district scope is checked
where the data is touched (a planner of 南山区 sees 南山区 members only), through
:meth:`geoalloc.store.keys.Principal.sees_district`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.problems import ProblemError
from geoalloc.store.keys import Principal

if TYPE_CHECKING:
    from api.context import ServiceContext
    from api.services.jobs import JobRunner
    from api.services.relocations import MemberWriter

_bearer = HTTPBearer(auto_error=False, description="an API key from `geoalloc keys create`")


async def context(request: Request) -> ServiceContext:
    """The per-app service context (database, caches, job runner)."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx


Ctx = Annotated["ServiceContext", Depends(context)]


async def writer(request: Request) -> MemberWriter:
    """The service's single writer of member changes."""
    w: MemberWriter = request.app.state.writer
    return w


async def jobs(request: Request) -> JobRunner:
    """The service's plan job runner."""
    runner: JobRunner = request.app.state.jobs
    return runner


Writer = Annotated["MemberWriter", Depends(writer)]
Jobs = Annotated["JobRunner", Depends(jobs)]


async def principal(request: Request,
                    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller; 401 (with ``WWW-Authenticate: Bearer``) when the key is missing, unknown or revoked.

    The request's key was already checked from its headers (``api.middleware.Guard``); this is
    the same check answered from the key cache, and the one routes rely on.
    """
    if creds is None or not creds.credentials:
        raise ProblemError(401, "an API key is required: send 'Authorization: Bearer KEY'",
                           headers={"WWW-Authenticate": "Bearer"})
    keys = request.app.state.ctx.keys
    who = keys.cached(creds.credentials)
    if who is None:
        who = await run_in_threadpool(keys.check, creds.credentials)
    if who is None:
        raise ProblemError(401, "the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
    request.state.key_id = who.key_id
    return who


def require(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only the given roles (403 otherwise)."""

    async def _check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            raise ProblemError(403, f"role '{who.role}' may not do this (needs {' or '.join(roles)})")
        return who

    return _check


Viewer = Annotated[Principal, Depends(require("viewer", "planner", "admin"))]
Planner = Annotated[Principal, Depends(require("planner", "admin"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def require_city_wide(who: Principal) -> None:
    """Plan-wide changes (forming, rebalancing) touch every district: admins and city-wide planners only."""
    if who.role != "admin" and who.district_zh is not None:
        raise ProblemError(403, f"this key is scoped to {who.district_zh}; forming or rebalancing a plan changes "
                                "every district and needs a city-wide planner or admin key")
