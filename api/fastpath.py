"""A lean ASGI path for the hottest call, ``POST /members/{id}/relocate``, in front of FastAPI.

Why: under load FastAPI's routing, dependency solving and response handling cost more CPU per
relocation than the relocation itself, and so does the middleware stack around it (error,
telemetry and body-limit middleware, about a fifth of the event loop's time per relocation in a
py-spy profile). :class:`api.app.ServiceApp` therefore calls this path before any of that; it
serves only the ordinary case and serves it with the same code as the FastAPI route:

* the caller is a key already checked by :class:`api.context.KeyCache` (within its TTL) with
  role planner or admin; district scope and idempotency are checked by the relocation writer,
  exactly as for the route;
* the body is validated by the route's own model (:class:`api.schemas.RelocateIn`) and passed on
  as the route passes it (``model_dump(mode="json", exclude_none=True)``);
* the answer is the same JSON (Starlette's encoding); a :class:`ProblemError` is answered by the
  app's own problem+json handler, anything unexpected by its 500 handler (logged), as the error
  middleware would;
* it counts the request in the same Prometheus series as :class:`api.app.MetricsMiddleware`
  (route label ``/members/{member_id}/relocate``). FastAPI's own OpenTelemetry instrumentation
  (unconfigured in this service) does not see these requests.

Anything else (no or unknown key, another role, not JSON, no ``Content-Length`` or a body over
``MAX_BODY`` bytes, an invalid body, an over-long id or ``Idempotency-Key``) falls through to
FastAPI unchanged (the body is replayed), so every error keeps the route's exact answer and the
OpenAPI document stays the route's.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import ProblemError
from api.relocation import relocate
from api.schemas import RelocateIn

_PATH = re.compile(r"/members/([^/]{1,64})/relocate")
_ROLES = frozenset({"planner", "admin"})
ROUTE_PATH = "/members/{member_id}/relocate"
#: Larger bodies (a relocation body is under 200 bytes) go to FastAPI and its body limit.
MAX_BODY = 16_384
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":"))


class RelocateFastPath:
    """Serve ordinary relocations directly; pass everything else to ``app``."""

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._route: Any = None
        self._counters: dict[int, Any] = {}  # status -> the labelled Prometheus counter
        self._latency: Any = None

    def _route_obj(self) -> Any:
        if self._route is None:
            from api.routes.members import router

            self._route = next(r for r in router.routes
                               if getattr(r, "path", None) == ROUTE_PATH and "POST" in getattr(r, "methods", ()))
        return self._route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        m = _PATH.fullmatch(scope["path"])
        if m is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ctx = self.fastapi_app.state.ctx
        auth = ctype = idem = length = None
        for k, v in scope["headers"]:
            if k == b"authorization":
                if auth is not None:
                    auth = b""  # repeated: let FastAPI decide
                else:
                    auth = v
            elif k == b"content-type":
                ctype = v
            elif k == b"idempotency-key":
                if idem is not None:
                    idem = b"\xff" * 200  # repeated: fall through (the length check below)
                else:
                    idem = v
            elif k == b"content-length":
                length = b"" if length is not None else v  # repeated: fall through
        who = None
        if auth and ctype is not None and ctype.split(b";", 1)[0].strip().lower() == b"application/json":
            scheme, _, cred = auth.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and cred:
                who = ctx.keys.cached(cred)
        if (who is None or who.role not in _ROLES or (idem is not None and len(idem) > 128)
                or not length or not length.isdigit() or int(length) > MAX_BODY):
            await self.app(scope, receive, send)
            return

        body, message = await _read_body(receive)
        try:
            parsed = RelocateIn.model_validate_json(body) if body else None
        except ValidationError:
            parsed = None
        if parsed is None:
            await self.app(scope, _replay(message, receive), send)
            return

        scope["route"] = self._route_obj()  # as routing would set it (handlers may read it)
        scope["app"] = self.fastapi_app
        member_id = m.group(1)
        status = 500
        try:
            try:
                status, out = await relocate(ctx, who, member_id, parsed.model_dump(mode="json", exclude_none=True),
                                             idem.decode("latin-1") if idem is not None else None)
            except Exception as exc:  # noqa: BLE001 - answered by the app's handlers, as its middleware would
                handler = self.fastapi_app.exception_handlers[ProblemError if isinstance(exc, ProblemError)
                                                               else Exception]
                response = await handler(Request(scope, receive), exc)
                status = response.status_code
                await response(scope, receive, send)
                return
            payload = _JSON.encode(out).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-length", str(len(payload)).encode()),
                                    (b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": payload})
        finally:
            self._count(status, time.perf_counter() - started)

    def _count(self, status: int, seconds: float) -> None:
        """The request in the series :class:`api.app.MetricsMiddleware` keeps (children cached:
        ``labels()`` costs more than the increment)."""
        metrics = self.fastapi_app.state.ctx.metrics
        counter = self._counters.get(status)
        if counter is None:
            counter = self._counters[status] = metrics.requests.labels("POST", ROUTE_PATH, str(status))
        if self._latency is None:
            self._latency = metrics.latency.labels("POST", ROUTE_PATH)
        counter.inc()
        self._latency.observe(seconds)


async def _read_body(receive: Receive) -> tuple[bytes, Message]:
    """The whole request body, and one message that carries all of it (to replay on fall-through)."""
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] != "http.request":  # the client went away: hand FastAPI that message
            return b"", msg
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, {"type": "http.request", "body": body, "more_body": False}


def _replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that returns the already-read body first, then defers to the real one."""
    sent = False

    async def _receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return _receive
