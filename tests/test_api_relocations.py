"""``POST /relocations``: many relocations in one call, each as the single endpoint applies it.

Runs on SQLite and PostgreSQL (see ``tests/_api_support.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _api_support import BACKENDS, Service, seeded_service
from sqlalchemy import func, select

from api.services import relocations
from geoalloc.rules import Policy
from geoalloc.store.models import Assignment, Branch, Member, Plan, RelocationEvent
from geoalloc.store.plans import branch_sizes, newest_plan


@pytest.fixture(scope="module", params=BACKENDS)
def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with seeded_service(request.param, tmp_path_factory.mktemp(f"bulk-{request.param}")) as service:
        yield service


def _members(svc: Service, district: str, n: int) -> list[str]:
    with svc.ctx.db.read() as s:
        return [str(m) for m in s.scalars(select(Assignment.member_id).where(
            Assignment.plan_id == svc.plan_id, Assignment.district_zh == district, Assignment.branch_id.is_not(None))
            .order_by(Assignment.member_id).limit(n)).all()]


def _events(svc: Service) -> int:
    with svc.ctx.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(RelocationEvent)) or 0)


def _limits_hold(svc: Service) -> None:
    with svc.ctx.db.read() as s:
        plan = newest_plan(s)
        policy = Policy.from_dict(s.get(Plan, plan.id).policy)
        sizes = branch_sizes(s, plan.id)
        stored = dict(s.execute(select(Branch.branch_id, Branch.size).where(Branch.plan_id == plan.id)).all())
    assert sizes and all(policy.min_size <= n <= policy.max_size for n in sizes.values()), sizes
    assert {b: n for b, n in stored.items() if n} == sizes


def test_bulk_answers_every_item_as_the_single_call_would(svc: Service) -> None:
    ns = _members(svc, "南山区", 12)
    ft = _members(svc, "福田区", 2)
    items: list[dict[str, Any]] = [{"member_id": m, "lon": 113.93 + 0.002 * k, "lat": 22.53} for k, m in enumerate(ns[:8])]
    items += [
        {"member_id": ft[0], "lon": 113.93, "lat": 22.53},                      # 1. another district's member: 404
        {"member_id": "NOBODY", "lon": 113.93, "lat": 22.53},                   # 2. unknown: 404
        {"member_id": ns[8], "address": "hello world"},                         # 3. cannot be placed: 422
        {"member_id": ns[9], "lon": 114.0579, "lat": 22.5431},                  # 4. into 福田区: 403
        {"member_id": ns[10], "address": "广东省深圳市南山区粤海街道科技园社区科苑路15号"},  # 5. address: 200
        {"member_id": ns[11], "lon": 116.4, "lat": 39.9},                       # 6. out of the city: transfer_out
    ]
    before = _events(svc)
    r = svc.client.post("/relocations", headers=svc.h("planner_ns"), json={"items": items})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [a["index"] for a in out["items"]] == list(range(len(items)))
    assert [a["member_id"] for a in out["items"]] == [it["member_id"] for it in items]
    codes = [a["status"] for a in out["items"]]
    assert codes == [200] * 8 + [404, 404, 422, 403, 200, 200], out["items"][8:]
    assert out["applied"] == 10 and out["refused"] == 4
    assert "could not be placed" in out["items"][10]["problem"]["detail"]
    assert out["items"][13]["result"]["status"] == "transfer_out"
    assert _events(svc) == before + 10
    named = {c["member_id"] for a in out["items"] if a["status"] == 200 for c in a["result"]["changes"]}
    with svc.ctx.db.read() as s:  # a district planner's bulk names and moves only that district's members
        assert set(s.scalars(select(Member.district_zh).where(Member.member_id.in_(named | set(ns)))).all()) == {"南山区"}
        for it, a in zip(items[:8], out["items"][:8]):
            m = s.get(Member, it["member_id"])
            assert (m.lon, m.lat) == (it["lon"], it["lat"]) and a["result"]["event_id"] > 0
    single = svc.client.post(f"/members/{ns[9]}/relocate", headers=svc.h("planner_ns"),
                             json={"lon": 114.0579, "lat": 22.5431})
    assert single.status_code == 403 and single.json()["detail"] == out["items"][11]["problem"]["detail"]
    _limits_hold(svc)


def test_bulk_is_idempotent_as_a_whole(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry with the same key applies only what the first call did not (here: it failed half-way)
    and answers every item as if it had all gone through the first time."""
    ns = _members(svc, "南山区", 40)[20:40]
    items = [{"member_id": m, "lon": 113.92 + 0.001 * k, "lat": 22.54} for k, m in enumerate(ns)]
    h = svc.h("admin") | {"Idempotency-Key": f"sync-{svc.backend}"}
    monkeypatch.setattr(relocations, "BULK_CHUNK", 5)
    real = relocations.MemberWriter._flush
    calls = [0]

    def flaky(*args: Any) -> Any:
        calls[0] += 1
        if 3 <= calls[0] <= 4:  # the third chunk fails (and its one-by-one retry of the first item)
            raise RuntimeError("connection reset")
        return real(*args)

    monkeypatch.setattr(relocations.MemberWriter, "_flush", staticmethod(flaky))
    before = _events(svc)
    first = svc.client.post("/relocations", headers=h, json={"items": items}).json()
    monkeypatch.setattr(relocations.MemberWriter, "_flush", staticmethod(real))
    assert first["applied"] < len(items) and first["items"][10]["status"] == 500
    applied_first = first["applied"]
    assert _events(svc) == before + applied_first
    second = svc.client.post("/relocations", headers=h, json={"items": items}).json()
    assert second["applied"] == len(items)
    assert _events(svc) == before + len(items)  # each item applied exactly once over both calls
    for a, b in zip(first["items"], second["items"]):
        if a["status"] == 200:
            assert a["result"] == b["result"]  # the stored answer, not a second move
    third = svc.client.post("/relocations", headers=h, json={"items": items}).json()
    assert third == second and _events(svc) == before + len(items)
    other = svc.client.post("/relocations", headers=h, json={"items": items[:3]})
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["title"]
    _limits_hold(svc)


def test_bulk_bounds(svc: Service) -> None:
    ns = _members(svc, "南山区", 1)[0]
    point = {"member_id": ns, "lon": 113.93, "lat": 22.53}
    assert svc.client.post("/relocations", headers=svc.h("admin"), json={"items": []}).status_code == 422
    r = svc.client.post("/relocations", headers=svc.h("admin"), json={"items": [point] * 10_001})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = svc.client.post("/relocations", headers=svc.h("viewer"), json={"items": [point]})
    assert r.status_code == 403
    bad = svc.client.post("/relocations", headers=svc.h("admin"), json={"items": [point | {"address": "x"}]})
    assert bad.status_code == 422
