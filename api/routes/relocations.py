"""Bulk relocations: many members moved in one call (a sync from the membership system)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from api.deps import Ctx, Planner, Writer
from api.problems import responses
from api.schemas import MAX_BULK_ITEMS, RelocationsIn, RelocationsOut
from api.services import relocations

router = APIRouter(tags=["members"])


@router.post("/relocations", response_model=RelocationsOut, summary=f"Relocate up to {MAX_BULK_ITEMS:,} members",
             responses=responses(401, 403, 413, 422, 503, 507))
async def relocate_many(ctx: Ctx, writer: Writer, who: Planner, body: RelocationsIn,
                        idempotency_key: Annotated[str | None, Header(max_length=128, description=(
                            "a retried call with the same key applies only what the first did not and answers "
                            "every item as the first call did"))] = None) -> Any:
    """Each item (``member_id`` with ``address`` or ``lon``/``lat``/``datum``) is applied exactly as
    ``POST /members/{id}/relocate`` applies one, in order, and answered on its own: ``status`` 200
    with the relocation, or the status and problem that call would have got (404 outside your
    districts, 422 for an address that cannot be placed, 403 for a move into another district).
    Limits hold after every item. The answer is 200 whenever the request itself was valid."""
    items = [it.model_dump(mode="json", exclude_none=True) for it in body.items]
    out = await relocations.relocate_many(ctx, writer, who, items, idempotency_key)
    return JSONResponse(out)  # built in RelocationsOut's shape: no second validation of 10,000 items
