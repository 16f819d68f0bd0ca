"""Plans: start forming or rebalancing (background jobs), read summaries, branches, reports, maps, diffs.

Viewers see aggregates only: branch sites generalised, no member ids, a map without members.
Planners see member-level data of their own district; admins everything.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from api import library
from api.csp import page_csp
from api.deps import Ctx, Jobs, Planner, Viewer, require_city_wide
from api.problems import ProblemError, responses
from api.schemas import (
    BranchOut,
    DiffMove,
    DiffOut,
    JobOut,
    PlanOut,
    PolicyIn,
    RebalanceIn,
)
from geoalloc.rules import Policy
from geoalloc.store.keys import Principal
from geoalloc.store.models import Assignment, Branch, Job, Plan
from geoalloc.store.plans import newest_plan, plan_frames

router = APIRouter(tags=["plans"])

PlanId = Annotated[int, Path(ge=1, le=2**31 - 1, description="plan id")]


def job_out(job: Job) -> JobOut:
    """A job row as the API shows it."""
    return JobOut(job_id=job.id, kind=job.kind, status=job.status, progress=job.progress, message=job.message,
                  parent_plan_id=job.parent_plan_id, plan_id=job.plan_id, error=job.error, created_at=job.created_at,
                  started_at=job.started_at, finished_at=job.finished_at)


def _accepted(response: Response, job: Job) -> JobOut:
    response.status_code = 202
    response.headers["Location"] = f"/jobs/{job.id}"
    return job_out(job)


def _policy(p: PolicyIn) -> dict[str, Any]:
    args = p.to_policy_args()
    args.pop("sites", None)
    if p.sites:
        from geoalloc.sites import SiteError, validate_sites

        try:
            args["sites"] = validate_sites([s.model_dump(mode="json") for s in p.sites])
        except SiteError as exc:
            raise ProblemError(422, str(exc), title="Invalid sites") from exc
    try:
        return Policy(**args).to_dict()
    except ValueError as exc:
        raise ProblemError(422, str(exc), title="Invalid policy") from exc


@router.post("/plans", response_model=JobOut, status_code=202, summary="Form a new plan (background job)",
             responses=responses(401, 403, 422))
def create_plan(jobs: Jobs, who: Planner, response: Response, body: PolicyIn | None = None) -> JobOut:
    """Forms branches for today's members under the policy; poll ``GET /jobs/{id}`` for the plan id."""
    require_city_wide(who)
    policy = _policy(body or PolicyIn())
    job = jobs.submit("form", {"policy": policy}, None, who.key_id)
    return _accepted(response, job)


@router.post("/plans/{plan_id}/rebalance", response_model=JobOut, status_code=202,
             summary="Rebalance a plan with minimal disruption (background job)", responses=responses(401, 403, 404, 422))
def rebalance_plan(ctx: Ctx, jobs: Jobs, who: Planner, plan_id: PlanId, response: Response,
                   body: RebalanceIn | None = None) -> JobOut:
    """Fixes limit violations and re-places members who moved, moving as few as the settings allow."""
    require_city_wide(who)
    body = body or RebalanceIn()
    with ctx.db.read() as s:
        if s.get(Plan, plan_id) is None:
            raise ProblemError(404, f"no plan {plan_id}")
    params: dict[str, Any] = {"max_moves": body.max_moves, "move_penalty_m": body.move_penalty_m}
    if body.policy is not None:
        params["policy"] = _policy(body.policy)
    job = jobs.submit("rebalance", params, plan_id, who.key_id)
    return _accepted(response, job)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A background job's progress and resulting plan",
            responses=responses(401, 404))
def get_job(ctx: Ctx, who: Viewer, job_id: Annotated[str, Path(min_length=1, max_length=64)]) -> JobOut:
    """Progress 0..1; ``plan_id`` once it succeeded; ``error`` when it failed."""
    with ctx.db.read() as s:
        job = s.get(Job, job_id)
        if job is None:
            raise ProblemError(404, f"no job {job_id!r}")
        return job_out(job)


def _plan(s: Any, plan_id: int) -> Plan:
    plan = s.get(Plan, plan_id)
    if plan is None:
        raise ProblemError(404, f"no plan {plan_id}")
    return plan


@router.get("/plans/{plan_id}", response_model=PlanOut, summary="A plan's summary", responses=responses(401, 404, 422))
def get_plan(ctx: Ctx, who: Viewer, plan_id: PlanId) -> PlanOut:
    """Parent, policy, version, counts; ``newest`` tells whether relocations apply to it."""
    with ctx.db.read() as s:
        plan = _plan(s, plan_id)
        newest = newest_plan(s)
        n_branches = s.scalar(select(func.count()).select_from(Branch).where(Branch.plan_id == plan_id)) or 0
        n_members = s.scalar(select(func.count()).select_from(Assignment).where(Assignment.plan_id == plan_id)) or 0
        n_assigned = s.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.plan_id == plan_id, Assignment.branch_id.is_not(None))) or 0
        return PlanOut(plan_id=plan.id, parent_id=plan.parent_id, kind=plan.kind, status=plan.status,
                       newest=newest is not None and newest.id == plan.id, version=plan.state_version,
                       policy=plan.policy or {}, created_at=plan.created_at, n_branches=n_branches,
                       n_members=n_members, n_assigned=n_assigned)


def _generalise(v: float | None, who: Principal, district: str, decimals: int) -> float | None:
    """A branch site as this key may see it: exact within its districts, rounded elsewhere."""
    if v is None or who.sees_district(district):
        return v
    return round(v, decimals)


@router.get("/plans/{plan_id}/branches", response_model=list[BranchOut], summary="A plan's branches",
            responses=responses(401, 404, 422))
def get_branches(ctx: Ctx, who: Viewer, plan_id: PlanId) -> list[BranchOut]:
    """Id, meeting site, district, size and full members. A branch's site may be a member's home, so
    keys that may not see that district's members (viewers; planners of other districts) get it
    rounded (``GEOALLOC_VIEWER_SITE_DECIMALS``, default 2 decimals, about 1 km)."""
    d = ctx.settings.viewer_site_decimals
    with ctx.db.read() as s:
        plan = _plan(s, plan_id)
        rows = s.scalars(select(Branch).where(Branch.plan_id == plan_id).order_by(Branch.branch_id)).all()
        sites = _site_labels(rows, plan.policy or {})
        return [BranchOut(branch_id=b.branch_id, lon=_generalise(b.lon, who, b.district_zh, d) if not sites[k][0] else b.lon,
                          lat=_generalise(b.lat, who, b.district_zh, d) if not sites[k][0] else b.lat,
                          city_zh=b.city_zh or "", district_zh=b.district_zh, size=b.size, n_full=b.n_full,
                          mean_distance_m=b.mean_distance_m, max_distance_m=b.max_distance_m, joint=b.joint,
                          site_id=sites[k][0] or None, site_name=sites[k][1] or None)
                for k, b in enumerate(rows)]


def _site_labels(rows: Any, policy: dict[str, Any]) -> list[tuple[str, str]]:
    """(site_id, site_name) per branch when the plan's policy has service centres (public places,
    so their points are not generalised), else empty strings."""
    from geoalloc.sites import label_branches

    frame = pd.DataFrame({"branch_id": [b.branch_id for b in rows], "lon": [b.lon for b in rows],
                          "lat": [b.lat for b in rows]})
    labelled = label_branches(frame, Policy.from_dict(policy))
    if "site_id" not in labelled:
        return [("", "")] * len(rows)
    return list(zip(labelled["site_id"], labelled["site_name"]))


@router.get("/plans/{plan_id}/report", response_model=dict[str, Any], summary="A plan's report.json",
            responses=responses(401, 404, 422))
def get_report(ctx: Ctx, who: Viewer, plan_id: PlanId) -> dict[str, Any]:
    """Objective, bound, gap, counts, limits. Lists of members (``unassigned``) are shown only for
    the districts the key may see, and not at all to viewers."""
    with ctx.db.read() as s:
        plan = _plan(s, plan_id)
        report = dict(plan.report or {})
        if who.role == "admin" or (who.role == "planner" and who.district_zh is None):
            return report
        visible: set[str] = set()
        if who.role == "planner":
            visible = set(s.scalars(select(Assignment.member_id).where(
                Assignment.plan_id == plan_id, Assignment.district_zh == who.district_zh)).all())
    return _scrub(report, visible)


def _scrub(obj: Any, visible: set[str]) -> Any:
    """Drop entries naming members this key may not see (any dict with a member_id, at any depth)."""
    if isinstance(obj, dict):
        return {k: _scrub(v, visible) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v, visible) for v in obj
                if not (isinstance(v, dict) and "member_id" in v and str(v["member_id"]) not in visible)]
    return obj


@router.get("/plans/{plan_id}/map", response_class=HTMLResponse, summary="A plan's interactive map (HTML)",
            responses=responses(401, 404, 422) | {200: {"content": {"text/html": {}}, "description": "the map"}})
async def get_map(ctx: Ctx, who: Viewer, plan_id: PlanId) -> HTMLResponse:
    """Viewers: branches and sizes only, no member data at all. Planners: members of their own district.
    Admins: everything. Points are snapped to the privacy grid and names are never drawn. The page
    is self-contained (no third-party script) and its Content-Security-Policy admits only its own
    inline scripts."""
    html = await run_in_threadpool(_map_html, ctx, who, plan_id)
    return HTMLResponse(html, headers={"Content-Security-Policy": page_csp(html)})


def visible_frames(ctx: Ctx, who: Principal, plan_id: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], Any]:
    """The plan's frames and report as this key may see them (as the map shows them), and its policy."""
    from geoalloc.sites import label_branches

    with ctx.db.read() as s:
        plan = _plan(s, plan_id)
        a, b = plan_frames(s, plan_id)
        report, policy = dict(plan.report or {}), Policy.from_dict(plan.policy or {})
    b = label_branches(b, policy)
    a, b, report = map_frames_for(who, a, b, report, ctx.settings.viewer_site_decimals)
    return a, b, report, policy


def _map_html(ctx: Ctx, who: Principal, plan_id: int) -> str:
    a, b, report, policy = visible_frames(ctx, who, plan_id)
    return library.plan_map_html(a, b, report, policy, title=f"geoalloc plan {plan_id}")


def map_frames_for(who: Principal, a: pd.DataFrame, b: pd.DataFrame, report: dict[str, Any],
                   decimals: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The frames a key may see on a map.

    Planner of a district: that district's members and branches. Viewer: no member is on the map at
    all: each member is replaced by an anonymous row at its branch's generalised site (so sizes
    still add up) and unassigned members are left out; report lists of members are dropped.
    """
    if who.role == "admin" or (who.role == "planner" and who.district_zh is None):
        return a, b, report
    if who.role == "planner":
        a = a[a["district_zh"] == who.district_zh].reset_index(drop=True)
        b = b[b["district_zh"] == who.district_zh].reset_index(drop=True)
        return a, b, _scrub(report, set(a["member_id"].astype(str)))
    b = b.copy()
    b["lon"], b["lat"] = b["lon"].round(decimals), b["lat"].round(decimals)
    assigned = a[a["branch_id"] != ""].reset_index(drop=True)
    site = b.set_index("branch_id")
    anon = pd.DataFrame({
        "member_id": [f"x{i:06d}" for i in range(len(assigned))],
        "branch_id": assigned["branch_id"].to_numpy(),
        "distance_m": float("nan"),
        "district_zh": assigned["district_zh"].to_numpy(),
        "lon": site.loc[assigned["branch_id"], "lon"].to_numpy() if len(assigned) else [],
        "lat": site.loc[assigned["branch_id"], "lat"].to_numpy() if len(assigned) else [],
        "geo_precision": "district",
        "full_member": assigned["full_member"].to_numpy(),
        "status": "active",
    })
    return anon, b, _scrub(report, set())


def _stored_reasons(ctx: Ctx, a: int, b: int) -> dict[str, str]:
    """Why members moved, when ``b`` is a rebalance of ``a`` (the rebalance's moves are in its report)."""
    with ctx.db.read() as s:
        plan = s.get(Plan, b)
        if plan is None or plan.parent_id != a:
            return {}
        moves = (plan.report or {}).get("moves") or []
    return {str(m.get("member_id")): str(m.get("reason") or "") for m in moves if isinstance(m, dict)}


def _bid(v: Any) -> str | None:
    """A branch id from a frame cell: empty, None and NaN all mean no branch."""
    return v if isinstance(v, str) and v else None


@router.get("/plans/{a}/diff/{b}", response_model=DiffOut, summary="What changed between two plans",
            responses=responses(401, 404, 422))
def diff(ctx: Ctx, who: Viewer, a: PlanId, b: PlanId) -> DiffOut:
    """Counts, opened/closed branches and size changes for everyone; the list of moved members only for
    planners (their district's members) and admins."""
    with ctx.db.read() as s:
        _plan(s, a)
        _plan(s, b)
        a_asg, a_br = plan_frames(s, a)
        b_asg, b_br = plan_frames(s, b)
    moves = library.diff_plans(a_asg, b_asg)
    if len(moves):  # members unassigned in both plans are not moves
        moves = moves[[(_bid(f) is not None) or (_bid(t) is not None) for f, t in zip(moves["from_branch"], moves["to_branch"])]]
        moves = moves[[_bid(f) != _bid(t) for f, t in zip(moves["from_branch"], moves["to_branch"])]]
        reasons = _stored_reasons(ctx, a, b)
        if reasons:
            moves = moves.assign(reason=[reasons.get(str(m)) or _bid(r) for m, r in zip(moves["member_id"], moves["reason"])])
    by_reason = ({(_bid(k) or "changed"): int(v) for k, v in moves["reason"].fillna("").value_counts().items()}
                 if len(moves) else {})
    sizes_a = dict(zip(a_br["branch_id"], a_br["size"].astype(int)))
    sizes_b = dict(zip(b_br["branch_id"], b_br["size"].astype(int)))
    changed = {k: [int(sizes_a.get(k, 0)), int(sizes_b.get(k, 0))] for k in sorted(set(sizes_a) | set(sizes_b))
               if sizes_a.get(k, 0) != sizes_b.get(k, 0)}
    visible_moves: list[DiffMove] = []
    if who.role != "viewer":
        district = pd.concat([a_asg[["member_id", "district_zh"]], b_asg[["member_id", "district_zh"]]])
        where = district.groupby("member_id")["district_zh"].agg(lambda x: set(x))
        for r in moves.to_dict("records"):
            ds = where.get(str(r["member_id"]), set())
            if who.role == "admin" or who.district_zh is None or who.district_zh in ds:
                visible_moves.append(DiffMove(member_id=str(r["member_id"]), from_branch=_bid(r["from_branch"]),
                                              to_branch=_bid(r["to_branch"]), reason=_bid(r.get("reason"))))
    return DiffOut(a=a, b=b, moved=len(moves), by_reason=by_reason,
                   branches_opened=sorted(set(sizes_b) - set(sizes_a)),
                   branches_closed=sorted(set(sizes_a) - set(sizes_b)), size_changes=changed, moves=visible_moves)


@router.get("/plans", response_model=list[PlanOut], summary="Every plan, newest first", responses=responses(401))
def list_plans(ctx: Ctx, who: Viewer) -> list[PlanOut]:
    """Summaries of all plans (most recent first, at most 100)."""
    with ctx.db.read() as s:
        ids = s.scalars(select(Plan.id).order_by(Plan.id.desc()).limit(100)).all()
    return [get_plan(ctx, who, i) for i in ids]

