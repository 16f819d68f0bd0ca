"""Rebalance and relocation benchmark on the sample roster (issue 5 targets).

    .venv/bin/python -m benchmarks.rebalance [--seed 1] [--relocations 10000] [--share 0.05] [--joiners 300]

1. the starting plan: the sample roster allocated from scratch (``geoalloc.pipeline.allocate``);
2. 5% of the active members move house at random (to another member's neighbourhood, any
   district) and 300 new members join in one subdistrict;
3. ``rebalance`` with default settings: violations before/after, members moved against
   1.5 x (relocated + joined), total distance against a fresh from-scratch plan (target: within 1%);
4. 10,000 single relocations in a row on the rebalanced plan (``PlanState.relocate``):
   p50/p99 latency (target p99 < 20 ms) and a check that no branch ever left its limits.

Timings are wall clock on a shared machine: noisy. When the pipeline cannot run (its
geocoder missing), the roster's true points from ``geoalloc.samples`` and the solver's
``form_branches`` are used instead, and the script says so.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd

from geoalloc.rules import Policy
from geoalloc.projection import to_lonlat, to_metres
from geoalloc.solver.rebalance import rebalance
from geoalloc.solver.relocate import PlanState


def load_roster() -> tuple[pd.DataFrame, str]:
    """The sample roster with WGS-84 points and districts."""
    try:
        from geoalloc.paths import sample_roster_path
        from geoalloc.pipeline import place_members

        raw = pd.read_csv(sample_roster_path(), dtype={"member_id": str})
        placed = place_members(raw)
        placed = placed[placed["lon"].notna() | (placed["status"] != "active")].reset_index(drop=True)
        return placed, "data/sample/members.csv geocoded by geoalloc.pipeline.place_members"
    except Exception as exc:  # the geocoder is someone else's and may not be there yet
        from geoalloc.geocode.datum import to_wgs84
        from geoalloc.samples import generate_roster

        m = generate_roster(7000, coordinate_share=1.0)
        lon, lat = m["lon"].to_numpy().copy(), m["lat"].to_numpy().copy()
        for d in ("wgs84", "gcj02", "bd09"):
            s = (m["datum"] == d).to_numpy()
            if s.any():
                lon[s], lat[s] = to_wgs84(lon[s], lat[s], d)
        m["lon"], m["lat"], m["datum"] = lon, lat, "wgs84"
        return m, f"samples.generate_roster(7000) true points (pipeline unavailable: {type(exc).__name__}: {exc})"


def allocate(members: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """A from-scratch plan: the lead's pipeline, else the solver directly."""
    try:
        from geoalloc.pipeline import allocate as pipeline_allocate

        r = pipeline_allocate(members, policy)
        return r.assignments, r.branches, r.report
    except ImportError:
        pass
    from geoalloc.solver import form_branches
    from geoalloc.solver.problem import Problem

    act = members[members["status"] == "active"].reset_index(drop=True)
    names = sorted(act["district_zh"].unique())
    reg = act["district_zh"].map({n: i for i, n in enumerate(names)}).to_numpy()
    xy = to_metres(act["lon"].to_numpy(), act["lat"].to_numpy())
    sol = form_branches(Problem(xy=xy, full=act["full_member"].to_numpy(), region=reg, region_names=names), policy)
    bid = np.array([f"{names[sol.site_region[j]]}-{j + 1:03d}" for j in range(sol.n_branches)], dtype=object)
    a = members[["member_id", "district_zh", "lon", "lat", "full_member", "status"]].copy()
    a["branch_id"] = ""
    a["distance_m"] = np.nan
    pos = a.index[a["status"] == "active"]
    a.loc[pos, "branch_id"] = bid[sol.branch_of]
    a.loc[pos, "distance_m"] = np.round(np.hypot(*(xy - sol.site_xy[sol.branch_of]).T), 1)
    ll = to_lonlat(sol.site_xy[:, 0], sol.site_xy[:, 1])
    b = pd.DataFrame({"branch_id": bid, "lon": ll[:, 0], "lat": ll[:, 1],
                      "district_zh": [names[r] for r in sol.site_region]})
    b["size"] = np.bincount(sol.branch_of, minlength=sol.n_branches)
    return a, b, {"objective_m": sol.objective, "lower_bound_m": sol.lower_bound, "gap": sol.gap}


def perturb(members: pd.DataFrame, share: float, joiners: int, seed: int) -> tuple[pd.DataFrame, int, str]:
    """Move ``share`` of the active members to random homes and add ``joiners`` in one subdistrict."""
    from geoalloc.districts import locate_districts, subdistricts

    rng = np.random.default_rng(seed)
    m = members.copy().reset_index(drop=True)
    act = np.flatnonzero((m["status"] == "active").to_numpy())
    movers = rng.choice(act, size=int(round(share * len(act))), replace=False)
    homes = rng.choice(act, size=len(movers))  # a new home near some other member's
    xy = to_metres(m.loc[homes, "lon"].to_numpy(), m.loc[homes, "lat"].to_numpy()) + rng.normal(0, 400, (len(movers), 2))
    ll = to_lonlat(xy[:, 0], xy[:, 1])
    dist = locate_districts(ll[:, 0], ll[:, 1]).to_numpy()
    ok = np.array([d is not None for d in dist])
    movers, ll, dist = movers[ok], ll[ok], dist[ok]
    m.loc[movers, "lon"], m.loc[movers, "lat"], m.loc[movers, "district_zh"] = ll[:, 0], ll[:, 1], dist
    sd = subdistricts()
    row = sd.iloc[int(rng.integers(len(sd)))]
    lonc, latc = float(row["seed_lon"]), float(row["seed_lat"])
    c = to_metres([lonc], [latc])[0]
    pts = c + rng.normal(0, 700, (joiners * 2, 2))
    pl = to_lonlat(pts[:, 0], pts[:, 1])
    pd_ = locate_districts(pl[:, 0], pl[:, 1]).to_numpy()
    keep = np.array([d is not None for d in pd_])[: len(pts)]
    pl, pd_ = pl[keep][:joiners], pd_[keep][:joiners]
    new = pd.DataFrame({
        "member_id": [f"N{i:05d}" for i in range(len(pl))], "lon": pl[:, 0], "lat": pl[:, 1], "district_zh": pd_,
        "full_member": (rng.random(len(pl)) < 0.9).astype(int), "status": "active",
    })
    name = f"{row['district_zh']} {row['name_zh']}"
    return pd.concat([m, new], ignore_index=True), len(movers), name


def relocation_latency(assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy, count: int, seed: int) -> dict[str, Any]:
    """``count`` relocations in a row: mostly moves to another member's neighbourhood, some leavers and joiners."""
    rng = np.random.default_rng(seed)
    st = PlanState.from_frames(assignments, branches, policy)
    act = assignments[assignments["branch_id"] != ""].reset_index(drop=True)
    ids = act["member_id"].astype(str).to_numpy()
    xy = to_metres(act["lon"].to_numpy(), act["lat"].to_numpy())
    dz = act["district_zh"].to_numpy()
    # targets prepared up front (not timed): another member's home plus 300 m noise, same district label
    tgt = rng.integers(0, len(ids), count)
    txy = xy[tgt] + rng.normal(0, 300, (count, 2))
    tll = to_lonlat(txy[:, 0], txy[:, 1])
    who = rng.integers(0, len(ids), count)
    kind = rng.random(count)
    times = np.zeros(count)
    actions: dict[str, int] = {}
    worst = 0
    for k in range(count):
        mid = ids[who[k]]
        t0 = time.perf_counter()
        if kind[k] < 0.01:
            r = st.relocate(mid, lon=None, lat=None, district_zh=None, geo_status="out_of_city")
        elif kind[k] < 0.02:
            r = st.relocate(mid, lon=None, lat=None, district_zh=None, status="lost_contact")
        elif kind[k] < 0.04:
            r = st.relocate(f"J{k:06d}", lon=float(tll[k, 0]), lat=float(tll[k, 1]), district_zh=str(dz[tgt[k]]))
        else:
            r = st.relocate(mid, lon=float(tll[k, 0]), lat=float(tll[k, 1]), district_zh=str(dz[tgt[k]]))
        times[k] = time.perf_counter() - t0
        actions[r.action] = actions.get(r.action, 0) + 1
        worst = max(worst, len(r.changes))
        if k % 500 == 0 and st.limit_violations():
            raise AssertionError(f"relocation {k}: branches outside limits: {st.limit_violations()[:5]}")
    st.check()
    ms = times * 1000
    return {
        "relocations": count, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()), "actions": actions, "most_changes_in_one_call": worst,
        "violations_at_end": len(st.limit_violations()), "events": len(st.events),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--share", type=float, default=0.05)
    ap.add_argument("--joiners", type=int, default=300)
    ap.add_argument("--relocations", type=int, default=10_000)
    ap.add_argument("--curve", metavar="DIR", help="also sweep move budgets and write curve.csv/curve.png to DIR")
    args = ap.parse_args()
    policy = Policy()

    t = time.perf_counter()
    members, source = load_roster()
    print(f"roster: {source}: {len(members)} rows, {(members['status'] == 'active').sum()} active")
    a0, b0, rep0 = allocate(members, policy)
    print(f"starting plan: {len(b0)} branches, objective {rep0['objective_m'] / 1000:.1f} km ({time.perf_counter() - t:.1f} s)")

    m2, n_moved_house, where = perturb(members, args.share, args.joiners, args.seed)
    n_new = int((~m2["member_id"].isin(members["member_id"])).sum())
    print(f"perturbation: {n_moved_house} members moved house, {n_new} joined in {where}")

    t = time.perf_counter()
    r = rebalance(m2, a0, policy, current_branches=b0)
    secs = time.perf_counter() - t
    rep = r.report
    vb, va = rep["violations_before"], rep["violations_after"]
    limit = 1.5 * (rep["relocated"] + rep["joined"])
    print(f"rebalance (defaults, move penalty {rep['move_penalty_m']:.0f} m): {secs:.1f} s")
    vn = rep["violations_without_rebalance"]
    print(f"  violations before: {vb['total']} (over {vb['over_max']}, under {vb['under_min']}, under_full {vb['under_full']});"
          f" if newcomers just joined their nearest branch: {vn['total']} (over {vn['over_max']})"
          f"  after: {va['total']}  -> {'FIXED' if va['total'] == 0 else 'NOT FIXED'}")
    print(f"  moved {rep['moved']} existing members {rep['moves_by_reason']}; placed {rep['joined']} new;"
          f" relocated detected {rep['relocated']}")
    print(f"  moved {rep['moved']} vs 1.5 x (relocated {rep['relocated']} + joined {rep['joined']}) = {limit:.0f}"
          f"  -> {'OK' if rep['moved'] <= limit else 'OVER'}  (counting placements too: {rep['moved'] + rep['joined']})")
    t = time.perf_counter()
    _, bs, reps = allocate(m2, policy)
    ss = time.perf_counter() - t
    d_reb, d_fs = rep["objective_m"], float(reps["objective_m"])
    diff = (d_reb - d_fs) / d_fs * 100
    print(f"  total distance: rebalanced {d_reb / 1000:.1f} km ({rep['n_branches']} branches) vs from-scratch"
          f" {d_fs / 1000:.1f} km ({len(bs)} branches, {ss:.1f} s): {diff:+.2f}%  -> {'OK' if diff <= 1.0 else 'OVER 1%'}")
    print(f"  distance mean/p90/max before {rep['distance_before']['mean']:.0f}/{rep['distance_before']['p90']:.0f}/"
          f"{rep['distance_before']['max']:.0f} m, after {rep['distance_after']['mean']:.0f}/"
          f"{rep['distance_after']['p90']:.0f}/{rep['distance_after']['max']:.0f} m")

    if args.curve:
        from geoalloc.curve import format_curve, trade_off_curve, write_curve

        t = time.perf_counter()
        df = trade_off_curve(m2, a0, policy, [0, 25, 50, 100, 200, 300, 400, 600, 1000], current_branches=b0)
        print(f"trade-off curve ({time.perf_counter() - t:.1f} s):")
        print(format_curve(df))
        print(f"  written: {write_curve(df, args.curve)}")

    lat = relocation_latency(r.assignments, r.branches, policy, args.relocations, args.seed)
    print(f"relocations: {lat['relocations']} in a row on {len(r.branches)} branches: p50 {lat['p50_ms']:.2f} ms,"
          f" p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.1f} ms -> {'OK' if lat['p99_ms'] < 20 else 'OVER 20 ms'}")
    print(f"  actions {lat['actions']}; most members changed by one call {lat['most_changes_in_one_call']};"
          f" branches outside limits at the end: {lat['violations_at_end']}; events recorded {lat['events']}")


if __name__ == "__main__":
    main()
