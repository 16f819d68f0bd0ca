"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

Routes raise :class:`ProblemError` (or FastAPI's ``HTTPException``); validation errors and
anything unexpected are turned into the same shape, so clients parse one error format.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("geoalloc.api")

PROBLEM_TYPE = "application/problem+json"
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
           500: "Internal Server Error", 503: "Service Unavailable", 507: "Insufficient Storage"}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field("about:blank", description="a URI naming the kind of problem")
    title: str = Field(..., description="short, human-readable summary of the kind of problem")
    status: int = Field(..., description="the HTTP status code")
    detail: str | None = Field(None, description="what went wrong this time, for a person")
    instance: str | None = Field(None, description="the request path")
    errors: list[dict[str, Any]] | None = Field(None, description="field-level errors (validation)")


class ProblemError(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, type_: str = "about:blank",
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.title, self.type = status, detail, title, type_
        self.errors, self.headers = errors, headers


def problem_response(request: Request, status: int, detail: str | None, *, title: str | None = None,
                     type_: str = "about:blank", errors: list[dict[str, Any]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON response for a problem (media type ``application/problem+json``)."""
    body = Problem(type=type_, title=title or _TITLES.get(status, "Error"), status=status, detail=detail,
                   instance=request.url.path, errors=errors)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _jsonable_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append({"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    return out


def storage_problem(exc: BaseException) -> tuple[int, str, dict[str, str]] | None:
    """(status, detail, headers) for storage trouble: 507 when the disk or database is full, 503
    (retry later) when it is read-only, locked or unreachable; None for anything else."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return 507, "the server's storage is full; nothing was changed", {}
    if not isinstance(exc, DBAPIError):
        return None
    text = str(getattr(exc, "orig", exc)).lower()
    code = str(getattr(getattr(exc, "orig", None), "sqlstate", "") or "")
    if "disk is full" in text or "no space left" in text or code in ("53100", "53000"):
        return 507, "the database's storage is full; nothing was changed", {}
    if "readonly" in text or "read-only" in text or code == "25006":
        return 503, "the database is read-only at the moment; nothing was changed", {"Retry-After": "60"}
    if "locked" in text or "busy" in text or code in ("40001", "40P01", "55P03"):
        return 503, "the database is busy; retry", {"Retry-After": "1"}
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return 503, "the database is unreachable at the moment; nothing was changed", {"Retry-After": "5"}
    return None


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(request, exc.status, exc.detail, title=exc.title, type_=exc.type, errors=exc.errors,
                                headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(request, exc.status_code, str(exc.detail) if exc.detail else None,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _jsonable_errors(list(exc.errors()))
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5]) or "invalid request"
        return problem_response(request, 422, detail, errors=errors)

    from sqlalchemy.exc import SQLAlchemyError

    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        storage = storage_problem(exc)
        if storage is None:
            log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
            return problem_response(request, 500, "an unexpected error occurred; it has been logged")
        status, detail, headers = storage
        log.error("storage trouble on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(request, status, detail, headers=headers)

    app.add_exception_handler(SQLAlchemyError, _storage)
    app.add_exception_handler(OSError, _storage)


#: OpenAPI ``responses=`` entry for the errors every authenticated route can return.
def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Document problem responses in the OpenAPI schema."""
    return {c: {"model": Problem, "description": _TITLES.get(c, "Error"),
                "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}} for c in codes}
