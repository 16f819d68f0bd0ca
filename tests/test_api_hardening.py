"""The service probed as an attacker and a careless client would (issue 19's findings, one test each).

SQLite, one seeded service for the module (see ``tests/_api_support.py``). Requests that must be
refused before their body is read are sent straight to the ASGI app with a ``receive`` that
counts the bytes it hands out, so "not read" is measured, not assumed.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from _api_support import POLICY, Service, seeded_service, wait_job
from sqlalchemy import func, select

from api.services import jobs as jobs_module
from geoalloc.store.models import Assignment, Member, Plan, RelocationEvent
from geoalloc.store.plans import newest_plan

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with seeded_service("sqlite", tmp_path_factory.mktemp("hardening")) as service:
        yield service


# --- 1. bodies are bounded, and keyless requests refused, before the body is read ----------------------


def _asgi(app: Any, method: str, path: str, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, int, dict[str, str]]:
    """Call the ASGI app directly: (status, body bytes the app pulled, response headers)."""
    pulled = [0]
    queue = list(chunks)
    out: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(3600)  # the client sends nothing more; the app must not wait for it
        body = queue.pop(0)
        pulled[0] += len(body)
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "", "scheme": "http",
             "server": ("testserver", 80), "client": ("127.0.0.1", 1234),
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever loop the test process runs
        pool.submit(asyncio.run, asyncio.wait_for(app(scope, receive, send), timeout=30)).result()
    return out["status"], pulled[0], out["headers"]


def test_keyless_and_oversized_bodies_are_refused_unread(svc: Service) -> None:
    mb = b"x" * 2**20
    path = f"/members/{svc.member_ns}/relocate"
    json_200mb = {"content-type": "application/json", "content-length": str(200 * 2**20)}
    # no key: 401 from the headers, not one byte of the 200 MB read, and the connection is closed
    status, pulled, headers = _asgi(svc.app, "POST", path, json_200mb, [mb] * 3)
    assert (status, pulled) == (401, 0) and headers["connection"] == "close"
    assert headers["www-authenticate"] == "Bearer"
    status, pulled, _ = _asgi(svc.app, "POST", "/plans", json_200mb, [mb] * 3)
    assert (status, pulled) == (401, 0)
    multipart = {"content-type": "multipart/form-data; boundary=b", "content-length": str(200 * 2**20)}
    status, pulled, _ = _asgi(svc.app, "POST", "/members/import", multipart, [mb] * 3)
    assert (status, pulled) == (401, 0)
    status, pulled, _ = _asgi(svc.app, "POST", path, json_200mb | {"authorization": "Bearer gak_nothere_x"}, [mb])
    assert (status, pulled) == (401, 0)  # an unknown key is as good as none
    # a valid key with a declared body over the limit: 413 before reading
    admin = {"authorization": f"Bearer {svc.keys['admin']}"}
    status, pulled, headers = _asgi(svc.app, "POST", path, json_200mb | admin, [mb] * 3)
    assert (status, pulled) == (413, 0) and headers["content-type"].startswith(PROBLEM)
    status, pulled, _ = _asgi(svc.app, "POST", "/members/import", multipart | admin, [mb] * 3)
    assert (status, pulled) == (413, 0)
    # a chunked body (no Content-Length) is counted as it streams: refused once past the 64 KB limit
    chunked = {"content-type": "application/json", "transfer-encoding": "chunked"} | admin
    status, pulled, _ = _asgi(svc.app, "POST", path, chunked, [b" " * 16384] * 100)
    assert status == 413 and 64 * 1024 < pulled <= 64 * 1024 + 16384
    upload = {"content-type": "multipart/form-data; boundary=b", "transfer-encoding": "chunked"} | admin
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.csv"\r\n\r\n'
    status, pulled, _ = _asgi(svc.app, "POST", "/members/import", upload, [head] + [mb] * 30)
    limit = svc.ctx.settings.max_upload_mb * 2**20 + 64 * 2**10
    assert status == 413 and limit < pulled <= limit + 2**20  # the spooled upload stops at the limit
    # what is within the limits still works
    r = svc.client.post(path, headers=svc.h("admin"), json={"lon": 113.93, "lat": 22.53})
    assert r.status_code == 200, r.text


# --- 2. an address the geocoder cannot place --------------------------------------------------------------


def test_unplaceable_address_is_422_saying_why(svc: Service) -> None:
    mid = svc.member_ns
    before = svc.client.get(f"/members/{mid}", headers=svc.h("admin")).json()
    for address, why in (("hello world", "could not be placed"), ("\u200b\u200b", "invisible character"),
                         ("\x00\x00", "control"), ("   ", "could not be placed")):
        r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("admin"), json={"address": address})
        assert r.status_code == 422 and r.headers["content-type"].startswith(PROBLEM), (address, r.text)
        assert why in json.dumps(r.json(), ensure_ascii=False), (address, r.json())
    after = svc.client.get(f"/members/{mid}", headers=svc.h("admin")).json()
    assert after == before  # nothing stored, nobody moved


# --- 3. an .xlsx is bounded by its unpacked size and rows; imports by rows --------------------------------


def _xlsx(rows: int) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame({"member_id": [f"Z{k}" for k in range(rows)], "lon": 114.06, "lat": 22.54,
                  "name": "x" * 40}).to_excel(buf, index=False)
    return buf.getvalue()


def test_xlsx_unpacked_size_and_row_caps(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = svc.ctx
    data = _xlsx(6000)
    unpacked = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert unpacked > 2**20 > len(data)  # compresses well, as a bomb does
    monkeypatch.setattr(ctx, "settings", ctx.settings.model_copy(update={"max_unpacked_mb": 1}))
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    with svc.ctx.db.read() as s:
        members_before = s.scalar(select(func.count()).select_from(Member))
    r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("bomb.xlsx", data, xlsx)})
    assert r.status_code == 413 and "unpacks to" in r.json()["detail"], r.text
    monkeypatch.setattr(ctx, "settings", ctx.settings.model_copy(update={"max_unpacked_mb": 64, "max_import_rows": 5999}))
    r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("rows.xlsx", data, xlsx)})
    assert r.status_code == 413 and "5,999 rows" in r.json()["detail"], r.text
    csv = "member_id,lon,lat\n" + "".join(f"C{k},114.06,22.54\n" for k in range(6000))
    r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("rows.csv", csv.encode(), "text/csv")})
    assert r.status_code == 413 and "5,999 rows" in r.json()["detail"]
    with svc.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Member)) == members_before
    r = svc.client.post("/members/import", headers=svc.h("admin"),
                        files={"file": ("ok.xlsx", _xlsx(5), xlsx)})  # within every limit
    assert r.status_code == 200 and r.json()["created"] == 5, r.text


# --- 4. a district planner's relocation stays in their district ---------------------------------------------


def test_district_planner_cannot_move_a_member_into_another_district(svc: Service) -> None:
    mid = svc.member_ns
    with svc.ctx.db.read() as s:
        events = s.scalar(select(func.count()).select_from(RelocationEvent))
        before = s.get(Member, mid).district_zh
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("planner_ns"), json={"lon": 114.0579, "lat": 22.5431})
    assert r.status_code == 403 and "福田区" in r.json()["detail"], r.text
    assert svc.member_ft not in r.text
    with svc.ctx.db.read() as s:
        assert s.scalar(select(func.count()).select_from(RelocationEvent)) == events
        assert s.get(Member, mid).district_zh == before
    # within the district: every member the answer names is the planner's own
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("planner_ns"), json={"lon": 113.935, "lat": 22.52})
    assert r.status_code == 200
    named = {c["member_id"] for c in r.json()["changes"]} | {mid}
    with svc.ctx.db.read() as s:
        districts = set(s.scalars(select(Member.district_zh).where(Member.member_id.in_(named))).all())
    assert districts == {"南山区"}
    # a city-wide planner may make the cross-district move
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("planner_city"), json={"lon": 114.0579, "lat": 22.5431})
    assert r.status_code == 200 and r.json()["to_branch"].startswith("福田区")
    r = svc.client.post(f"/members/{mid}/relocate", headers=svc.h("admin"), json={"lon": 113.93, "lat": 22.53})
    assert r.status_code == 200


# --- 5. a failed job's error leaks nothing --------------------------------------------------------------


def test_failed_job_error_is_short_and_free_of_sql(svc: Service, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise sa.exc.OperationalError("INSERT INTO assignments (plan_id, member_id) VALUES (?, ?)",
                                      (7, svc.member_ns), Exception("database is locked"))

    monkeypatch.setattr(jobs_module.library, "allocate", broken)
    r = svc.client.post("/plans", headers=svc.h("admin"), json={"time_limit": 1})
    job = wait_job(svc.client, r.json()["job_id"], svc.h("viewer"))
    assert job["status"] == "failed" and job["plan_id"] is None
    error = job["error"]
    assert len(error) < 200 and job["job_id"] in error, error
    for leak in ("INSERT", "assignments", svc.member_ns, "?", svc.keys["admin"][:12]):
        assert leak not in error, (leak, error)
    assert svc.member_ns in caplog.text  # the details are in the log
    from geoalloc.solver.problem import Conflict, InfeasibleError

    told = jobs_module.client_error(InfeasibleError([Conflict("坪山区", "min_size", "12 members, fewer than 40")]), "j1")
    assert told.startswith("the rules cannot all be met") and "坪山区" in told  # aggregates only: fine to show


# --- 7. weight bounded by the branch maximum; 9. text fields alike on import and PATCH ---------------------


def test_import_refuses_heavy_rows_control_characters_and_long_text(svc: Service) -> None:
    long_name = "名" * 100_000
    csv = ("member_id,name,lon,lat,weight\n"
           "W1,甲,113.93,22.53,1000000\n"
           f"W2,乙,113.93,22.53,{POLICY.max_size + 1}\n"
           f"W3,丙,113.93,22.53,{POLICY.max_size}\n"
           "W4,a\x00b,113.93,22.53,1\n"
           f"W5,{long_name},113.93,22.53,1\n"
           "W6,\u202eevil,113.93,22.53,1\n")
    r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("w.csv", csv.encode(), "text/csv")})
    assert r.status_code == 200, r.text[:300]
    rep = r.json()
    got = {(x["row"], x["field"]) for x in rep["rejects"]}
    assert got == {(2, "weight"), (3, "weight"), (5, "name"), (6, "name"), (7, "name")}, rep["rejects"]
    assert rep["created"] == 1 and rep["summary"]["rejected"] == 5
    assert long_name not in r.text and "\x00" not in r.text
    # PATCH applies the same rule
    for name in ("a\x00b", "x" * 129, "\u200bhidden"):
        r = svc.client.patch(f"/members/{svc.member_ns}", headers=svc.h("admin"), json={"name": name})
        assert r.status_code == 422, name
    assert svc.client.patch(f"/members/{svc.member_ns}", headers=svc.h("admin"), json={"name": "x" * 128}).status_code == 200


def test_patch_cannot_activate_a_member_without_a_point(svc: Service) -> None:
    csv = "member_id,address,status\nNOPOINT1,hello world,lost_contact\n"
    r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("p.csv", csv.encode(), "text/csv")})
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    r = svc.client.patch("/members/NOPOINT1", headers=svc.h("admin"), json={"status": "active"})
    assert r.status_code == 422 and "relocate them first" in r.json()["detail"]
    m = svc.client.get("/members/NOPOINT1", headers=svc.h("admin")).json()
    assert m["status"] == "lost_contact" and m["lon"] is None
    r = svc.client.post("/members/NOPOINT1/relocate", headers=svc.h("admin"), json={"lon": 113.93, "lat": 22.53})
    assert r.status_code == 200 and r.json()["status"] == "lost_contact"
    assert svc.client.patch("/members/NOPOINT1", headers=svc.h("admin"), json={"status": "active"}).status_code == 200


def test_district_only_on_planner_keys(svc: Service) -> None:
    for role in ("admin", "viewer"):
        r = svc.client.post("/keys", headers=svc.h("admin"), json={"role": role, "district_zh": "南山区"})
        assert r.status_code == 422 and "planner keys only" in r.json()["detail"], r.text
    assert svc.client.post("/keys", headers=svc.h("admin"), json={"role": "planner", "district_zh": "南山区"}).status_code == 201


# --- 8. headers on every answer; a map without third-party scripts ------------------------------------------


def test_security_headers_everywhere_and_a_self_contained_map(svc: Service) -> None:
    answers = [svc.client.get("/healthz"), svc.client.get("/members"),  # 401
               svc.client.get(f"/members/{svc.member_ns}", headers=svc.h("admin")),
               svc.client.get("/members/NOPE", headers=svc.h("admin")),
               svc.client.get(f"/plans/{svc.plan_id}/branches", headers=svc.h("viewer")),
               svc.client.post(f"/members/{svc.member_ns}/relocate", headers=svc.h("admin"), json={"lon": 1}),
               svc.client.post("/relocations", headers=svc.h("admin"),
                               json={"items": [{"member_id": svc.member_ns, "lon": 113.93, "lat": 22.53}]})]
    for r in answers:
        assert r.headers["x-content-type-options"] == "nosniff", r.url
        assert r.headers["cache-control"] == "no-store", r.url
        assert r.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in r.headers["content-security-policy"]
    page = svc.client.get(f"/plans/{svc.plan_id}/map", headers=svc.h("planner_ns"))
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
    assert "http" not in script_src and "'unsafe-inline'" not in script_src and "'sha256-" in script_src
    assert "connect-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert not re.search(r"<script[^>]+src=", page.text) and not re.search(r"<link[^>]+href=[\"']https?:", page.text)
    assert "folium@main" not in page.text
    docs = svc.client.get("/docs")  # Swagger UI from the service itself, not a CDN
    assert docs.status_code == 200, docs.text
    assert set(re.findall(r'<script src="([^"]+)"', docs.text)) == {"/docs/assets/swagger-ui-bundle.js"}
    assert "cdn" not in docs.text and "script-src 'self' 'sha256-" in docs.headers["content-security-policy"]
    assert svc.client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert svc.client.get("/docs/assets/package.json").status_code == 404


# --- 9. storage trouble ---------------------------------------------------------------------------------------


def test_full_disk_is_507_and_nothing_half_written(svc: Service) -> None:
    engine = svc.ctx.db.engine
    with engine.connect() as c:
        pages = int(c.exec_driver_sql("PRAGMA page_count").scalar())

    @sa.event.listens_for(engine, "connect")
    def _tiny(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    engine.dispose()  # every connection from now on sees a full database
    svc.app.state.writer._drop_connection()
    try:
        rows = "member_id,name,lon,lat\n" + "".join(f"F{k},{'n' * 100},113.93,22.53\n" for k in range(3000))
        r = svc.client.post("/members/import", headers=svc.h("admin"), files={"file": ("f.csv", rows.encode(), "text/csv")})
        assert r.status_code == 507 and r.headers["content-type"].startswith(PROBLEM), r.text
        assert "INSERT" not in r.text and "full" in r.json()["detail"]
    finally:
        sa.event.remove(engine, "connect", _tiny)
        engine.dispose()
        svc.app.state.writer._drop_connection()
    with svc.ctx.db.read() as s:
        assert s.get(Member, "F0") is None


def test_read_only_database_stops_serve_with_a_sentence(svc: Service, tmp_path: Any) -> None:
    from api.app import create_app
    from api.cli_support import serve
    from api.settings import Settings
    from geoalloc.store.db import StorageUnavailable, init_db

    path = tmp_path / "ro.db"
    init_db(f"sqlite:///{path}")
    ro = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(StorageUnavailable, match="cannot be written"):
        create_app(Settings(database_url=ro))
    with pytest.raises(SystemExit) as stop:
        serve(db_url=ro)
    assert str(stop.value).startswith("geoalloc serve: the database") and "Traceback" not in str(stop.value)
    with pytest.raises(SystemExit, match="unreachable"):
        serve(db_url="postgresql+psycopg://nobody@127.0.0.1:1/none")


# --- 6. job state and plan are committed together -------------------------------------------------------------


def test_a_saved_plan_is_never_behind_a_failed_job(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fails after the plan's transaction committed, the job says succeeded with the plan's id."""
    def after_commit(stage: str) -> None:
        if stage == "committed":
            raise RuntimeError("killed right after the commit")

    monkeypatch.setattr(jobs_module, "_save_hook", after_commit)
    r = svc.client.post(f"/plans/{svc.plan_id}/rebalance", headers=svc.h("admin"), json={"max_moves": 0})
    job = wait_job(svc.client, r.json()["job_id"], svc.h("admin"))
    with svc.ctx.db.read() as s:
        newest = newest_plan(s)
        assert newest is not None
        assert job["status"] == "succeeded" and job["plan_id"] == newest.id, job
        assert s.scalar(select(func.count()).select_from(Assignment).where(Assignment.plan_id == newest.id)) > 0
        assert s.get(Plan, newest.id).parent_id == svc.plan_id


_CHILD = r"""
import os, signal, sys
from api.app import create_app
from api.services import jobs
from api.settings import Settings
from geoalloc.rules import Policy
from geoalloc.store.models import Job, Plan
from geoalloc.store.plans import plan_frames

url, plan_id, job_id, stage = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
app = create_app(Settings(database_url=url, init_db=False))
ctx = app.state.ctx
with ctx.db.write() as s:
    s.add(Job(id=job_id, kind="rebalance", status="running", params={"_owner": jobs._me()}, parent_plan_id=plan_id))
with ctx.db.read() as s:
    a, b = plan_frames(s, plan_id)
    policy = Policy.from_dict(s.get(Plan, plan_id).policy)

def die(at):
    if at == stage:
        os.kill(os.getpid(), signal.SIGKILL)

jobs._save_hook = die
jobs.commit(ctx, a, b, {}, policy, marker=10**9, parent_id=plan_id, kind="rebalance", key_id=None, job_id=job_id)
"""


@pytest.mark.parametrize("stage", ["after_audit", "committed"])
def test_kill_9_during_a_plan_save_leaves_job_and_plan_consistent(svc: Service, stage: str) -> None:
    import subprocess
    import sys

    from api.app import close_app, create_app
    from api.settings import Settings
    from geoalloc.store.models import Job

    with svc.ctx.db.read() as s:
        before = newest_plan(s).id
    job_id = f"kill-{stage}"
    proc = subprocess.run([sys.executable, "-c", _CHILD, svc.url, str(before), job_id, stage],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    restarted = create_app(Settings(database_url=svc.url, init_db=False))  # marks the dead process's jobs
    close_app(restarted)
    with svc.ctx.db.read() as s:
        job = s.get(Job, job_id)
        newest = newest_plan(s).id
        if stage == "committed":
            assert job.status == "succeeded" and job.plan_id == newest != before
        else:  # died inside the transaction: nothing of the plan, and the job is not left running
            assert newest == before and job.plan_id is None
            assert job.status == "failed" and "interrupted" in job.error
    r = svc.client.get(f"/jobs/{job_id}", headers=svc.h("viewer"))
    assert r.status_code == 200 and r.json()["status"] == job.status


def test_storage_errors_map_to_503_and_507() -> None:
    import sqlite3

    from api.problems import storage_problem

    def op(text: str) -> Exception:
        return sa.exc.OperationalError("UPDATE members SET name=? WHERE member_id=?", ("x", "M1"), sqlite3.OperationalError(text))

    assert storage_problem(op("database or disk is full"))[0] == 507
    assert storage_problem(OSError(28, "No space left on device"))[0] == 507
    status, detail, headers = storage_problem(op("attempt to write a readonly database"))
    assert status == 503 and "read-only" in detail and headers["Retry-After"]
    assert storage_problem(op("database is locked"))[:2] == (503, "the database is busy; retry")
    assert storage_problem(op("unable to open database file"))[0] == 503
    assert storage_problem(ValueError("not storage")) is None
    assert all("UPDATE" not in storage_problem(e)[1] for e in (op("database or disk is full"), op("database is locked")))
