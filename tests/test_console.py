"""The console's HTTP side: the page and its files under a strict CSP, and the endpoints it adds
(summary in words, map data, xlsx/gpkg export), with each role's privacy; sites in the plan policy."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import openpyxl
import pytest
from _api_support import POLICY, Service, seeded_service, wait_job

from geoalloc.sites import validate_sites


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with seeded_service("sqlite", tmp_path_factory.mktemp("console")) as service:
        yield service


def test_console_page_and_files_need_no_other_host(svc: Service) -> None:
    r = svc.client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src-attr")[0]
    html = r.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # no inline script
    assert not re.search(r"""(src|href)=["']https?://""", html)  # nothing from another host
    for path in re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", html):
        f = svc.client.get(path)
        assert f.status_code == 200 and len(f.content) > 100, path
    assert "Leaflet 1.9.4" in svc.client.get("/console/vendor/leaflet.js").text
    assert svc.client.get("/console/vendor/images/layers.png").headers["content-type"] == "image/png"
    # a path out of the console's folder is never served (401 without a key: it is not a public path)
    for escape in ("/console/../app.py", "/console/vendor/../../x", "/console/%2e%2e/app.py"):
        r = svc.client.get(escape)
        assert r.status_code in (401, 404) and "create_app" not in r.text, escape


def test_summary_in_words_and_map_data(svc: Service) -> None:
    r = svc.client.get(f"/plans/{svc.plan_id}/summary", headers=svc.h("viewer"))
    assert r.status_code == 200
    body = r.json()
    assert [s["title"] for s in body["sections"]] == ["做了什么", "方案质量", "需要关注"]
    assert any("下界" in line for line in body["sections"][1]["lines"])
    en = svc.client.get(f"/plans/{svc.plan_id}/summary?lang=en", headers=svc.h("viewer")).json()
    assert en["sections"][0]["title"] == "What was done"
    assert svc.client.get(f"/plans/{svc.plan_id}/summary").status_code == 401
    assert svc.client.get(f"/plans/{svc.plan_id}/summary?lang=fr", headers=svc.h("viewer")).status_code == 422
    admin = svc.client.get(f"/plans/{svc.plan_id}/map-data", headers=svc.h("admin")).json()
    viewer = svc.client.get(f"/plans/{svc.plan_id}/map-data", headers=svc.h("viewer")).json()
    assert admin["tiles"]["url"].startswith("https://") and "autonavi" in admin["tiles"]["url"]
    assert admin["payload"]["datum"] == "gcj02"
    assert admin["counts"]["branches"] == viewer["counts"]["branches"] > 0
    assert "id" not in viewer["payload"]["members"]  # no member ids for a viewer
    assert admin["counts"]["members_unassigned"] > 0 and viewer["counts"]["members_unassigned"] == 0


def test_export_xlsx_and_gpkg_by_role(svc: Service, tmp_path) -> None:
    r = svc.client.get(f"/plans/{svc.plan_id}/export?format=xlsx", headers=svc.h("planner_ns"))
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames[:3] == ["汇总", "支部", "成员"]
    districts = {row[2] for row in list(wb["成员"].values)[1:]}
    assert districts == {"南山区"}  # a district planner exports their district only
    v = svc.client.get(f"/plans/{svc.plan_id}/export?format=xlsx", headers=svc.h("viewer"))
    member_ids = {row[0] for row in list(openpyxl.load_workbook(io.BytesIO(v.content))["成员"].values)[1:]}
    assert all(str(m).startswith("x") for m in member_ids)  # anonymous rows for a viewer
    g = svc.client.get(f"/plans/{svc.plan_id}/export?format=gpkg", headers=svc.h("admin"))
    assert g.status_code == 200 and g.content[:16] == b"SQLite format 3\x00"
    (tmp_path / "p.gpkg").write_bytes(g.content)
    import pyogrio

    assert [n for n, _ in pyogrio.list_layers(tmp_path / "p.gpkg")] == ["branches", "branch_areas", "members",
                                                                         "districts"]
    assert svc.client.get(f"/plans/{svc.plan_id}/export?format=shp", headers=svc.h("admin")).status_code == 422
    assert svc.client.get("/plans/999999/export", headers=svc.h("admin")).status_code == 404


def test_plan_with_sites_through_the_api(svc: Service) -> None:
    body = {k: v for k, v in POLICY.to_dict().items() if k != "extra"}
    bad = svc.client.post("/plans", headers=svc.h("admin"), json=body | {"sites": [
        {"site_id": "A", "name": "甲", "lon": 116.4, "lat": 39.9}]})
    assert bad.status_code == 422 and "row 2" in bad.json()["detail"] and "not in Shenzhen" in bad.json()["detail"]
    from geoalloc.districts import subdistricts

    sd = subdistricts()
    sites = [{"site_id": f"S{i}", "name": f"{r.name_zh}党群服务中心", "lon": r.seed_lon, "lat": r.seed_lat}
             for i, r in enumerate(sd.itertuples())]
    r = svc.client.post("/plans", headers=svc.h("admin"), json=body | {"sites": sites})
    assert r.status_code == 202, r.text
    job = wait_job(svc.client, r.json()["job_id"], svc.h("admin"))
    assert job["status"] == "succeeded", job
    branches = svc.client.get(f"/plans/{job['plan_id']}/branches", headers=svc.h("viewer")).json()
    by_id = {s["site_id"]: s for s in validate_sites(sites)}
    assert branches and all(b["site_id"] in by_id for b in branches)
    for b in branches:
        s = by_id[b["site_id"]]
        assert b["site_name"] == s["name"] and abs(b["lon"] - s["lon"]) < 1e-5  # a public place: not generalised


def test_rebalance_with_sites_through_the_api(svc: Service) -> None:
    """A plan formed without centres, rebalanced with them in the policy: every branch then meets
    at a centre; a rebalance of that plan keeps its stored centres."""
    from geoalloc.districts import subdistricts

    body = {k: v for k, v in POLICY.to_dict().items() if k != "extra"}
    sites = [{"site_id": f"S{i}", "name": f"{r.name_zh}党群服务中心", "lon": r.seed_lon, "lat": r.seed_lat}
             for i, r in enumerate(subdistricts().itertuples())]
    by_id = {s["site_id"]: s for s in validate_sites(sites)}
    plan = svc.plan_id
    for payload in ({"policy": body | {"sites": sites}}, {}):
        r = svc.client.post(f"/plans/{plan}/rebalance", headers=svc.h("admin"), json=payload)
        assert r.status_code == 202, r.text
        job = wait_job(svc.client, r.json()["job_id"], svc.h("admin"), timeout=120)
        assert job["status"] == "succeeded", job
        plan = job["plan_id"]
        branches = svc.client.get(f"/plans/{plan}/branches", headers=svc.h("admin")).json()
        assert branches and all(b["site_id"] in by_id for b in branches)
        for b in branches:
            s = by_id[b["site_id"]]
            assert abs(b["lon"] - s["lon"]) < 1e-5 and abs(b["lat"] - s["lat"]) < 1e-5
    report = svc.client.get(f"/plans/{plan}/report", headers=svc.h("admin")).json()
    assert report["policy"]["sites"] and report["resited_branches"] == []
