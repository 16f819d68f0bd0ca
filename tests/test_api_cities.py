"""A plan of two cities through HTTP: branches and members say their city (on SQLite and PostGIS)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from _api_support import BACKENDS, database_url

from geoalloc.rules import Policy

POLICY = Policy(time_limit=0.3, seed=1)


@pytest.fixture(scope="module", params=BACKENDS)
def cities(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, int, Any]]:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.services import jobs as jobs_module
    from api.settings import Settings
    from geoalloc.national import generate_national
    from geoalloc.pipeline import allocate
    from geoalloc.store.keys import create_key
    from geoalloc.store.members import members_frame, upsert_members

    roster = generate_national(300, seed=11)
    roster = roster[roster["city_zh"].isin(roster["city_zh"].value_counts().index[:2])].copy()
    roster["geo_precision"], roster["geo_status"] = "exact", "ok"
    with database_url(request.param, tmp_path_factory.mktemp(request.param)) as url:
        app = create_app(Settings(database_url=url, job_workers=1))
        admin = create_key(url, "admin")[1]
        with TestClient(app) as client:
            ctx = app.state.ctx
            with ctx.db.write() as s:
                upsert_members(s, roster, None)
            with ctx.db.read() as s:
                members = members_frame(s)
            res = allocate(members, POLICY)
            plan_id = jobs_module.commit(ctx, res.assignments, res.branches, dict(res.report), POLICY,
                                         marker=0, parent_id=None, kind="form", key_id=None)
            yield client, admin, plan_id, res


def test_branches_and_members_come_back_with_their_city(cities: tuple[Any, str, int, Any]) -> None:
    client, admin, plan_id, res = cities
    h = {"Authorization": f"Bearer {admin}"}
    assert res.assignments["city_zh"].nunique() == 2
    r = client.get(f"/plans/{plan_id}/branches", headers=h)
    assert r.status_code == 200, r.text
    got = {b["branch_id"]: b["city_zh"] for b in r.json()}
    assert got == dict(zip(res.branches["branch_id"], res.branches["city_zh"]))
    assert len(set(got.values())) == 2 and all(b.startswith(c + "/") for b, c in got.items())
    r = client.get("/members", headers=h, params={"limit": 1000})
    assert r.status_code == 200, r.text
    page = pd.DataFrame(r.json()["items"]).set_index("member_id")
    sent = res.assignments.set_index("member_id")
    assert len(page) == len(sent)
    assert (page["city_zh"] == sent.loc[page.index, "city_zh"]).all()
    assert (page["branch_id"].fillna("") == sent.loc[page.index, "branch_id"]).all()
    one = str(sent.index[0])
    m = client.get(f"/members/{one}", headers=h).json()
    assert m["city_zh"] == sent.loc[one, "city_zh"] != "" and m["branch_id"] == sent.loc[one, "branch_id"]


def test_a_relocation_through_the_api_measures_in_the_members_city_zone(cities: tuple[Any, str, int, Any]) -> None:
    from pyproj import Geod

    client, admin, plan_id, res = cities
    h = {"Authorization": f"Bearer {admin}"}
    a = res.assignments[res.assignments["branch_id"] != ""]
    own = a["branch_id"].str.rsplit("-", n=1).str[0] == a["city_zh"] + "/" + a["district_zh"]
    row = a[(a["city_zh"] != "深圳市") & own].iloc[0]
    lon, lat = float(row["lon"]) + 0.02, float(row["lat"])
    r = client.post(f"/members/{row['member_id']}/relocate", headers=h, json={"lon": lon, "lat": lat})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "active" and out["to_branch"].startswith(str(row["city_zh"]) + "/")
    site = {b["branch_id"]: b for b in client.get(f"/plans/{plan_id}/branches", headers=h).json()}[out["to_branch"]]
    _, _, g = Geod(ellps="WGS84").inv(lon, lat, site["lon"], site["lat"])
    assert g > 100 and abs(out["distance_m"] / g - 1) < 0.005
    assert site["city_zh"] == row["city_zh"]
