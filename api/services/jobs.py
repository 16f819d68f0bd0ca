"""Background jobs that form or rebalance a plan: a thread pool, with every job a database row.

``POST /plans`` and ``POST /plans/{id}/rebalance`` answer 202 with a job id at once; the job
snapshots the members (and the current plan), runs the library call outside any lock, then
saves the new plan in one transaction under the plan lock, first replaying every relocation
committed since the snapshot so that none is lost. The job's ``succeeded`` state and plan id
are written in that same transaction: a crash leaves either the previous plan the newest and
the job unfinished, or the new plan saved and the job saying so, never a saved plan behind a
failed job. Jobs still queued or running when the process stopped are marked failed on the
next start (their rows survive; their threads did not).

A failed job's ``error`` is for the client: a short sentence without SQL, parameters or member
data; the full exception is in the service's log under the job id.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from api import library
from api.services.relocations import replay
from geoalloc.rules import Policy
from geoalloc.solver.problem import InfeasibleError
from geoalloc.store.members import members_frame
from geoalloc.store.models import AuditEntry, Job, Member, Plan, RelocationEvent, utcnow
from geoalloc.store.plans import lock_plan, newest_plan, plan_frames, save_plan

if TYPE_CHECKING:
    from api.context import ServiceContext

log = logging.getLogger("geoalloc.api.jobs")


class JobFailure(Exception):
    """A job cannot go on for a reason the client can act on; the message is shown as it is."""


def client_error(exc: BaseException, job_id: str) -> str:
    """The ``error`` a client sees for a failed job: what to do, never the internals."""
    if isinstance(exc, JobFailure):
        return str(exc)
    if isinstance(exc, InfeasibleError):  # names regions and limits only (aggregates, no member data)
        text = "the rules cannot all be met: " + "; ".join(str(c) for c in exc.conflicts[:5])
        return text if len(text) <= 500 else text[:497] + "..."
    if isinstance(exc, (SQLAlchemyError, OSError)):
        return f"the plan could not be stored (database or disk trouble); see the service log for job {job_id}"
    return f"the job failed with an internal error; see the service log for job {job_id}"


class JobRunner:
    """Runs plan jobs on a small thread pool and records their progress in the ``jobs`` table."""

    def __init__(self, ctx: ServiceContext, workers: int) -> None:
        self.ctx = ctx
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="geoalloc-job")
        self.owner = _me()
        with ctx.db.write() as s:
            for job in s.scalars(select(Job).where(Job.status.in_(("queued", "running")))).all():
                if not _owner_alive(str((job.params or {}).get("_owner", ""))):
                    job.status, job.finished_at = "failed", utcnow()
                    job.error = "interrupted: the service stopped before the job finished"

    def submit(self, kind: str, params: dict[str, Any], parent_plan_id: int | None, key_id: str | None) -> Job:
        """Record a queued job and start it; returns the row."""
        job = Job(id=uuid.uuid4().hex, kind=kind, status="queued", progress=0.0, message="queued",
                  params=params | {"_owner": self.owner},
                  parent_plan_id=parent_plan_id, key_id=key_id, created_at=utcnow())
        with self.ctx.db.write() as s:
            s.add(job)
        self.pool.submit(self._run, job.id)
        return job

    def shutdown(self) -> None:
        """Wait for running jobs; drop queued ones (they are marked failed on next start)."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    # -- running -------------------------------------------------------------------------------

    def _set(self, job_id: str, **values: Any) -> None:
        with self.ctx.db.write() as s:
            s.execute(update(Job).where(Job.id == job_id).values(**values))

    def _progress(self, job_id: str) -> Any:
        last = [0.0, -1.0]

        def report(stage: str, fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] < 0.5 and fraction < 1.0:
                return
            last[0] = now
            # solving is most of the work: map a stage's fraction into 5%..95%
            self._set(job_id, progress=round(0.05 + 0.9 * max(0.0, min(1.0, float(fraction))), 3),
                      message=str(stage))

        return report

    def _run(self, job_id: str) -> None:
        metrics = self.ctx.metrics
        metrics.jobs_running.inc()
        kind = "?"
        try:
            with self.ctx.db.read() as s:
                job = s.get(Job, job_id)
                assert job is not None
                kind, params, parent_id, key_id = job.kind, dict(job.params), job.parent_plan_id, job.key_id
            self._set(job_id, status="running", started_at=utcnow(), progress=0.01, message="reading members")
            if kind == "form":
                form_plan(self.ctx, job_id, params, key_id, self._progress(job_id))
            else:
                assert parent_id is not None
                rebalance_plan(self.ctx, job_id, parent_id, params, key_id, self._progress(job_id))
            metrics.jobs.labels(kind=kind, status="succeeded").inc()
        except Exception as exc:  # a job's failure is data for GET /jobs/{id}, not a crash
            log.exception("job %s failed", job_id)
            try:
                with self.ctx.db.write() as s:  # never over a success committed with the plan
                    s.execute(update(Job).where(Job.id == job_id, Job.status != "succeeded").values(
                        status="failed", error=client_error(exc, job_id), finished_at=utcnow(), message="failed"))
            except Exception:
                log.exception("could not record the failure of job %s", job_id)
            metrics.jobs.labels(kind=kind, status="failed").inc()
        finally:
            metrics.jobs_running.dec()


def _started(pid: int) -> str:
    """A process's start time (Linux /proc), so a reused pid is not mistaken for the old process."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return ""


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"


def _owner_alive(owner: str) -> bool:
    """Whether the process that queued a job still runs (checked on this host; other hosts are trusted)."""
    host, _, rest = owner.partition(":")
    pid, _, started = rest.partition(":")
    if not pid.isdigit():
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return _started(int(pid)) == started


def _snapshot(ctx: ServiceContext, parent_id: int | None) -> tuple[int, pd.DataFrame, pd.DataFrame | None,
                                                                   pd.DataFrame | None, dict[str, Any]]:
    """Members (and the parent plan) as of one relocation event id, read in one transaction."""
    with ctx.db.read() as s:
        marker = int(s.scalar(select(func.coalesce(func.max(RelocationEvent.id), 0))) or 0)
        members = members_frame(s)
        current = branches = None
        policy: dict[str, Any] = {}
        if parent_id is not None:
            plan = s.get(Plan, parent_id)
            if plan is None:
                raise JobFailure(f"plan {parent_id} does not exist")
            current, branches = plan_frames(s, parent_id)
            policy = dict(plan.policy or {})
    return marker, members, current, branches, policy


def form_plan(ctx: ServiceContext, job_id: str | None, params: dict[str, Any], key_id: str | None,
              progress: Any) -> int:
    """Form a plan from scratch for today's members (library: geoalloc.pipeline.allocate)."""
    policy = Policy.from_dict(params.get("policy") or {})
    marker, members, _, _, _ = _snapshot(ctx, None)
    if members.empty:
        raise JobFailure("there are no members yet: import a roster first (POST /members/import)")
    result = library.allocate(members, policy, progress)
    return commit(ctx, result.assignments, result.branches, dict(result.report), policy, marker=marker,
                  parent_id=None, kind="form", key_id=key_id, job_id=job_id)


def rebalance_plan(ctx: ServiceContext, job_id: str | None, parent_id: int, params: dict[str, Any],
                   key_id: str | None, progress: Any) -> int:
    """Rebalance a stored plan for today's members (library: geoalloc.solver.rebalance.rebalance)."""
    marker, members, current, branches, stored_policy = _snapshot(ctx, parent_id)
    policy = Policy.from_dict(params.get("policy") or stored_policy)
    assert current is not None and branches is not None
    # Active members without a point cannot be placed by a rebalance; they stay listed, unassigned.
    placeable = members["lon"].notna() & members["lat"].notna() | (members["status"] != "active")
    result = library.rebalance(members[placeable].reset_index(drop=True), current, branches, policy,
                               params.get("max_moves"), params.get("move_penalty_m"), progress)
    assignments = result.assignments
    missing = current[~current["member_id"].isin(assignments["member_id"])].copy()
    if len(missing):
        missing["branch_id"], missing["distance_m"] = "", float("nan")
        assignments = pd.concat([assignments, missing[assignments.columns.intersection(missing.columns)]],
                                ignore_index=True)
    report = dict(result.report) | {"moves": result.moves.to_dict("records")}
    return commit(ctx, assignments, result.branches, report, policy, marker=marker,
                  parent_id=parent_id, kind="rebalance", key_id=key_id, parent_assignments=current, job_id=job_id)


def _save_hook(stage: str) -> None:
    """A seam for tests that inject a crash in the middle of saving a plan."""


def check_before_save(s: Any, assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy,
                      report: dict[str, Any]) -> dict[str, Any]:
    """The one place a plan is validated before it is stored (every job's plan passes here):
    :func:`geoalloc.rules.check_plan` against the members as stored now, in the saving
    transaction. A plan that breaks a rule no path may break fails the job (nothing is saved);
    the report carries the plan's violations as they are after any replayed relocations."""
    from geoalloc.rules import PlanInvalidError, validated

    try:
        found = validated(members_frame(s), assignments, branches, policy, "the plan")
    except PlanInvalidError as exc:
        log.error("plan refused before saving: %s", exc)
        raise JobFailure("the computed plan breaks the branch rules (" + ", ".join(
            k for k, v in exc.violations.to_dict().items() if k not in ("total", "details") and v)
            + "); nothing was saved") from exc
    return dict(report) | {"violations": found}


def commit(ctx: ServiceContext, assignments: pd.DataFrame, branches: pd.DataFrame, report: dict[str, Any],
           policy: Policy, *, marker: int, parent_id: int | None, kind: str, key_id: str | None,
           parent_assignments: pd.DataFrame | None = None, job_id: str | None = None) -> int:
    """Save a computed plan as the newest, in one transaction, after replaying newer relocations;
    the job (if any) is marked succeeded with the plan's id in the same transaction."""
    with ctx.plan_lock, ctx.db.write() as s:
        newest = newest_plan(s)
        if newest is not None:
            lock_plan(s, newest.id)
        if s.scalar(select(func.count()).select_from(RelocationEvent).where(RelocationEvent.id > marker)):
            state = library.plan_state(assignments, branches, policy)
            n = replay(s, state, marker)
            precision = dict(zip(assignments["member_id"].astype(str), assignments["geo_precision"]))
            precision |= dict(s.execute(select(Member.member_id, Member.geo_precision)).all())
            assignments, branches = state.to_frames()
            assignments["geo_precision"] = assignments["member_id"].astype(str).map(precision).fillna("none")
            report = dict(report) | {"replayed_relocations": n}
        report = check_before_save(s, assignments, branches, policy, report)
        _save_hook("before_save")
        plan_id = save_plan(s, assignments, branches, report, policy.to_dict(), parent_id=parent_id, kind=kind,
                            key_id=key_id)
        _save_hook("after_plan_rows")
        _audit_assignments(s, plan_id, assignments, parent_assignments, kind, key_id)
        if job_id is not None:
            s.execute(update(Job).where(Job.id == job_id).values(
                status="succeeded", progress=1.0, message="plan saved", plan_id=plan_id, finished_at=utcnow()))
        _save_hook("after_audit")
    ctx.cache.invalidate()
    _save_hook("committed")
    return plan_id


def _audit_assignments(s: Any, plan_id: int, assignments: pd.DataFrame, parent: pd.DataFrame | None, kind: str,
                       key_id: str | None) -> None:
    """One audit row per member of the new plan: branch before (parent plan) and after."""
    before: dict[str, str | None] = {}
    if parent is not None:
        before = {str(m): (str(b) if b else None) for m, b in zip(parent["member_id"], parent["branch_id"])}
    now = utcnow()
    rows = []
    for m, b in zip(assignments["member_id"].astype(str), assignments["branch_id"]):
        after = str(b) if isinstance(b, str) and b else None
        rows.append({"key_id": key_id, "action": kind, "entity": "assignment", "entity_id": m, "plan_id": plan_id,
                     "before": {"branch_id": before.get(m)}, "after": {"branch_id": after}, "at": now})
    for start in range(0, len(rows), 2000):
        s.execute(insert(AuditEntry), rows[start:start + 2000])

