"""A lean ASGI path for the hottest call, ``POST /members/{id}/relocate``, in front of FastAPI.

Why: under load FastAPI's routing, dependency solving and response handling cost more CPU per
relocation than the relocation itself. This path serves only the ordinary case and serves it
with the same code as the FastAPI route:

* the caller is a key already checked by :class:`api.context.KeyCache` (within its TTL) with
  role planner or admin; district scope and idempotency are checked by the relocation writer,
  exactly as for the route;
* the body is validated by the route's own model (:class:`api.schemas.RelocateIn`) and passed on
  as the route passes it (``model_dump(mode="json", exclude_none=True)``);
* the answer is the same JSON (Starlette's encoding); a :class:`ProblemError` is answered by the
  app's own problem+json handler.

Anything else (no or unknown key, another role, not JSON, an invalid body, an over-long id or
``Idempotency-Key``) falls through to FastAPI unchanged (the body is replayed), so every error
keeps the route's exact answer and the OpenAPI document stays the route's.
"""

from __future__ import annotations

import json
import re
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


class RelocateFastPath:
    """Serve ordinary relocations directly; pass everything else to ``app``."""

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self._route: Any = None

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
        ctx = self.fastapi_app.state.ctx
        auth = ctype = idem = None
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
        who = None
        if auth and ctype is not None and ctype.split(b";", 1)[0].strip().lower() == b"application/json":
            scheme, _, cred = auth.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and cred:
                who = ctx.keys.cached(cred)
        if who is None or who.role not in _ROLES or (idem is not None and len(idem) > 128):
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

        scope["route"] = self._route_obj()  # the metrics middleware labels by route template
        member_id = m.group(1)
        try:
            status, out = await relocate(ctx, who, member_id, parsed.model_dump(mode="json", exclude_none=True),
                                         idem.decode("latin-1") if idem is not None else None)
        except ProblemError as exc:
            handler = self.fastapi_app.exception_handlers[ProblemError]
            response = await handler(Request(scope, receive), exc)
            await response(scope, receive, send)
            return
        payload = json.dumps(out, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})


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
