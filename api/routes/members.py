"""Members: import a roster, list, read, change, relocate. Personal data by district scope only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Header, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select

from api.deps import Admin, Ctx, Planner, Writer
from api.problems import ProblemError, responses
from api.schemas import (
    AddressOut,
    ImportReport,
    MemberDetail,
    MemberOut,
    MemberPage,
    MemberPatch,
    RelocateIn,
    RelocationOut,
)
from api.services import members as member_service
from api.services import relocations
from geoalloc.store.members import address_history, list_members, member_dict
from geoalloc.store.models import Assignment, Member
from geoalloc.store.plans import newest_plan

router = APIRouter(prefix="/members", tags=["members"])

MemberId = Annotated[str, Path(min_length=1, max_length=64, description="the member's id")]


def _branch_of(s: Any, member_id: str) -> str | None:
    plan = newest_plan(s)
    if plan is None:
        return None
    return s.scalar(select(Assignment.branch_id).where(Assignment.plan_id == plan.id, Assignment.member_id == member_id))


@router.post("/import", response_model=ImportReport, summary="Import a roster (CSV or .xlsx) with a validation report",
             responses=responses(400, 401, 403, 413, 422, 503, 507))
async def import_members(ctx: Ctx, who: Admin,
                         file: Annotated[UploadFile, File(description="roster as CSV (UTF-8) or .xlsx")]) -> ImportReport:
    """Validate every row (rejects name row, field and reason), geocode rows without coordinates
    offline, and insert or update members. Plans are not changed: start a rebalance afterwards.
    Limits: the file's size (``GEOALLOC_MAX_UPLOAD_MB``), an .xlsx file's unpacked size and the
    number of rows (413 when over); text fields as PATCH allows them; ``weight`` at most the
    newest plan's ``max_size``."""
    data = await file.read(ctx.settings.max_upload_mb * 1024 * 1024 + 1)
    if len(data) > ctx.settings.max_upload_mb * 1024 * 1024:
        raise ProblemError(413, f"the roster is larger than {ctx.settings.max_upload_mb} MB")
    filename = file.filename or "roster.csv"
    return await run_in_threadpool(member_service.import_roster, ctx, who.key_id, data, filename)


def _out(m: Member, branch: str | None) -> dict[str, Any]:
    return member_dict(m) | {"branch_id": branch}


@router.get("", response_model=MemberPage, summary="List members of your districts",
            responses=responses(401, 403, 422))
def get_members(ctx: Ctx, who: Planner,
                district: Annotated[str | None, Query(max_length=32, description="only this district")] = None,
                status: Annotated[str | None, Query(max_length=16, description="only this status")] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> MemberPage:
    """Planners see their own district only; admins every district."""
    if who.district_zh is not None and who.role != "admin":
        if district is not None and district != who.district_zh:
            raise ProblemError(403, f"this key may read members of {who.district_zh} only")
        district = who.district_zh
    with ctx.db.read() as s:
        rows, total = list_members(s, district, status, limit, offset)
        plan = newest_plan(s)
        branch: dict[str, str | None] = {}
        if plan is not None and rows:
            ids = [m.member_id for m in rows]
            branch = dict(s.execute(select(Assignment.member_id, Assignment.branch_id)
                                    .where(Assignment.plan_id == plan.id, Assignment.member_id.in_(ids))).all())
        items = [MemberOut(**_out(m, branch.get(m.member_id))) for m in rows]
    return MemberPage(total=total, limit=limit, offset=offset, items=items)


@router.get("/{member_id}", response_model=MemberDetail, summary="One member with their address history",
            responses=responses(401, 403, 404, 422))
def get_member(ctx: Ctx, who: Planner, member_id: MemberId) -> MemberDetail:
    """404 also for a member of a district this key may not see (existence is not disclosed)."""
    with ctx.db.read() as s:
        m = s.get(Member, member_id)
        if m is None or not who.sees_district(m.district_zh):
            raise ProblemError(404, f"no member {member_id!r} in your districts")
        history = [AddressOut(address=a.address, lon=a.lon, lat=a.lat, district_zh=a.district_zh,
                              geo_precision=a.geo_precision, geo_status=a.geo_status, source=a.source,
                              valid_from=a.valid_from, valid_to=a.valid_to) for a in address_history(s, member_id)]
        return MemberDetail(**_out(m, _branch_of(s, member_id)), addresses=history)


@router.patch("/{member_id}", response_model=MemberDetail, summary="Change a member's details",
              responses=responses(401, 403, 404, 422, 503, 507))
def patch_member(ctx: Ctx, writer: Writer, who: Planner, member_id: MemberId, body: MemberPatch) -> MemberDetail:
    """A changed status (lost_contact, transfer_out, active) or full-member flag is applied to the newest plan
    as a relocation would be (the member leaves or rejoins a branch; limits always hold). A member
    without a known home point cannot be made active (422: relocate them first)."""
    fields = {k: (v.value if hasattr(v, "value") else v) for k, v in body.model_dump(exclude_unset=True).items()
              if v is not None}
    if fields:
        relocations.patch(writer, who, member_id, fields)
    return get_member(ctx, who, member_id)


@router.post("/{member_id}/relocate", response_model=RelocationOut, summary="A member moved: re-place them",
             responses=responses(401, 403, 404, 413, 422, 503, 507))
async def relocate_member(ctx: Ctx, writer: Writer, who: Planner, member_id: MemberId, body: RelocateIn,
                    idempotency_key: Annotated[str | None, Header(max_length=128, description=(
                        "a retried call with the same key returns the first answer instead of moving twice"))] = None,
                    ) -> Any:
    """Geocode the new address (or take the point, converted to WGS-84), then keep the member's branch,
    move them to the best nearby branch with room, or re-solve the few branches around; a point
    outside Shenzhen marks the member transfer_out. Applies to the newest plan. An address that
    cannot be placed is refused (422, saying why); a district planner may not move a member into
    another district (403: that changes the other district's branches)."""
    status, out = await relocations.relocate(ctx, writer, who, member_id, body.model_dump(mode="json", exclude_none=True),
                                             idempotency_key)
    return JSONResponse(out, status_code=status)  # built by us in RelocationOut's shape: no second validation

