"""Liveness, readiness and Prometheus metrics (no key needed: they show no data)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from api import library
from api.deps import Ctx
from api.metrics import CONTENT_TYPE
from api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def healthz() -> Health:
    """Always ok while the process serves requests."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="Readiness: database reachable, library parts importable",
            responses={503: {"model": Health, "description": "not ready"}})
def readyz(ctx: Ctx, response: Response) -> Health:
    """503 until the database answers and every library part the API composes imports."""
    checks: dict[str, str] = {}
    try:
        with ctx.db.read() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks |= library.available()
    ok = all(v == "ok" for v in checks.values())
    if not ok:
        response.status_code = 503
    return Health(status="ok" if ok else "unavailable", checks=checks)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "exposition format"}})
def metrics(ctx: Ctx) -> Response:
    """Request counts and latencies by route, relocations by action, jobs."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
