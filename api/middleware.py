"""Plain ASGI middleware every request passes through, in this order (outermost first):

1. :class:`SecurityHeaders`: ``nosniff``, ``no-store``, no framing, a strict default CSP;
2. :class:`CatchAll`: anything unexpected is logged and answered as a 500 problem;
3. :class:`Metrics`: request count and latency by route template;
4. :class:`Guard`: authentication decided from the headers and the body's size bounded, both
   before any route or dependency reads a byte of the body. A keyless request (or one with an
   unknown or revoked key) is answered 401 at once; a declared ``Content-Length`` over the
   route's limit is answered 413 at once; a streamed (chunked) body is counted as it arrives and
   answered 413 the moment it passes the limit. Those early answers close the connection, so
   the unread body is never buffered.

Plain ASGI (no ``BaseHTTPMiddleware``): no extra task or stream per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

log = logging.getLogger("geoalloc.api")

#: Paths answered without a key (they show no data): operations and the API's own description.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
                          "/redoc", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/console/", "/docs/assets/")

#: The CSP of every response that does not bring its own (JSON, problems): nothing may load.
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_SECURITY = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
             (b"referrer-policy", b"no-referrer")]


def is_public(path: str) -> bool:
    """Whether ``path`` is served without a key."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BodyTooLarge(HTTPException):
    """The streamed body passed its limit. Raised from ``receive``, so from whatever reads the body;
    an HTTPException on purpose: FastAPI's body parsing passes those on (anything else would
    become its 400), and the app's handler answers 413. :class:`Guard` answers it otherwise."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit:,} bytes", headers={"Connection": "close"})
        self.limit = limit


class SecurityHeaders:
    """Headers for every response: personal data is never cached, sniffed or framed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _SECURITY if k not in have]
                if b"cache-control" not in have:
                    headers.append((b"cache-control", b"no-store"))
                if b"content-security-policy" not in have:
                    headers.append((b"content-security-policy", DEFAULT_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_headers)


class Metrics:
    """Request count and latency by route template."""

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


class Guard:
    """Authentication from headers and body limits, before the body is read (see the module doc).

    ``keys`` is the context's :class:`api.context.KeyCache`; ``limit_for(path)`` the largest body
    (bytes) a path takes. Roles and district scope stay with the routes' dependencies.
    """

    def __init__(self, app: ASGIApp, keys: Any, limit_for: Callable[[str], int]) -> None:
        self.app, self.keys, self.limit_for = app, keys, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        length: bytes | None = None
        auth: list[bytes] = []
        chunked = False
        for k, v in scope["headers"]:
            if k == b"content-length":
                length = v if length is None else b"x"  # repeated: refused below
            elif k == b"authorization":
                auth.append(v)
            elif k == b"transfer-encoding":
                chunked = True
        has_body = chunked or (length is not None and length != b"0")
        if not is_public(path):
            why = await self._authenticate(auth)
            if why is not None:
                await self._answer(scope, send, 401, why, {"WWW-Authenticate": "Bearer"}, close=has_body)
                return
        limit = self.limit_for(path)
        if length is not None:
            if not length.isdigit():
                await self._answer(scope, send, 400, "the Content-Length header is not a single number", close=True)
                return
            if int(length) > limit:
                await self._answer(scope, send, 413, f"the request body is larger than {limit:,} bytes "
                                                     f"(Content-Length {int(length):,})", close=True)
                return
        started = [False]
        seen = [0]

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise BodyTooLarge(limit)
            return message

        async def send_started(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, counted, send_started)
        except BodyTooLarge as exc:
            if started[0]:
                raise
            await self._answer(scope, send, 413, str(exc.detail), close=True)

    async def _authenticate(self, auth: list[bytes]) -> str | None:
        """Why the request is not authenticated, or None when its key is valid."""
        if not auth:
            return "an API key is required: send 'Authorization: Bearer KEY'"
        if len(auth) > 1:
            return "send one Authorization header"
        scheme, _, cred = auth[0].decode("latin-1").partition(" ")
        cred = cred.strip()
        if scheme.lower() != "bearer" or not cred:
            return "an API key is required: send 'Authorization: Bearer KEY'"
        if len(cred) > 256:
            return "the API key is unknown or revoked"
        who = self.keys.cached(cred)
        if who is None:
            who = await run_in_threadpool(self.keys.check, cred)
        return None if who is not None else "the API key is unknown or revoked"

    @staticmethod
    async def _answer(scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None,
                      close: bool = False) -> None:
        """A problem answer; ``close`` ends the connection so an unread body is never buffered."""
        headers = dict(headers or {})
        if close:
            headers["Connection"] = "close"
        response = problem_response(Request(scope), status, detail, headers=headers)

        async def _no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, _no_body, send)


class CatchAll:
    """Anything unexpected becomes a logged 500 problem inside the header middleware (Starlette's
    own last-resort handler sits outside every middleware, so its answer would lack the headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = [False]

        async def send_started(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, receive, send_started)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started[0]:
                raise
            response = problem_response(Request(scope), 500, "an unexpected error occurred; it has been logged")
            await response(scope, receive, send)
