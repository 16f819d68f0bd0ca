"""The storage layer on its own: migrations, engines, keys, members' history, atomic plan saves."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa
from _api_support import BACKENDS, database_url
from sqlalchemy import func, select

from geoalloc.store import plans as plans_module
from geoalloc.store.db import Database, init_db
from geoalloc.store.keys import KeyError_, add_key, authenticate, key_rows, revoke
from geoalloc.store.members import address_history, members_frame, upsert_members
from geoalloc.store.models import ApiKey, Assignment, AuditEntry, Member, Plan
from geoalloc.store.plans import newest_plan, plan_frames, save_plan


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with database_url(request.param, tmp_path_factory.mktemp(f"store-{request.param}")) as url:
        init_db(url)
        database = Database(url)
        yield database
        database.dispose()


def _members(ids: list[str], lon: float = 113.93) -> pd.DataFrame:
    return pd.DataFrame({"member_id": ids, "name": [f"n{i}" for i in ids], "address": "", "lon": lon,
                         "lat": 22.53, "district_zh": "南山区", "full_member": 1, "status": "active",
                         "geo_precision": "exact", "geo_status": "ok"})


def test_migrations_are_idempotent_and_spatial_on_postgres(db: Database) -> None:
    assert init_db(db.url) == db.url  # second run: nothing to do, no error
    insp = sa.inspect(db.engine)
    assert {"members", "member_addresses", "plans", "branches", "assignments", "relocation_events", "audit_log",
            "api_keys", "idempotency_records", "jobs", "alembic_version"} <= set(insp.get_table_names())
    if db.sqlite:
        with db.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        return
    with db.write() as s:
        upsert_members(s, _members(["GEO1"], lon=114.05), None)
    with db.read() as s:
        x, srid = s.execute(sa.text("SELECT ST_X(geom), ST_SRID(geom) FROM members WHERE member_id='GEO1'")).one()
        assert abs(x - 114.05) < 1e-9 and srid == 4326
        idx = s.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE tablename='members' AND indexname='ix_members_geom'")).scalar()
        assert idx is not None and "gist" in idx.lower()
        near = s.execute(sa.text("SELECT member_id FROM members WHERE ST_DWithin(geom::geography, "
                                 "ST_SetSRID(ST_MakePoint(114.051, 22.53), 4326)::geography, 200)")).scalars().all()
        assert near == ["GEO1"]


def test_keys_are_hashed_checked_and_revocable(db: Database) -> None:
    key_id, plaintext = add_key(db, "planner", "南山区", label="test")
    with db.read() as s:
        row = s.get(ApiKey, key_id)
        assert row is not None and plaintext.split("_", 2)[2] not in row.secret_hash and len(row.secret_hash) == 64
    who = authenticate(db, plaintext)
    assert who is not None and who.role == "planner" and who.district_zh == "南山区"
    assert who.sees_district("南山区") and not who.sees_district("福田区")
    assert authenticate(db, plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")) is None
    for bad in ("", "gak_", "nonsense", f"gak_{key_id}", "Bearer x"):
        assert authenticate(db, bad) is None
    assert all("secret_hash" not in r for r in key_rows(db))
    revoke(db, key_id)
    first = next(r for r in key_rows(db) if r["key_id"] == key_id)["revoked_at"]
    revoke(db, key_id)  # twice: keeps the first time
    assert next(r for r in key_rows(db) if r["key_id"] == key_id)["revoked_at"] == first
    assert authenticate(db, plaintext) is None
    with pytest.raises(KeyError_, match="unknown role"):
        add_key(db, "root")
    with pytest.raises(KeyError_, match="unknown district"):
        add_key(db, "planner", "北京市")
    with pytest.raises(KeyError_, match="no API key"):
        revoke(db, "missing")


def test_member_upsert_keeps_address_history(db: Database) -> None:
    with db.write() as s:
        assert upsert_members(s, _members(["H1", "H2"]), "k1") == {"created": 2, "updated": 0, "unchanged": 0}
    with db.write() as s:
        counts = upsert_members(s, pd.concat([_members(["H1"], lon=113.95), _members(["H2"])]), "k1")
    assert counts == {"created": 0, "updated": 1, "unchanged": 1}
    with db.read() as s:
        hist = address_history(s, "H1")
        assert [h.lon for h in hist] == [113.93, 113.95]
        assert hist[0].valid_to is not None and hist[1].valid_to is None
        assert s.get(Member, "H1").version == 2
        audit = s.scalars(select(AuditEntry).where(AuditEntry.entity_id == "H1").order_by(AuditEntry.id)).all()
        assert [a.action for a in audit] == ["import", "import"] and audit[1].before == {"lon": 113.93}
        frame = members_frame(s)
        assert {"member_id", "lon", "lat", "district_zh", "full_member", "status"} <= set(frame.columns)


def _plan_frames(ids: list[str], branch: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    a = pd.DataFrame({"member_id": ids, "branch_id": branch, "distance_m": 10.0, "district_zh": "南山区",
                      "lon": 113.93, "lat": 22.53, "geo_precision": "exact", "full_member": 1, "status": "active"})
    b = pd.DataFrame([{"branch_id": branch, "lon": 113.93, "lat": 22.53, "district_zh": "南山区", "size": len(ids),
                       "n_full": len(ids), "mean_distance_m": 10.0, "max_distance_m": 10.0, "joint": 0}])
    return a, b


def test_plan_save_is_all_or_nothing(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = ["P1", "P2", "P3"]
    with db.write() as s:
        upsert_members(s, _members(ids), None)
    a, b = _plan_frames(ids, "南山区-001")
    with db.write() as s:
        first = save_plan(s, a, b, {"objective_m": 30.0, "gap": float("nan")}, {"max_size": 50}, parent_id=None,
                          kind="form", key_id=None)
    with db.read() as s:
        assert newest_plan(s).id == first
        got_a, got_b = plan_frames(s, first)
        assert list(got_a["branch_id"]) == ["南山区-001"] * 3 and int(got_b["size"].iloc[0]) == 3
        assert s.get(Plan, first).report["gap"] is None  # NaN is not JSON: stored as null
        n_assign = s.scalar(select(func.count()).select_from(Assignment))

    real = plans_module._insert_rows
    calls = {"n": 0}

    def crash_on_assignments(s: object, table: object, rows: list[dict[str, object]]) -> None:
        calls["n"] += 1
        if table is Assignment.__table__:
            real(s, table, rows[:1])  # part of the plan is written ...
            raise OSError("disk full")  # ... then the process dies

        real(s, table, rows)

    monkeypatch.setattr(plans_module, "_insert_rows", crash_on_assignments)
    a2, b2 = _plan_frames(ids, "南山区-002")
    with pytest.raises(OSError, match="disk full"), db.write() as s:
        save_plan(s, a2, b2, {}, {}, parent_id=first, kind="rebalance", key_id=None)
    assert calls["n"] == 2
    with db.read() as s:
        assert newest_plan(s).id == first
        assert s.scalar(select(func.count()).select_from(Assignment)) == n_assign
        assert s.scalar(select(func.count()).select_from(Plan).where(Plan.parent_id == first)) == 0


def test_a_national_plan_keeps_its_cities_and_a_shenzhen_plan_has_none(db: Database) -> None:
    from geoalloc.national import generate_national
    from geoalloc.pipeline import allocate
    from geoalloc.rules import Policy

    roster = generate_national(300, seed=11)
    roster = roster[roster["city_zh"].isin(roster["city_zh"].value_counts().index[:3])].copy()
    roster["member_id"] = "CITY-" + roster["member_id"].astype(str)
    roster["geo_precision"], roster["geo_status"] = "exact", "ok"
    with db.write() as s:
        upsert_members(s, roster, None)
    with db.read() as s:
        members = members_frame(s)
    mine = members[members["member_id"].str.startswith("CITY-")].set_index("member_id")
    assert (mine.loc[roster["member_id"], "city_zh"].to_numpy() == roster["city_zh"].to_numpy()).all()
    res = allocate(members[members["member_id"].str.startswith("CITY-")], Policy(time_limit=0.3))
    assert res.assignments["city_zh"].nunique() == 3
    with db.write() as s:
        pid = save_plan(s, res.assignments, res.branches, res.report, {}, parent_id=None, kind="form", key_id=None)
    with db.read() as s:
        got_a, got_b = plan_frames(s, pid)
    sent = res.assignments.set_index("member_id")["city_zh"]
    assert list(got_a.columns[:4]) == ["member_id", "branch_id", "distance_m", "city_zh"]
    assert (got_a.set_index("member_id")["city_zh"] == sent.loc[got_a["member_id"]].to_numpy()).all()
    assert dict(zip(got_b["branch_id"], got_b["city_zh"])) == dict(zip(res.branches["branch_id"], res.branches["city_zh"]))
    a, b = _plan_frames(["SZ1"], "南山区-009")  # Shenzhen frames (no city) read back without one
    with db.write() as s:
        upsert_members(s, _members(["SZ1"]), None)
        sz = save_plan(s, a, b, {}, {}, parent_id=None, kind="form", key_id=None)
    with db.read() as s:
        sz_a, sz_b = plan_frames(s, sz)
    assert "city_zh" not in sz_a.columns and "city_zh" not in sz_b.columns
