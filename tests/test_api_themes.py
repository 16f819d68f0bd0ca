"""Themed branches through the service: formed from the API's policy, kept through the database,
and honoured by relocations (a themed member stays in a themed branch)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _api_support import POLICY, Service, seeded_service, wait_job

from geoalloc.rules import THEME_SEP


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with seeded_service("sqlite", tmp_path_factory.mktemp("themes")) as s:
        yield s


def test_themed_plan_through_the_api_and_a_themed_relocation(svc: Service) -> None:
    body = {k: v for k, v in POLICY.to_dict().items() if k != "extra"} | {"themes": ["IT"]}
    r = svc.client.post("/plans", headers=svc.h("planner_city"), json=body)
    assert r.status_code == 202, r.text
    job = wait_job(svc.client, r.json()["job_id"], svc.h("viewer"))
    assert job["status"] == "succeeded", job
    plan_id = job["plan_id"]
    plan = svc.client.get(f"/plans/{plan_id}", headers=svc.h("viewer")).json()
    assert plan["policy"]["themes"] == ["IT"]
    branches = svc.client.get(f"/plans/{plan_id}/branches", headers=svc.h("admin")).json()
    rows = branches["branches"] if isinstance(branches, dict) else branches
    themed = [b for b in rows if f"{THEME_SEP}IT-" in b["branch_id"]]
    assert themed, "no themed branch formed"
    report = svc.client.get(f"/plans/{plan_id}/report", headers=svc.h("admin")).json()
    assert report["violations"]["total"] == 0 and report["violations"]["theme_mismatch"] == 0

    # a member of a themed branch moves a few hundred metres: still themed after the database round trip
    bid = themed[0]["branch_id"]
    members = svc.client.get("/members", headers=svc.h("admin"), params={"limit": 1000}).json()
    items = members["items"] if isinstance(members, dict) else members
    mine = next(m for m in items if m.get("theme") == "IT" and m.get("lon") is not None
                and m.get("district_zh") == bid.split(THEME_SEP)[0])
    r = svc.client.post(f"/members/{mine['member_id']}/relocate", headers=svc.h("admin"),
                        json={"lon": mine["lon"] + 0.004, "lat": mine["lat"], "datum": "wgs84"})
    assert r.status_code == 200, r.text
    to = r.json()["to_branch"]
    assert to is not None and f"{THEME_SEP}IT-" in to, r.json()


def test_a_plan_breaking_the_rules_is_never_saved(svc: Service) -> None:
    from api.services import jobs as jobs_module
    from api.services.jobs import JobFailure
    from geoalloc.store.models import Plan
    from geoalloc.store.plans import plan_frames

    with svc.ctx.db.read() as s:
        a, b = plan_frames(s, svc.plan_id)
        n_plans = len(s.query(Plan).all())
    fam = a[(a["group_id"] != "") & (a["branch_id"] != "")]
    first = fam.groupby("group_id").head(1).index[0]
    gid = a.loc[first, "group_id"]
    other = next(x for x in b["branch_id"] if x != a.loc[first, "branch_id"])
    broken = a.copy()
    broken.loc[first, "branch_id"] = other  # one member of a family sent elsewhere
    assert (broken.loc[broken["group_id"] == gid, "branch_id"].nunique()) == 2
    with pytest.raises(JobFailure, match="split_groups"):
        jobs_module.commit(svc.ctx, broken, b, {}, POLICY, marker=10**9, parent_id=svc.plan_id, kind="rebalance",
                           key_id=None)
    with svc.ctx.db.read() as s:
        assert len(s.query(Plan).all()) == n_plans  # nothing was saved


def test_a_relocated_family_is_stored_with_its_new_home_and_precision(svc: Service) -> None:
    from sqlalchemy import select

    from geoalloc.store.models import Assignment, Member
    from geoalloc.store.plans import newest_plan

    with svc.ctx.db.read() as s:
        plan = newest_plan(s)
        assert plan is not None
        fam = s.execute(select(Member.member_id, Member.group_id).join(Assignment, Assignment.member_id == Member.member_id)
                        .where(Assignment.plan_id == plan.id, Assignment.branch_id.is_not(None), Member.group_id != "",
                               Member.status == "active")).first()
    assert fam is not None
    r = svc.client.post(f"/members/{fam[0]}/relocate", headers=svc.h("admin"), json={"address": "深圳市南山区粤海街道"})
    assert r.status_code == 200, r.text
    with svc.ctx.db.read() as s:
        newest = newest_plan(s)
        assert newest is not None
        rows = s.execute(select(Assignment.member_id, Assignment.geo_precision, Assignment.lon, Assignment.branch_id)
                         .join(Member, Member.member_id == Assignment.member_id)
                         .where(Assignment.plan_id == newest.id, Member.group_id == fam[1],
                                Member.status == "active")).all()
    assert len(rows) >= 2
    assert {p for _, p, _, _ in rows} == {"subdistrict"}  # the geocoder's grade, for the whole family
    assert len({lon for _, _, lon, _ in rows}) == 1 and len({b for _, _, _, b in rows}) == 1
