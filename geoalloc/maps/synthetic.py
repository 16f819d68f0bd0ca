"""Synthetic plan frames for map tests and the map benchmark, without running the solver.

Why not the real pipeline: the map's size and speed depend on how many members and
branches it draws, not on how good the plan is, and tests must not wait for an optimiser.
Members are scattered around subdistrict seeds of the real gazetteer, grouped per district
by k-means, so branch sizes vary and some fall under or over the limits, as in real life.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.cluster.vq import kmeans2

from geoalloc.districts import subdistricts
from geoalloc.model import GeoPrecision
from geoalloc.projection import to_lonlat, to_metres

_PRECISION_MIX = (
    (GeoPrecision.EXACT.value, 0.30),
    (GeoPrecision.LANDMARK.value, 0.35),
    (GeoPrecision.COMMUNITY.value, 0.25),
    (GeoPrecision.SUBDISTRICT.value, 0.08),
    (GeoPrecision.DISTRICT.value, 0.02),
)


def synthetic_plan(n_members: int = 400, seed: int = 0, target_size: int = 30,
                   n_inactive: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(assignments, branches, report) shaped like a plan directory's files."""
    rng = np.random.default_rng(seed)
    seeds = subdistricts()
    lon_col = next(c for c in seeds.columns if c.endswith("lon"))
    lat_col = next(c for c in seeds.columns if c.endswith("lat"))
    dist_col = "district_zh" if "district_zh" in seeds.columns else next(c for c in seeds.columns if "district" in c)
    pick = rng.integers(0, len(seeds), n_members)
    centre = to_metres(seeds[lon_col].to_numpy()[pick], seeds[lat_col].to_numpy()[pick])
    xy = centre + rng.normal(0, 900, size=(n_members, 2))
    lonlat = to_lonlat(xy[:, 0], xy[:, 1])
    district = seeds[dist_col].to_numpy()[pick].astype(str)
    labels = [str(k) for k, _ in _PRECISION_MIX]
    probs = np.array([float(v) for _, v in _PRECISION_MIX])
    precision = rng.choice(labels, size=n_members, p=probs / probs.sum())
    n_inactive = n_inactive if n_inactive is not None else max(1, n_members // 100)
    status = np.array(["active"] * n_members, dtype=object)
    inactive = rng.choice(n_members, size=min(n_inactive, n_members), replace=False)
    status[inactive] = rng.choice(["lost_contact", "transfer_out"], size=len(inactive))

    branch_of = np.array([""] * n_members, dtype=object)
    site_rows: list[tuple[str, int, str]] = []  # branch id, site member, district
    for d in sorted(set(district)):
        idx = np.flatnonzero((district == d) & (status == "active"))
        if len(idx) == 0:
            continue
        k = max(1, math.ceil(len(idx) / target_size))
        k = min(k, len(idx))
        cent, lab = kmeans2(xy[idx], k, minit="++", seed=int(rng.integers(1 << 31)))
        for j in range(k):
            members = idx[lab == j]
            if len(members) == 0:
                continue
            bid = f"{d}-{len(site_rows) + 1:03d}"
            branch_of[members] = bid
            site = members[np.argmin(np.linalg.norm(xy[members] - cent[j], axis=1))]  # medoid-ish
            site_rows.append((bid, int(site), str(d)))

    site_xy = {bid: xy[s] for bid, s, _ in site_rows}
    distance = np.array([np.linalg.norm(xy[i] - site_xy[b]) if b else np.nan for i, b in enumerate(branch_of)])
    assignments = pd.DataFrame({
        "member_id": [f"M{i:05d}" for i in range(n_members)],
        "branch_id": branch_of,
        "distance_m": np.round(distance, 1),
        "district_zh": district,
        "lon": np.round(lonlat[:, 0], 6),
        "lat": np.round(lonlat[:, 1], 6),
        "geo_precision": precision,
        "full_member": (rng.random(n_members) < 0.9).astype(int),
        "status": status,
    })
    assigned = assignments[assignments["branch_id"] != ""]
    stats = assigned.groupby("branch_id").agg(size=("member_id", "size"), n_full=("full_member", "sum"),
                                              mean_distance_m=("distance_m", "mean"),
                                              max_distance_m=("distance_m", "max"))
    branches = pd.DataFrame({
        "branch_id": [b for b, _, _ in site_rows],
        "lon": [round(float(lonlat[s, 0]), 6) for _, s, _ in site_rows],
        "lat": [round(float(lonlat[s, 1]), 6) for _, s, _ in site_rows],
        "district_zh": [d for _, _, d in site_rows],
    }).join(stats, on="branch_id")
    branches["joint"] = 0
    branches = branches[["branch_id", "lon", "lat", "district_zh", "size", "n_full", "mean_distance_m",
                         "max_distance_m", "joint"]]
    report = {
        "objective_m": float(np.nansum(distance)),
        "lower_bound_m": float(np.nansum(distance)) * 0.97,
        "gap": 0.03,
        "n_members": n_members,
        "n_assigned": int(len(assigned)),
        "n_unassigned": int(n_members - len(assigned)),
        "n_branches": int(len(branches)),
        "min_size": 3,
        "max_size": 50,
        "seconds": 0.0,
        "unassigned": [{"member_id": m, "status": s} for m, s in
                       assignments.loc[assignments["branch_id"] == "", ["member_id", "status"]].itertuples(index=False)],
        "notes": ["synthetic plan for map tests"],
    }
    return assignments, branches, report
