"""Many concurrent relocations into one area while a rebalance runs, over real sockets.

Two app instances (two processes' worth of caches and locks) serve the same database, so the
database's own locking (BEGIN IMMEDIATE / SELECT ... FOR UPDATE) and the cache's version check
are what keep the plan consistent, not just the in-process lock. Afterwards: every branch of
every plan is within its limits, no relocation was lost (not even by the rebalance that was
computed from an older snapshot), and the audit log accounts for every assignment.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from _api_support import BACKENDS, LiveServer, Service, seeded_service, wait_job
from sqlalchemy import func, select

from api.app import close_app, create_app
from api.settings import Settings
from geoalloc.rules import Policy
from geoalloc.store.models import (
    Assignment,
    AuditEntry,
    Branch,
    Member,
    Plan,
    RelocationEvent,
)
from geoalloc.store.plans import branch_sizes, newest_plan

N_RELOCATIONS = 200
CLIENTS = 32


@pytest.fixture(scope="module", params=BACKENDS)
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with seeded_service(request.param, tmp_path_factory.mktemp(f"conc-{request.param}")) as service:
        yield service


N_BULK = 60


def _targets(svc: Service) -> tuple[list[str], list[tuple[float, float]]]:
    """260 assigned members (one per family) from every district, all moving next to the fullest branch
    of 南山区 (the first 200 one call each, the last 60 in one POST /relocations)."""
    with svc.ctx.db.read() as s:
        site = s.execute(select(Branch.lon, Branch.lat).where(Branch.plan_id == svc.plan_id, Branch.district_zh == "南山区")
                         .order_by(Branch.size.desc()).limit(1)).one()
        rows = s.execute(select(Assignment.member_id, Member.group_id).join(Member, Member.member_id == Assignment.member_id)
                         .where(Assignment.plan_id == svc.plan_id, Assignment.branch_id.is_not(None))
                         .order_by(Assignment.member_id)).all()
    # one member per family: a family shares a home, so two of them moved apart would be one move
    first_of_unit = {}
    for m, g in rows:
        first_of_unit.setdefault(g or m, m)
    ids = sorted(first_of_unit.values())
    rng = np.random.default_rng(7)
    chosen = [str(m) for m in rng.choice(ids, size=N_RELOCATIONS + N_BULK, replace=False)]
    points = [(round(site[0] + float(dx), 6), round(site[1] + float(dy), 6))
              for dx, dy in rng.uniform(-0.002, 0.002, size=(N_RELOCATIONS + N_BULK, 2))]
    return chosen, points


def test_concurrent_relocations_and_a_rebalance(svc: Service) -> None:
    members, points = _targets(svc)
    second = create_app(Settings(database_url=svc.url, job_workers=1, init_db=False))
    admin = svc.h("admin")
    results: list[tuple[int, dict[str, Any]]] = [(0, {})] * N_RELOCATIONS
    rebalance_job: dict[str, Any] = {}
    bulk_answer: dict[str, Any] = {}
    started = threading.Event()
    try:
        with LiveServer(svc.app) as one, LiveServer(second) as two, \
                httpx.Client(timeout=60, limits=httpx.Limits(max_connections=CLIENTS)) as http:

            def relocate(k: int) -> None:
                base = (one if (k // 25) % 2 else two).base  # switch servers every 25 calls
                r = http.post(f"{base}/members/{members[k]}/relocate", headers=admin,
                              json={"lon": points[k][0], "lat": points[k][1]})
                results[k] = (r.status_code, r.json())
                if k == 20:
                    started.set()

            def rebalance() -> None:
                started.wait(30)
                r = http.post(f"{one.base}/plans/{svc.plan_id}/rebalance", headers=admin, json={})
                assert r.status_code == 202, r.text
                rebalance_job.update(wait_job(http_client(http, one.base), r.json()["job_id"], admin, timeout=90))

            def relocate_many() -> None:
                started.wait(30)
                items = [{"member_id": m, "lon": p[0], "lat": p[1]}
                         for m, p in zip(members[N_RELOCATIONS:], points[N_RELOCATIONS:])]
                r = http.post(f"{two.base}/relocations", headers=admin, json={"items": items})
                assert r.status_code == 200, r.text
                bulk_answer.update(r.json())

            with ThreadPoolExecutor(CLIENTS) as pool:
                futures = [pool.submit(rebalance), pool.submit(relocate_many)]
                futures += [pool.submit(relocate, k) for k in range(N_RELOCATIONS)]
                for f in futures:
                    f.result()
    finally:
        close_app(second)

    bad = [(members[k], code, body) for k, (code, body) in enumerate(results) if code != 200]
    assert not bad, bad[:3]
    assert bulk_answer["applied"] == N_BULK, [a for a in bulk_answer["items"] if a["status"] != 200][:3]
    results += [(a["status"], a["result"]) for a in bulk_answer["items"]]
    assert rebalance_job["status"] == "succeeded", rebalance_job

    with svc.ctx.db.read() as s:
        newest = newest_plan(s)
        assert newest is not None and newest.id == rebalance_job["plan_id"]
        # 1. limits hold in every plan (the one relocated into, and the rebalanced one)
        for plan in s.scalars(select(Plan)).all():
            policy = Policy.from_dict(plan.policy)
            sizes = branch_sizes(s, plan.id)
            over = {b: n for b, n in sizes.items() if not policy.min_size <= n <= policy.max_size}
            assert not over, f"plan {plan.id}: branches outside {policy.min_size}..{policy.max_size}: {over}"
            stored = dict(s.execute(select(Branch.branch_id, Branch.size).where(Branch.plan_id == plan.id)).all())
            assert {b: n for b, n in stored.items() if n} == sizes, f"plan {plan.id}: branch rows disagree with assignments"
        # 2. no update lost: every member is where their relocation put them, in the member table and the newest plan
        rows = {m: (lon, lat, b) for m, lon, lat, b in s.execute(
            select(Assignment.member_id, Assignment.lon, Assignment.lat, Assignment.branch_id)
            .where(Assignment.plan_id == newest.id, Assignment.member_id.in_(members))).all()}
        for m, (lon, lat) in zip(members, points):
            mem = s.get(Member, m)
            assert math.isclose(mem.lon, lon, abs_tol=1e-9) and math.isclose(mem.lat, lat, abs_tol=1e-9), m
            alon, alat, branch = rows[m]
            assert math.isclose(alon, lon, abs_tol=1e-5) and math.isclose(alat, lat, abs_tol=1e-5), (m, alon, lon)
            if mem.group_id:  # the family moved with them, in the member table and in the plan
                for kin in s.scalars(select(Member).where(Member.group_id == mem.group_id,
                                                          Member.status == "active")).all():
                    assert math.isclose(kin.lon, lon, abs_tol=1e-9) and math.isclose(kin.lat, lat, abs_tol=1e-9), kin
                    k_branch = s.scalar(select(Assignment.branch_id).where(Assignment.plan_id == newest.id,
                                                                          Assignment.member_id == kin.member_id))
                    assert k_branch == branch, (kin.member_id, k_branch, branch)
            assert branch is not None and branch.startswith("南山区"), (m, branch)
        # 3. one relocation event per call, and one audit row per branch change each call reported
        assert s.scalar(select(func.count()).select_from(RelocationEvent)) == N_RELOCATIONS + N_BULK
        reported = sum(len(body["changes"]) for _, body in results)
        audited = s.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "relocate",
                                                                           AuditEntry.entity == "assignment"))
        assert audited == reported
        # 4. the audit log accounts for every assignment of every plan: replaying it gives the stored plan
        for plan in s.scalars(select(Plan)).all():
            last: dict[str, str | None] = {}
            for mid, after in s.execute(select(AuditEntry.entity_id, AuditEntry.after)
                                        .where(AuditEntry.entity == "assignment", AuditEntry.plan_id == plan.id)
                                        .order_by(AuditEntry.id)).all():
                last[mid] = after["branch_id"]
            stored_branch = dict(s.execute(select(Assignment.member_id, Assignment.branch_id)
                                           .where(Assignment.plan_id == plan.id)).all())
            assert last == stored_branch, f"plan {plan.id}: audit log and assignments disagree"


def http_client(http: httpx.Client, base: str) -> Any:
    """Adapt an httpx client with a base URL to ``wait_job``'s ``client.get(path, headers=...)``."""

    class _Prefixed:
        def get(self, path: str, headers: dict[str, str]) -> httpx.Response:
            return http.get(base + path, headers=headers)

    return _Prefixed()
