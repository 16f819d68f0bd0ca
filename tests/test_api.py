"""The service end to end through HTTP, on SQLite and on PostgreSQL + PostGIS.

Every test here runs once per backend (see ``tests/_api_support.py``). A module-scoped service
is seeded with a 600-member synthetic roster (imported through ``POST /members/import``) and a
plan (computed once per session with the library, committed through the service's own save).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from _api_support import BACKENDS, POLICY, Service, seeded_service, wait_job
from sqlalchemy import func, select, text

from api import library
from api.routes.plans import map_frames_for
from api.services import jobs as jobs_module
from geoalloc.rules import Policy
from geoalloc.store.keys import Principal
from geoalloc.store.models import (
    Assignment,
    AuditEntry,
    Job,
    Member,
    Plan,
    RelocationEvent,
)
from geoalloc.store.plans import branch_sizes, newest_plan

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=BACKENDS)
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with seeded_service(request.param, tmp_path_factory.mktemp(request.param)) as service:
        yield service


# --- import ------------------------------------------------------------------------------------


def test_import_report_names_row_field_and_reason(svc: Service) -> None:
    csv = (
        "member_id,name,address,lon,lat,district_zh,full_member,status\n"
        "N1,甲,,113.93,22.53,南山区,1,active\n"          # valid, coordinates
        "N2,乙,,abc,22.53,,1,active\n"                    # lon not a number
        "N1,丙,,113.94,22.54,,1,active\n"                 # duplicate id
        "N3,丁,,,,,1,active\n"                            # neither address nor point
        "N4,戊,,113.95,22.55,,1,retired\n"                # unknown status
        "N5,己,南山区粤海街道科技园社区科苑路15号,,,,0,active\n"  # valid, geocoded
    ).encode()
    r = svc.client.post("/members/import", files={"file": ("new.csv", csv, "text/csv")}, headers=svc.h("admin"))
    assert r.status_code == 200, r.text
    rep = r.json()
    assert rep["created"] == 2 and rep["summary"]["rejected"] == 4
    rejects = {(x["row"], x["field"]) for x in rep["rejects"]}
    assert rejects == {(3, "lon"), (4, "member_id"), (5, "address"), (6, "status")}
    assert all(x["reason"] for x in rep["rejects"])
    n5 = svc.client.get("/members/N5", headers=svc.h("admin")).json()
    assert n5["district_zh"] == "南山区" and n5["lon"] is not None and n5["full_member"] is False
    assert len(n5["addresses"]) == 1 and n5["addresses"][0]["source"] == "import"


def test_import_xlsx_and_unreadable_files(svc: Service) -> None:
    buf = io.BytesIO()
    pd.DataFrame([{"member_id": "X1", "lon": 114.06, "lat": 22.54, "district_zh": "福田区"}]).to_excel(buf, index=False)
    r = svc.client.post("/members/import", headers=svc.h("admin"),
                        files={"file": ("m.xlsx", buf.getvalue(), "application/vnd.ms-excel")})
    assert r.status_code == 200 and r.json()["summary"]["valid"] == 1, r.text
    r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("m.csv", b"name\nx\n", "text/csv")})
    assert r.status_code == 400 and r.headers["content-type"].startswith(PROBLEM)
    assert "member_id" in r.json()["detail"]
    r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("m.xlsx", b"not excel", "x")})
    assert r.status_code == 400 and r.json()["status"] == 400


# --- authorisation matrix ------------------------------------------------------------------------

ROLES = ["none", "garbage", "revoked", "viewer", "planner_ns", "planner_ft", "planner_city", "admin"]


def _matrix(svc: Service) -> list[tuple[str, str, dict[str, Any], dict[str, int]]]:
    """(method, path, request kwargs, expected status by role) for every endpoint."""
    ns, pid = svc.member_ns, svc.plan_id
    unauth = {"none": 401, "garbage": 401, "revoked": 401}
    everyone = unauth | {r: 200 for r in ("viewer", "planner_ns", "planner_ft", "planner_city", "admin")}
    member_read = unauth | {"viewer": 403, "planner_ns": 200, "planner_ft": 404, "planner_city": 200, "admin": 200}
    admin_only = unauth | {"viewer": 403, "planner_ns": 403, "planner_ft": 403, "planner_city": 403, "admin": 200}
    bad_policy = {"min_size": 10, "max_size": 5}  # schema-valid, rejected by Policy: nothing is started
    city_wide = unauth | {"viewer": 403, "planner_ns": 403, "planner_ft": 403, "planner_city": 422, "admin": 422}
    one_row = b"member_id,lon,lat\nAUTH1,113.93,22.53\n"
    point = {"lon": 113.93, "lat": 22.53}
    return [
        ("GET", "/members", {}, member_read | {"planner_ft": 200}),
        ("GET", "/members?district=南山区", {}, member_read | {"planner_ft": 403}),
        ("GET", f"/members/{ns}", {}, member_read),
        ("PATCH", f"/members/{ns}", {"json": {"industry": "金融"}}, member_read),
        ("POST", f"/members/{ns}/relocate", {"json": point}, member_read),
        # answered per item: a planner of another district gets 200 with the item refused (404)
        ("POST", "/relocations", {"json": {"items": [{"member_id": ns} | point]}}, member_read | {"planner_ft": 200}),
        ("POST", "/members/import", {"files": {"file": ("a.csv", one_row, "text/csv")}}, admin_only),
        ("POST", "/plans", {"json": bad_policy}, city_wide),
        ("POST", f"/plans/{pid}/rebalance", {"json": {"policy": bad_policy}}, city_wide),
        ("GET", "/plans", {}, everyone),
        ("GET", f"/plans/{pid}", {}, everyone),
        ("GET", f"/plans/{pid}/branches", {}, everyone),
        ("GET", f"/plans/{pid}/report", {}, everyone),
        ("GET", f"/plans/{pid}/map", {}, everyone),
        ("GET", f"/plans/{pid}/diff/{pid}", {}, everyone),
        ("GET", "/jobs/seeded-job", {}, everyone),
        ("GET", "/keys", {}, admin_only),
        ("POST", "/keys", {"json": {"role": "viewer"}}, admin_only | {"admin": 201}),
        ("DELETE", "/keys/throwaway", {}, admin_only),
        ("GET", "/healthz", {}, {r: 200 for r in ROLES}),
        ("GET", "/readyz", {}, {r: 200 for r in ROLES}),
        ("GET", "/metrics", {}, {r: 200 for r in ROLES}),
    ]


def test_authorisation_matrix(svc: Service) -> None:
    with svc.ctx.db.write() as s:
        if s.get(Job, "seeded-job") is None:
            s.add(Job(id="seeded-job", kind="form", status="succeeded", progress=1.0, params={}, plan_id=svc.plan_id))
    from geoalloc.store.models import ApiKey

    with svc.ctx.db.write() as s:
        if s.get(ApiKey, "throwaway") is None:
            s.add(ApiKey(key_id="throwaway", secret_hash="x", role="viewer"))
    failures = []
    for method, path, kwargs, expected in _matrix(svc):
        assert set(expected) == set(ROLES), path
        for role in ROLES:
            r = svc.client.request(method, path, headers=svc.h(role), **kwargs)
            if r.status_code != expected[role]:
                failures.append(f"{method} {path} as {role}: {r.status_code} (expected {expected[role]}) {r.text[:120]}")
            if r.status_code >= 400:
                assert r.headers["content-type"].startswith(PROBLEM), (method, path, role)
            if r.status_code == 401:
                assert r.headers.get("www-authenticate") == "Bearer"
    assert not failures, "\n".join(failures)


def test_planner_sees_only_own_district(svc: Service) -> None:
    page = svc.client.get("/members?limit=1000", headers=svc.h("planner_ft")).json()
    assert page["total"] > 0 and {m["district_zh"] for m in page["items"]} == {"福田区"}
    everyone = svc.client.get("/members?limit=1", headers=svc.h("admin")).json()["total"]
    assert everyone > page["total"]
    r = svc.client.get(f"/members/{svc.member_ft}", headers=svc.h("planner_ns"))
    assert r.status_code == 404 and svc.member_ft in r.json()["detail"]
    report = svc.client.get(f"/plans/{svc.plan_id}/report", headers=svc.h("planner_ns")).json()
    with svc.ctx.db.read() as s:
        ns_ids = set(s.scalars(select(Member.member_id).where(Member.district_zh == "南山区")).all())
    listed = {u["member_id"] for u in report.get("unassigned", [])}
    assert listed <= ns_ids
    viewer_report = svc.client.get(f"/plans/{svc.plan_id}/report", headers=svc.h("viewer")).json()
    assert viewer_report.get("unassigned", []) == []
    assert viewer_report["n_branches"] == report["n_branches"]


def test_viewer_gets_no_personal_data(svc: Service) -> None:
    full = svc.client.get(f"/plans/{svc.plan_id}/branches", headers=svc.h("admin")).json()
    gen = svc.client.get(f"/plans/{svc.plan_id}/branches", headers=svc.h("viewer")).json()
    assert [b["size"] for b in full] == [b["size"] for b in gen]
    assert all(round(b["lon"], 2) == b["lon"] for b in gen)
    assert any(round(b["lon"], 2) != b["lon"] for b in full)
    ns_view = svc.client.get(f"/plans/{svc.plan_id}/branches", headers=svc.h("planner_ns")).json()
    for mine, exact in zip(ns_view, full):
        if mine["district_zh"] == "南山区":
            assert mine["lon"] == exact["lon"]
        else:
            assert mine["lon"] == round(exact["lon"], 2)
    diff = svc.client.get(f"/plans/{svc.plan_id}/diff/{svc.plan_id}", headers=svc.h("viewer")).json()
    assert diff["moves"] == []
    with svc.ctx.db.read() as s:
        from geoalloc.store.plans import plan_frames

        a, b = plan_frames(s, svc.plan_id)
        report = dict(newest_plan(s).report)
    viewer = Principal("v", "viewer", None)
    va, vb, vrep = map_frames_for(viewer, a, b, report, 2)
    assert not set(va["member_id"]) & set(a["member_id"])
    sites = set(zip(vb["lon"], vb["lat"]))
    assert set(zip(va["lon"], va["lat"])) <= sites
    assert len(va) == int((a["branch_id"] != "").sum())
    assert "unassigned" not in vrep or vrep["unassigned"] == []
    pa, pb, _ = map_frames_for(Principal("p", "planner", "南山区"), a, b, report, 2)
    assert set(pa["district_zh"]) == {"南山区"} and set(pb["district_zh"]) == {"南山区"}
    html = svc.client.get(f"/plans/{svc.plan_id}/map", headers=svc.h("viewer"))
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert svc.member_ns not in html.text


# --- relocation, history, idempotency -----------------------------------------------------------


def test_relocate_by_address_point_and_out_of_city(svc: Service) -> None:
    mid = svc.member_ns
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("planner_ns"),
                        json={"address": "广东省深圳市南山区粤海街道科技园社区科苑路15号"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["plan_id"] == svc.plan_id and out["to_branch"] and out["reason"]
    assert out["geo_status"] in ("ok", "approximate")
    # A GCJ-02 point is converted to WGS-84 before it is stored.
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("planner_ns"),
                        json={"lon": 113.9345, "lat": 22.5400, "datum": "gcj02"})
    assert r.status_code == 200
    m = svc.client.get(f"/members/{mid}", headers=svc.h("admin")).json()
    wlon, wlat = library.to_wgs84(113.9345, 22.5400, "gcj02")
    assert math.isclose(m["lon"], wlon, abs_tol=1e-6) and math.isclose(m["lat"], wlat, abs_tol=1e-6)
    assert m["branch_id"] == r.json()["to_branch"]
    assert len(m["addresses"]) >= 3 and sum(a["valid_to"] is None for a in m["addresses"]) == 1
    # Out of the city: transfer_out, removed from the branch.
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("planner_ns"), json={"lon": 116.4, "lat": 39.9})
    assert r.status_code == 200 and r.json()["status"] == "transfer_out" and r.json()["to_branch"] is None
    m = svc.client.get(f"/members/{mid}", headers=svc.h("admin")).json()
    assert m["status"] == "transfer_out" and m["branch_id"] is None
    # Back again: active, in a branch.
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("planner_ns"), json={"lon": 113.93, "lat": 22.53})
    assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["to_branch"]


def test_relocation_sees_a_change_another_connection_committed(svc: Service) -> None:
    """The relocation writer remembers the rows it wrote; a change committed elsewhere in between
    (a PATCH through its own connection, or a direct SQL update) must still be what it reads."""
    mid = svc.member_ft
    h = svc.h("admin")
    assert svc.client.post(f"/members/{mid}/relocate", headers=h, json={"lon": 114.06, "lat": 22.54}).status_code == 200
    assert svc.client.post(f"/members/{mid}/relocate", headers=h, json={"lon": 114.055, "lat": 22.545}).status_code == 200
    v1 = svc.client.get(f"/members/{mid}", headers=h).json()["version"]
    assert svc.client.patch(f"/members/{mid}", headers=h, json={"status": "lost_contact"}).status_code == 200
    r = svc.client.post(f"/members/{mid}/relocate", headers=h, json={"lon": 114.05, "lat": 22.55})
    assert r.status_code == 200
    assert r.json()["status"] == "lost_contact" and r.json()["to_branch"] is None  # not re-placed as active
    m = svc.client.get(f"/members/{mid}", headers=h).json()
    assert m["version"] == v1 + 2 and m["status"] == "lost_contact"
    with svc.ctx.db.engine.begin() as c:  # outside the service altogether
        c.execute(text("UPDATE members SET status = 'active', version = version + 5 WHERE member_id = :m"), {"m": mid})
    r = svc.client.post(f"/members/{mid}/relocate", headers=h, json={"lon": 114.06, "lat": 22.54})
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert svc.client.get(f"/members/{mid}", headers=h).json()["version"] == v1 + 8


def test_relocate_rejects_bad_bodies(svc: Service) -> None:
    mid = svc.member_ns
    for body in ({}, {"lon": 113.9}, {"address": "x", "lon": 1, "lat": 2}, {"lon": 500, "lat": 22},
                 {"lon": 113.9, "lat": 22.5, "datum": "mars"}, {"address": ""}, {"unknown": 1}):
        r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("admin"), json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith(PROBLEM) and r.json()["errors"]
    r = svc.client.post("/members/NOPE/relocate", headers=svc.h("admin"), json={"lon": 113.9, "lat": 22.5})
    assert r.status_code == 404


def test_idempotency_key_relocates_once(svc: Service) -> None:
    mid = svc.member_ns
    body = {"lon": 113.95, "lat": 22.52}
    with svc.ctx.db.read() as s:
        before = s.scalar(select(func.count()).select_from(RelocationEvent))
    h = svc.h("planner_ns") | {"Idempotency-Key": f"retry-{svc.backend}"}
    first = svc.client.post(f"/members/{mid}/relocate", headers=h, json=body)
    second = svc.client.post(f"/members/{mid}/relocate", headers=h, json=body)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    with svc.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(RelocationEvent)) == before + 1
    # Same key, another body: refused, nothing moves.
    r = svc.client.post(f"/members/{mid}/relocate", headers=h, json={"lon": 113.96, "lat": 22.53})
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["title"]
    # The same key from another API key is another request.
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("admin") | {"Idempotency-Key": f"retry-{svc.backend}"},
                        json={"lon": 113.96, "lat": 22.53})
    assert r.status_code == 200 and r.json()["event_id"] != first.json()["event_id"]


def test_failed_relocation_transaction_leaves_nothing(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relocation whose transaction fails half-way (the member row and address already written)
    is rolled back whole and answered 500; the writer's next transaction works and keeps the limits."""
    from api.services import relocations

    mid = svc.member_ns
    url = f"/members/{mid}/relocate"

    def footprint() -> tuple[Any, ...]:
        with svc.ctx.db.read() as s:
            m = s.get(Member, mid)
            return (m.lon, m.lat, m.version, s.scalar(select(func.count()).select_from(RelocationEvent)),
                    s.scalar(select(func.count()).select_from(AuditEntry)), newest_plan(s).state_version)

    svc.client.post(url, headers=svc.h("planner_ns"), json={"lon": 113.93, "lat": 22.53})  # caches the key
    before = footprint()
    real = relocations.apply_assignment_changes

    def broken(*args: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(relocations, "apply_assignment_changes", broken)
    r = svc.client.post(url, headers=svc.h("planner_ns"), json={"lon": 113.95, "lat": 22.55})
    assert r.status_code == 500 and r.headers["content-type"].startswith(PROBLEM)
    assert footprint() == before  # nothing of it committed
    monkeypatch.setattr(relocations, "apply_assignment_changes", real)
    r = svc.client.post(url, headers=svc.h("planner_ns"), json={"lon": 113.95, "lat": 22.55})
    assert r.status_code == 200, r.text
    after = footprint()
    assert (after[0], after[1]) == (113.95, 22.55) and after[2] == before[2] + 1 and after[3] == before[3] + 1
    with svc.ctx.db.read() as s:
        sizes = branch_sizes(s, newest_plan(s).id)
    assert all(POLICY.min_size <= n <= POLICY.max_size for n in sizes.values())


def test_relocation_waits_for_a_held_plan_and_a_locked_database(svc: Service) -> None:
    """A relocation waits while the plan is held (a plan being saved) or, on SQLite, while another
    connection holds the database's write lock, and is answered once both are free."""
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    url = f"/members/{svc.member_ns}/relocate"
    h = svc.h("planner_ns")
    svc.client.post(url, headers=h, json={"lon": 113.93, "lat": 22.53})  # caches the key
    with ThreadPoolExecutor(1) as pool:
        with svc.ctx.plan_lock:
            pending = pool.submit(svc.client.post, url, headers=h, json={"lon": 113.931, "lat": 22.531})
            time.sleep(0.5)
            assert not pending.done()  # waits for the plan
        assert pending.result(timeout=30).status_code == 200
        if svc.backend == "sqlite":
            other = sqlite3.connect(svc.url.removeprefix("sqlite:///"), isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            try:
                pending = pool.submit(svc.client.post, url, headers=h, json={"lon": 113.932, "lat": 22.532})
                time.sleep(0.5)
                assert not pending.done()  # waits for the database
            finally:
                other.rollback()
                other.close()
            r = pending.result(timeout=30)
            assert r.status_code == 200 and r.json()["member_id"] == svc.member_ns
    with svc.ctx.db.read() as s:
        m = s.get(Member, svc.member_ns)
        assert (m.lon, m.lat) == (113.932 if svc.backend == "sqlite" else 113.931,
                                  22.532 if svc.backend == "sqlite" else 22.531)


def test_plan_is_loaded_by_the_writer_thread(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the newest plan into memory takes a while: a relocation that needs it is written by the
    writer thread, never on the event loop that serves the other requests."""
    import threading

    from api.context import PlanCache

    loads: list[str] = []
    real = PlanCache.get

    def spy(self: PlanCache, conn: Any, plan_id: int, version: int, policy: dict[str, Any]) -> Any:
        if not self.holds(plan_id, version):
            loads.append(threading.current_thread().name)
        return real(self, conn, plan_id, version, policy)

    monkeypatch.setattr(PlanCache, "get", spy)
    url = f"/members/{svc.member_ns}/relocate"
    svc.client.post(url, headers=svc.h("planner_ns"), json={"lon": 113.93, "lat": 22.53})  # caches the key
    svc.ctx.cache.invalidate()
    loads.clear()
    r = svc.client.post(url, headers=svc.h("planner_ns"), json={"lon": 113.931, "lat": 22.531})
    assert r.status_code == 200 and loads == ["geoalloc-relocations"]


def test_patch_status_leaves_and_rejoins_the_plan(svc: Service) -> None:
    mid = svc.member_ft
    r = svc.client.patch(f"/members/{mid}", headers=svc.h("planner_ft"), json={"status": "lost_contact"})
    assert r.status_code == 200 and r.json()["status"] == "lost_contact" and r.json()["branch_id"] is None
    r = svc.client.patch(f"/members/{mid}", headers=svc.h("planner_ft"), json={"status": "active"})
    assert r.status_code == 200 and r.json()["branch_id"]
    r = svc.client.patch(f"/members/{mid}", headers=svc.h("planner_ft"), json={"lon": 1})
    assert r.status_code == 422
    with svc.ctx.db.read() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.entity == "member", AuditEntry.entity_id == mid,
                                                  AuditEntry.action == "update")).all()
        assert [(a.before["status"], a.after["status"]) for a in rows if "status" in a.after][-2:] == [
            ("active", "lost_contact"), ("lost_contact", "active")]


# --- plans as background jobs ----------------------------------------------------------------------


def test_form_and_rebalance_jobs_make_new_versions(svc: Service) -> None:
    r = svc.client.post("/plans", headers=svc.h("planner_city"), json=POLICY.to_dict() | {"extra": None})
    assert r.status_code == 422  # unknown field 'extra': the schema is strict
    body = {k: v for k, v in POLICY.to_dict().items() if k != "extra"}
    r = svc.client.post("/plans", headers=svc.h("planner_city"), json=body)
    assert r.status_code == 202 and r.headers["location"] == f"/jobs/{r.json()['job_id']}"
    job = wait_job(svc.client, r.json()["job_id"], svc.h("viewer"))
    assert job["status"] == "succeeded", job
    new_id = job["plan_id"]
    plan = svc.client.get(f"/plans/{new_id}", headers=svc.h("viewer")).json()
    assert plan["newest"] and plan["parent_id"] is None and plan["policy"]["max_size"] == POLICY.max_size
    old = svc.client.get(f"/plans/{svc.plan_id}", headers=svc.h("viewer")).json()
    assert not old["newest"] and old["n_branches"] > 0  # the old plan is kept, not overwritten
    r = svc.client.post(f"/plans/{new_id}/rebalance", headers=svc.h("admin"), json={"max_moves": 5})
    job = wait_job(svc.client, r.json()["job_id"], svc.h("admin"))
    assert job["status"] == "succeeded", job
    reb = svc.client.get(f"/plans/{job['plan_id']}", headers=svc.h("admin")).json()
    assert reb["parent_id"] == new_id and reb["kind"] == "rebalance" and reb["newest"]
    diff = svc.client.get(f"/plans/{new_id}/diff/{job['plan_id']}", headers=svc.h("admin")).json()
    assert diff["moved"] <= 5 + 10  # moves within budget (members re-placed after relocations may add)
    _assert_limits(svc, job["plan_id"])
    r = svc.client.post("/plans/999999/rebalance", headers=svc.h("admin"), json={})
    assert r.status_code == 404


def _assert_limits(svc: Service, plan_id: int) -> None:
    with svc.ctx.db.read() as s:
        sizes = branch_sizes(s, plan_id)
        policy = Policy.from_dict(s.get(Plan, plan_id).policy)
        from geoalloc.store.models import Branch

        stored = dict(s.execute(select(Branch.branch_id, Branch.size).where(Branch.plan_id == plan_id)).all())
    assert sizes and all(policy.min_size <= n <= policy.max_size for n in sizes.values()), sizes
    assert {b: n for b, n in stored.items() if n} == sizes


def test_crash_mid_save_keeps_the_previous_plan(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    with svc.ctx.db.read() as s:
        before = newest_plan(s)
        n_assign = s.scalar(select(func.count()).select_from(Assignment))
        n_plans = s.scalar(select(func.count()).select_from(Plan))

    def boom(stage: str) -> None:
        if stage == "after_audit":  # everything is written, but not yet committed
            raise RuntimeError("power cut")

    monkeypatch.setattr(jobs_module, "_save_hook", boom)
    r = svc.client.post(f"/plans/{before.id}/rebalance", headers=svc.h("admin"), json={"move_penalty_m": 0})
    job = wait_job(svc.client, r.json()["job_id"], svc.h("admin"))
    assert job["status"] == "failed" and job["plan_id"] is None
    assert "power cut" not in job["error"] and job["job_id"] in job["error"]  # the details are in the log
    with svc.ctx.db.read() as s:
        assert newest_plan(s).id == before.id
        assert s.scalar(select(func.count()).select_from(Assignment)) == n_assign
        assert s.scalar(select(func.count()).select_from(Plan)) == n_plans
    # and relocations still work against the previous plan
    r = svc.client.post(f"/members/{svc.member_ns}/relocate", headers=svc.h("admin"), json={"lon": 113.94, "lat": 22.53})
    assert r.status_code == 200 and r.json()["plan_id"] == before.id


def test_keys_over_http(svc: Service) -> None:
    r = svc.client.post("/keys", headers=svc.h("admin"), json={"role": "planner", "district_zh": "罗湖区"})
    assert r.status_code == 201
    key = r.json()["key"]
    assert svc.client.get("/members", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = svc.client.get("/keys", headers=svc.h("admin")).json()
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    assert svc.client.delete(f"/keys/{r.json()['key_id']}", headers=svc.h("admin")).status_code == 200
    assert svc.client.get("/members", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    bad = svc.client.post("/keys", headers=svc.h("admin"), json={"role": "planner", "district_zh": "北京"})
    assert bad.status_code == 422 and "unknown district" in bad.json()["detail"]
    assert svc.client.delete("/keys/nope", headers=svc.h("admin")).status_code == 404


def test_health_readiness_and_metrics(svc: Service) -> None:
    assert svc.client.get("/healthz").json()["status"] == "ok"
    ready = svc.client.get("/readyz").json()
    assert ready["status"] == "ok" and ready["checks"]["database"] == "ok"
    text = svc.client.get("/metrics").text
    assert "geoalloc_http_requests_total" in text and "geoalloc_relocations_total" in text
    assert svc.client.get("/openapi.json").json()["paths"]["/members/{member_id}/relocate"]["post"]


def test_jobs_survive_as_rows_and_interrupted_ones_are_marked(svc: Service) -> None:
    from api.app import close_app, create_app
    from api.services.jobs import _me
    from api.settings import Settings

    with svc.ctx.db.write() as s:
        s.add(Job(id="dead-owner", kind="form", status="running", params={"_owner": "nohost-here:1:1"}))
        s.add(Job(id="dead-local", kind="form", status="queued", params={"_owner": _me().rsplit(":", 1)[0] + ":0"}))
        s.add(Job(id="live-owner", kind="form", status="running", params={"_owner": _me()}))
    restarted = create_app(Settings(database_url=svc.url, init_db=False))
    try:
        with svc.ctx.db.read() as s:
            assert s.get(Job, "dead-local").status == "failed" and "interrupted" in s.get(Job, "dead-local").error
            assert s.get(Job, "dead-owner").status == "running"  # another host: not ours to judge
            assert s.get(Job, "live-owner").status == "running"  # this process still runs it
    finally:
        close_app(restarted)
        with svc.ctx.db.write() as s:
            for j in ("dead-owner", "dead-local", "live-owner"):
                s.delete(s.get(Job, j))
