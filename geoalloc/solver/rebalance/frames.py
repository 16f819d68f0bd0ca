"""Region plans back into plan-directory tables (one row per roster row), and the moves.

Units are expanded to their rows; sizes are members (weights counted), as everywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.model import MoveReason
from geoalloc.plan_diff import violations
from geoalloc.projection import to_lonlat
from geoalloc.rules import (
    Policy,
    branch_region,
    full_counts,
    full_flags,
    region_city,
    region_district,
    statuses,
    weights,
)
from geoalloc.solver.rebalance.centres import resite
from geoalloc.solver.rebalance.prepare import Prepared, _col
from geoalloc.solver.rebalance.region import K_ARCS, Region, RegionPlan
from geoalloc.tables import ASSIGNMENT_COLUMNS, BRANCH_COLUMNS, MOVE_COLUMNS

Frames = tuple[pd.DataFrame, pd.DataFrame]


def next_ids(existing: set[str], prefix: str, count: int) -> list[str]:
    """``count`` unused branch ids ``prefix-NNN``, lowest numbers first."""
    used: set[int] = set()
    for b in existing:
        if b.startswith(prefix + "-"):
            tail = b[len(prefix) + 1 :]
            if tail.isdigit():
                used.add(int(tail))
    out: list[str] = []
    k = 1
    while len(out) < count:
        if k not in used:
            out.append(f"{prefix}-{k:03d}")
        k += 1
    return out


def zero_move_frames(prep: Prepared, policy: Policy) -> Frames:
    """The zero-move plan: everyone stays, leavers go, new units join the nearest branch with room.

    A region with newcomers but no branch gets one at the first newcomer's home (reported as a
    violation when it is too small).
    """
    bid_of = prep.cur_bid.copy()
    sites = dict(prep.site_xy)
    branch_reg = {b: prep.region_names[r] for b, r in prep.branch_region.items()}
    size: dict[str, int] = {}
    for b, d in zip(bid_of, prep.demand):
        if b is not None:
            size[b] = size.get(b, 0) + int(d)
    for r, name in enumerate(prep.region_names):
        todo = np.flatnonzero(prep.new & (prep.region == r))
        if not len(todo):
            continue
        bids = [b for b, rr in prep.branch_region.items() if rr == r and b not in prep.frozen_branches]
        if not bids:
            b = next_ids(set(sites), name, 1)[0]
            sites[b] = prep.xy[todo[0]].copy()
            branch_reg[b] = name
            bids = [b]
        pts = np.array([sites[b] for b in bids]).reshape(-1, 2)
        _, idx = cKDTree(pts).query(prep.xy[todo], k=min(len(bids), K_ARCS))
        idx = np.asarray(idx).reshape(len(todo), -1)
        for t, i in enumerate(todo):
            d = int(prep.demand[i])
            choice = next((bids[j] for j in idx[t] if size.get(bids[j], 0) + d <= policy.max_size), bids[int(idx[t][0])])
            bid_of[i] = choice
            size[choice] = size.get(choice, 0) + d
    if policy.sites:  # meeting points moved to service centres: nobody moves for that
        live = sorted({b for b in bid_of if b is not None})
        members = {b: (prep.xy[bid_of == b], prep.demand[bid_of == b].astype(float)) for b in live}
        district = {b: region_district(branch_reg[b]) for b in live}
        zone = {b: prep.zone(branch_reg[b]) for b in live}
        sites |= resite({b: sites[b] for b in live}, district, members, prep.frozen_branches, policy, zone)
    return unit_frames(prep, bid_of, sites, branch_reg)


def plan_frames(prep: Prepared, regions: list[Region], index: list[NDArray[np.int64]], plans: list[RegionPlan]) -> Frames:
    """Plan-directory frames (assignments, branches) from the region plans + frozen branches."""
    bid_of = np.array([None] * len(prep.demand), dtype=object)
    sites: dict[str, NDArray[np.float64]] = {}
    branch_reg: dict[str, str] = {}
    existing = set(prep.branch_region)
    for reg, mem, plan in zip(regions, index, plans):
        new_ids = iter(next_ids(existing, reg.name, sum(b is None for b in plan.site_bid)))
        names = []
        for j, b in enumerate(plan.site_bid):
            b = b if b is not None else next(new_ids)
            existing.add(b)
            names.append(b)
            sites[b] = plan.site_xy[j]
            branch_reg[b] = reg.name
        if len(mem):
            bid_of[mem] = np.array(names, dtype=object)[plan.site_of]
    for b in prep.frozen_branches:
        units = np.flatnonzero(prep.cur_bid == b)
        if len(units):
            bid_of[units] = b
            sites[b] = prep.site_xy[b]
            branch_reg[b] = prep.region_names[prep.branch_region[b]]
    return unit_frames(prep, bid_of, sites, branch_reg)


def unit_frames(prep: Prepared, unit_bid: NDArray[np.object_], sites: dict[str, NDArray[np.float64]],
                branch_reg: dict[str, str]) -> Frames:
    """Frames from a branch per unit: every row of a unit goes where the unit goes."""
    row_bid = np.array([None] * len(prep.ids), dtype=object)
    has = prep.row_unit >= 0
    row_bid[has] = unit_bid[prep.row_unit[has]]
    return row_frames(prep, row_bid, sites, branch_reg)


def row_frames(prep: Prepared, row_bid: NDArray[np.object_], sites: dict[str, NDArray[np.float64]],
               branch_reg: dict[str, str]) -> Frames:
    """Frames from a branch per row (the current plan may hold a family split; a new one never does)."""
    m = prep.members
    assigned = np.array([b is not None for b in row_bid])
    site = np.full((len(row_bid), 2), np.nan)
    for i in np.flatnonzero(assigned):
        site[i] = sites[row_bid[i]]
    dist = np.where(assigned, np.round(np.hypot(*(prep.row_xy - site).T), 1), np.nan)
    a = pd.DataFrame(
        {
            "member_id": prep.ids,
            "branch_id": [b if b is not None else "" for b in row_bid],
            "distance_m": dist,
            "district_zh": _col(m, "district_zh", None).to_numpy(),
            "lon": pd.to_numeric(m["lon"], errors="coerce").to_numpy(float),
            "lat": pd.to_numeric(m["lat"], errors="coerce").to_numpy(float),
            "geo_precision": _col(m, "geo_precision", "exact").to_numpy(),
            "full_member": full_flags(m),
            "status": statuses(m),
            "weight": weights(m),
            "group_id": m["group_id"].to_numpy(),  # normalised by rules.plan_members
        }
    )[ASSIGNMENT_COLUMNS]
    rows = []
    if sites and assigned.any():
        keys = sorted(sites)
        ll = to_lonlat(np.array([sites[b][0] for b in keys]), np.array([sites[b][1] for b in keys]),
                       np.array([prep.zone(branch_reg.get(b, branch_region(b))) for b in keys], dtype=np.int64))
        aa = a[assigned].assign(_w=weights(m)[assigned], _f=full_counts(m)[assigned])
        g = aa.groupby("branch_id")
        size, nfull = g["_w"].sum(), g["_f"].sum()
        mean_d, max_d = g["distance_m"].mean(), g["distance_m"].max()
        ndist = g["district_zh"].nunique()
        for k, b in enumerate(keys):
            if b not in size.index:
                continue
            rows.append({
                "branch_id": b, "lon": round(float(ll[k, 0]), 6), "lat": round(float(ll[k, 1]), 6),
                "district_zh": region_district(branch_reg[b]), "size": int(size[b]), "n_full": int(nfull[b]),
                "mean_distance_m": round(float(mean_d[b]), 1), "max_distance_m": round(float(max_d[b]), 1),
                "joint": int(ndist[b] > 1), "region": branch_reg[b],
            })
    branches = pd.DataFrame(rows, columns=BRANCH_COLUMNS)
    if "city_zh" in m.columns:  # a national roster's plan says each row's city, as allocate's does
        a.insert(3, "city_zh", m["city_zh"].fillna("").astype(str).to_numpy())
        branches.insert(3, "city_zh", [region_city(str(r)) for r in branches["region"]])
    return a, branches


def before_frames(prep: Prepared) -> Frames:
    """The current plan seen with today's roster: leavers gone, newcomers not yet placed."""
    branch_reg = {b: prep.region_names[r] for b, r in prep.branch_region.items()}
    return row_frames(prep, prep.row_cur_bid.copy(), dict(prep.site_xy), branch_reg)


def naive_violations(prep: Prepared, before_b: pd.DataFrame, policy: Policy) -> dict[str, object]:
    """Limit violations if newcomers simply joined their nearest branch and nobody else moved."""
    b = before_b[["branch_id", "size", "n_full"]] if len(before_b) else pd.DataFrame(columns=["branch_id", "size", "n_full"])
    size = dict(zip(b["branch_id"], b["size"]))
    nfull = dict(zip(b["branch_id"], b["n_full"]))
    for r in range(len(prep.region_names)):
        todo = np.flatnonzero(prep.new & (prep.region == r))
        bids = [x for x, rr in prep.branch_region.items() if rr == r]
        if not len(todo) or not bids:
            continue
        _, idx = cKDTree(np.array([prep.site_xy[x] for x in bids])).query(prep.xy[todo], k=1)
        for i, j in zip(todo, np.atleast_1d(idx)):
            size[bids[j]] = size.get(bids[j], 0) + int(prep.demand[i])
            nfull[bids[j]] = nfull.get(bids[j], 0) + int(prep.full[i])
    frame = pd.DataFrame({"branch_id": list(size), "size": list(size.values()), "n_full": [nfull.get(x, 0) for x in size]})
    return violations(frame, policy)


def move_reasons(prep: Prepared, before_b: pd.DataFrame, after_a: pd.DataFrame, policy: Policy) -> Frames:
    """(moves of rows already in the plan, with a reason; placements of new rows)."""
    new_bid = after_a["branch_id"].to_numpy(dtype=object)
    size_before = dict(zip(before_b["branch_id"], before_b["size"])) if len(before_b) else {}
    full_before = dict(zip(before_b["branch_id"], before_b["n_full"])) if len(before_b) else {}
    live_after = set(after_a["branch_id"][after_a["branch_id"] != ""])
    rows, placed = [], []
    for i in np.flatnonzero(prep.active):
        old, nw = prep.row_cur_bid[i], new_bid[i] or None
        if prep.row_new[i]:
            if nw:
                placed.append((prep.ids[i], nw))
            continue
        if old == nw:
            continue
        if prep.relocated[prep.row_unit[i]]:
            reason = MoveReason.RELOCATED
        elif old not in live_after:
            reason = MoveReason.CLOSED_BRANCH
        elif size_before.get(old, 0) > policy.max_size:
            reason = MoveReason.OVERSIZED
        elif nw is not None and nw in size_before and (
            size_before[nw] < policy.min_size or full_before.get(nw, 0) < policy.min_full
        ):
            reason = MoveReason.UNDERSIZED
        elif size_before.get(old, 0) < policy.min_size or full_before.get(old, 0) < policy.min_full:
            reason = MoveReason.UNDERSIZED
        else:
            reason = MoveReason.IMPROVEMENT
        rows.append((prep.ids[i], old, nw or "", reason.value))
    return pd.DataFrame(rows, columns=MOVE_COLUMNS), pd.DataFrame(placed, columns=["member_id", "to_branch"])
