"""Single-member relocation: limits always hold, every change reported, leavers removed."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geoalloc.rules import Policy
from geoalloc.plan_diff import violations
from geoalloc.solver.rebalance import rebalance
from geoalloc.solver.relocate import PlanState

POLICY = Policy(min_size=3, max_size=10, min_full=2, extra={"keep_radius_m": 1500.0})
CENTRES = {"南山区": (113.93, 22.53), "福田区": (114.05, 22.54)}
NAMES = list(CENTRES)
EMPTY = pd.DataFrame(columns=["member_id", "branch_id"])


def make_roster(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "member_id": [f"m{i}" for i in range(n)],
            "lon": np.array([CENTRES[NAMES[k]][0] for k in d]) + rng.normal(0, 0.015, n),
            "lat": np.array([CENTRES[NAMES[k]][1] for k in d]) + rng.normal(0, 0.015, n),
            "district_zh": [NAMES[k] for k in d],
            "full_member": (rng.random(n) < 0.75).astype(int),
            "status": "active",
        }
    )


_PLANS: dict[int, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] = {}


def plan(seed: int, n: int = 90) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A valid starting plan (cached: hypothesis calls this many times)."""
    if seed not in _PLANS:
        m = make_roster(n, seed)
        r = rebalance(m, EMPTY, POLICY, certify=False)
        assert violations(r.branches, POLICY)["total"] == 0
        _PLANS[seed] = (m, r.assignments, r.branches)
    return _PLANS[seed]


def satisfiable_after_any_op(s: PlanState) -> bool:
    """Whether the whole city could still meet every limit after one more member leaves or joins,
    or one full member becomes probationary (with a margin of one branch)."""
    active = [s.index[m] for m in s.ids if s.branch_of(m) is not None]
    n, full = len(active), int(s.full[active].sum()) if active else 0
    need = -(-(n + 1) // POLICY.max_size) + 1
    return n - 1 >= POLICY.min_size * need and full - 1 >= POLICY.min_full * need


def snapshot(s: PlanState) -> dict[str, str | None]:
    return {m: s.branch_of(m) for m in s.ids}


# one operation: (kind, member pick, district, dx, dy, full flag)
op = st.tuples(
    st.sampled_from(["move_near", "move_far", "out_of_city", "lost", "join", "full_flip"]),
    st.integers(0, 10_000),
    st.integers(0, 1),
    st.floats(-0.03, 0.03),
    st.floats(-0.03, 0.03),
    st.booleans(),
)


def apply_op(s: PlanState, o: tuple, k: int):
    kind, pick, d, dx, dy, flag = o
    ids = [m for m in s.ids if s.branch_of(m) is not None]
    mid = ids[pick % len(ids)] if ids else f"j{k}"
    lon, lat = CENTRES[NAMES[d]]
    if kind == "move_near":
        i = s.index[mid]
        from geoalloc.projection import to_lonlat

        ll = to_lonlat([s.xy[i, 0] + dx * 5000], [s.xy[i, 1] + dy * 5000])[0]
        return s.relocate(mid, lon=float(ll[0]), lat=float(ll[1]), district_zh=s.dnames[s.mdist[i]])
    if kind == "move_far":
        return s.relocate(mid, lon=lon + dx, lat=lat + dy, district_zh=NAMES[d])
    if kind == "out_of_city":
        return s.relocate(mid, lon=120.0, lat=30.0, district_zh=None, geo_status="out_of_city")
    if kind == "lost":
        return s.relocate(mid, lon=None, lat=None, district_zh=None, status="lost_contact")
    if kind == "join":
        return s.relocate(f"j{k}", lon=lon + dx, lat=lat + dy, district_zh=NAMES[d], full_member=flag)
    i = s.index[mid]
    return s.relocate(mid, lon=float(lon + dx), lat=float(lat + dy), district_zh=NAMES[d], full_member=not bool(s.full[i]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2), ops=st.lists(op, min_size=1, max_size=25))
def test_limits_always_hold_and_every_change_is_reported(seed, ops):
    _, a, b = plan(seed)
    s = PlanState.from_frames(a, b, POLICY)
    for k, o in enumerate(ops):
        if not satisfiable_after_any_op(s):
            continue  # the rules could not all be met: "limits hold" is only promised when they can be
        before = snapshot(s)
        r = apply_op(s, o, k)
        after = snapshot(s)
        changed = {m for m in after if after[m] != before.get(m)}
        assert changed == {c[0] for c in r.changes}, (o, r)
        for m, frm, to in r.changes:
            assert before.get(m) == frm and after[m] == to
        assert s.limit_violations() == [], (o, r, s.notes)
        s.check()


def test_out_of_city_is_transfer_out_and_removed():
    _, a, b = plan(0)
    s = PlanState.from_frames(a, b, POLICY)
    mid = a["member_id"].iloc[0]
    old = s.branch_of(mid)
    r = s.relocate(mid, lon=121.47, lat=31.23, district_zh=None, geo_status="out_of_city")
    assert r.action == "transfer_out" and r.from_branch == old and r.to_branch is None
    assert s.branch_of(mid) is None
    assert s.status[s.index[mid]] == "transfer_out"
    assert (mid, old, None) in r.changes
    assert s.limit_violations() == []
    ass, _ = s.to_frames()
    row = ass.set_index("member_id").loc[mid]
    assert row["branch_id"] == "" and row["status"] == "transfer_out"


def test_lost_contact_removed_and_new_member_joins():
    _, a, b = plan(1)
    s = PlanState.from_frames(a, b, POLICY)
    mid = a["member_id"].iloc[3]
    assert s.relocate(mid, lon=None, lat=None, district_zh=None, status="lost_contact").action == "lost_contact"
    assert s.branch_of(mid) is None
    lon, lat = CENTRES["福田区"]
    r = s.relocate("newbie", lon=lon, lat=lat, district_zh="福田区")
    assert r.action == "joined" and r.to_branch is not None
    assert s.bdist[s.bindex[r.to_branch]] == s.dindex["福田区"]
    assert s.limit_violations() == []


def test_small_move_keeps_branch_and_far_move_changes_it():
    _, a, b = plan(2)
    s = PlanState.from_frames(a, b, POLICY)
    row = a.iloc[5]
    r = s.relocate(row["member_id"], lon=row["lon"] + 0.001, lat=row["lat"], district_zh=row["district_zh"])
    assert r.action == "kept" and r.changes == []
    other = "福田区" if row["district_zh"] == "南山区" else "南山区"
    lon, lat = CENTRES[other]
    r = s.relocate(row["member_id"], lon=lon, lat=lat, district_zh=other)
    assert r.action in ("moved", "resolved") and r.to_branch != r.from_branch
    assert s.bdist[s.bindex[r.to_branch]] == s.dindex[other]


def test_events_are_recorded_with_utc_times():
    _, a, b = plan(0)
    s = PlanState.from_frames(a, b, POLICY)
    row = a.iloc[7]
    s.relocate(row["member_id"], lon=None, lat=None, district_zh=None, status="lost_contact")
    ev = s.events_frame()
    assert len(ev) >= 1
    first = ev.iloc[0]
    assert first["member_id"] == row["member_id"] and first["action"] == "lost_contact"
    assert datetime.fromisoformat(first["at"]).utcoffset().total_seconds() == 0
    assert first["from_branch"] == row["branch_id"] and first["to_branch"] is None and first["reason"]


def test_frozen_member_keeps_branch_in_same_district():
    m, a, b = plan(1)
    a = a.copy()
    a["frozen"] = 0
    a.loc[0, "frozen"] = 1
    s = PlanState.from_frames(a, b, POLICY)
    row = a.iloc[0]
    r = s.relocate(row["member_id"], lon=row["lon"] + 0.05, lat=row["lat"], district_zh=row["district_zh"])
    assert r.action == "kept" and s.branch_of(row["member_id"]) == row["branch_id"]


def test_active_without_point_is_an_error():
    _, a, b = plan(0)
    s = PlanState.from_frames(a, b, POLICY)
    with pytest.raises(ValueError, match="lon/lat"):
        s.relocate(a["member_id"].iloc[0], lon=None, lat=None, district_zh="南山区")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2),
    ops=st.lists(st.one_of(op, st.tuples(st.just("rebalance"), st.sampled_from([None, 0, 3, 1000]))), min_size=1, max_size=12),
)
def test_limits_hold_across_relocations_and_rebalances(seed, ops):
    _, a, b = plan(seed)
    s = PlanState.from_frames(a, b, POLICY)
    for k, o in enumerate(ops):
        if o[0] == "rebalance":
            ass, br = s.to_frames()
            roster = ass[["member_id", "lon", "lat", "district_zh", "full_member", "status"]]
            budget = o[1] if o[1] != 1000 else None
            r = rebalance(roster, ass, POLICY, current_branches=br, max_moves=budget, certify=False,
                          move_penalty_m=0.0 if o[1] == 1000 else None)
            assert budget is None or len(r.moves) <= budget
            assert violations(r.branches, POLICY)["total"] == 0, r.report["notes"]
            s = PlanState.from_frames(r.assignments, r.branches, POLICY)
        elif satisfiable_after_any_op(s):
            apply_op(s, o, k)
        assert s.limit_violations() == []
        s.check()


def test_touched_rows_agree_with_the_whole_plan() -> None:
    """member_rows/branch_rows (what the API persists after a relocation) match to_frames."""
    _, a, b = plan(5)
    s = PlanState.from_frames(a, b, POLICY)
    first = a[a["branch_id"] != ""].iloc[0]
    other = next(n for n in NAMES if n != first["district_zh"])
    mid = str(first["member_id"])
    rel = s.relocate(mid, lon=CENTRES[other][0], lat=CENTRES[other][1], district_zh=other)
    assert rel.from_branch != rel.to_branch and rel.changes
    whole_a, whole_b = s.to_frames()
    touched = {m for m, _, _ in rel.changes} | {mid}
    rows = pd.DataFrame(s.member_rows(sorted(touched))).set_index("member_id")
    expect = whole_a.set_index("member_id").loc[sorted(touched)]
    pd.testing.assert_frame_equal(rows[expect.columns], expect, check_dtype=False)
    branch_ids = {x for _, f, t in rel.changes for x in (f, t) if x}
    recs, closed = s.branch_rows(sorted(branch_ids))
    assert set(closed) == branch_ids - set(whole_b["branch_id"])
    got = pd.DataFrame(recs).set_index("branch_id").sort_index()
    want = whole_b.set_index("branch_id").loc[got.index]
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
    assert not got["district_zh"].str.contains("·").any()
