"""Today's roster against the current plan, in units: who is new, who moved house, who left.

A unit is what the rules keep together (:func:`geoalloc.rules.unit_keys`): a member, a weighted
row or a family. Its demand is the members it stands for, its full count their full members.
A family whose rows sit in different branches of the current plan belongs to the branch that
holds most of it; the others move to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.projection import to_metres, zone_of_region, zones_of
from geoalloc.rules import (
    Policy,
    branch_region as branch_region_of,
    can_stand_alone,
    full_counts,
    region_city,
    region_district,
    region_keys,
    unassigned_reasons,
    unit_keys,
    weights,
)
from geoalloc.solver.rebalance.centres import check_places, region_centres
from geoalloc.solver.rebalance.region import Region

DEFAULT_RELOCATED_M = 200.0  # a unit whose point moved further than this has a new address


@dataclass
class Prepared:
    """Row-level facts (``row_*``, for the output tables and the moves) and unit-level facts
    (the rest, for the solver). ``row_unit`` is -1 for rows not allocated."""

    members: pd.DataFrame
    ids: NDArray[np.object_]
    active: NDArray[np.bool_]  # row is to be allocated
    row_unit: NDArray[np.int64]
    row_xy: NDArray[np.float64]
    row_cur_bid: NDArray[np.object_]  # current branch per row (None when none or not allocated)
    row_new: NDArray[np.bool_]  # active row with no current branch
    removed: NDArray[np.bool_]  # had a branch, no longer allocated
    reasons: NDArray[np.object_]  # why a row is not allocated ("" when it is)
    # units
    xy: NDArray[np.float64]
    demand: NDArray[np.int64]
    full: NDArray[np.int64]
    frozen: NDArray[np.bool_]
    region: NDArray[np.int64]
    cur_bid: NDArray[np.object_]
    relocated: NDArray[np.bool_]
    new: NDArray[np.bool_]
    region_names: list[str]
    site_xy: dict[str, NDArray[np.float64]]  # current branch -> site
    branch_region: dict[str, int]
    frozen_branches: set[str]
    notes: list[str]
    joined: dict[int, int] = field(default_factory=dict)  # tiny region -> the region it joined
    city_zones: dict[str, int] = field(default_factory=dict)  # city_zh -> the zone its points are in

    def zone(self, region: str) -> int:
        """The UTM zone of a region's points (and sites): its city's, as allocate projects them."""
        return zone_of_region(region, self.city_zones)


def _col(df: pd.DataFrame, name: str, default: object) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([default] * len(df), index=df.index)


def _medoid(pts: NDArray[np.float64]) -> NDArray[np.float64]:
    if len(pts) > 300:
        pts = pts[:: len(pts) // 300]
    d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1]).sum(axis=1)
    return pts[int(np.argmin(d))].copy()


def _current(members: pd.DataFrame, current: pd.DataFrame, ids: NDArray[np.object_]) -> tuple[pd.DataFrame, NDArray[np.object_], NDArray[np.bool_]]:
    cur = current.copy()
    cur["member_id"] = cur["member_id"].astype(str)
    cur = cur.drop_duplicates("member_id", keep="last").set_index("member_id")
    bid = cur["branch_id"].astype(object).where(cur["branch_id"].notna(), None)
    bid = bid.map(lambda b: None if b is None or str(b).strip() == "" else str(b))
    cur_bid = pd.Series(ids).map(bid).astype(object).to_numpy()
    cur_bid = np.array([b if isinstance(b, str) else None for b in cur_bid], dtype=object)
    return cur, cur_bid, pd.Series(ids).isin(cur.index).to_numpy()


def prepare(
    members: pd.DataFrame,
    current: pd.DataFrame,
    policy: Policy,
    frozen_branches: set[str] | frozenset[str],
    current_branches: pd.DataFrame | None,
    relocated_min_m: float = DEFAULT_RELOCATED_M,
) -> Prepared:
    """Read today's roster and the current plan into rows and units (errors name the row)."""
    for c in ("member_id", "lon", "lat"):
        if c not in members.columns:
            raise ValueError(f"members: missing column {c!r}")
    for c in ("member_id", "branch_id"):
        if c not in current.columns:
            raise ValueError(f"current assignments: missing column {c!r}")
    members = members.reset_index(drop=True).copy()
    ids = members["member_id"].astype(str).to_numpy(dtype=object)
    dup = pd.Series(ids).duplicated()
    if dup.any():
        raise ValueError(f"members: row {int(np.flatnonzero(dup)[0]) + 2}: member_id {ids[dup.to_numpy()][0]!r} is duplicated")
    lon = pd.to_numeric(members["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(members["lat"], errors="coerce").to_numpy(float)
    reasons = unassigned_reasons(members, cross_district=policy.cross_district)
    active = reasons == ""
    # each row in its city's zone, as allocate projects it
    row_city = _col(members, "city_zh", "").to_numpy(dtype=object)
    row_zone = zones_of(row_city, lon)
    city_zones = {str(c): int(z) for c, z in zip(row_city, row_zone) if isinstance(c, str) and c}
    row_xy = np.full((len(members), 2), np.nan)
    if active.any():
        row_xy[active] = to_metres(lon[active], lat[active], row_zone[active])
    region_of_row, names = region_keys(members, policy)
    frozen_row = pd.to_numeric(_col(members, "frozen", 0), errors="coerce").fillna(0).astype(int).to_numpy() > 0

    cur, row_cur_bid, in_current = _current(members, current, ids)
    has_cur = np.array([b is not None for b in row_cur_bid])
    row_new = active & (~in_current | ~has_cur)
    removed = ~active & has_cur
    row_cur_bid[~active] = None
    has_cur &= active

    # rows whose address changed: point moved (when the old point is known) or district changed
    row_reloc = np.zeros(len(members), dtype=bool)
    if {"lon", "lat"} <= set(cur.columns):
        olon = pd.Series(ids).map(pd.to_numeric(cur["lon"], errors="coerce")).to_numpy(float)
        olat = pd.Series(ids).map(pd.to_numeric(cur["lat"], errors="coerce")).to_numpy(float)
        known = active & ~row_new & np.isfinite(olon) & np.isfinite(olat)
        if known.any():
            oxy = to_metres(olon[known], olat[known], row_zone[known])
            row_reloc[np.flatnonzero(known)[np.hypot(*(oxy - row_xy[known]).T) > relocated_min_m]] = True
    if "district_zh" in cur.columns and "district_zh" in members.columns:
        od = pd.Series(ids).map(cur["district_zh"]).astype(object).to_numpy()
        nd = members["district_zh"].astype(object).to_numpy()
        row_reloc |= active & ~row_new & pd.notna(od) & pd.notna(nd) & (od.astype(str) != nd.astype(str))

    # units: families and weighted rows, over the rows to allocate
    act = np.flatnonzero(active)
    codes, _ = pd.factorize(unit_keys(members.iloc[act]))
    nu = int(codes.max()) + 1 if len(codes) else 0
    row_unit = np.full(len(members), -1, dtype=np.int64)
    row_unit[act] = codes
    w, fc = weights(members), full_counts(members)
    demand = np.bincount(codes, weights=w[act], minlength=nu).astype(np.int64)
    full = np.bincount(codes, weights=fc[act], minlength=nu).astype(np.int64)
    xy = np.zeros((nu, 2))
    if nu:
        xy[:, 0] = np.bincount(codes, weights=row_xy[act, 0], minlength=nu) / np.bincount(codes, minlength=nu)
        xy[:, 1] = np.bincount(codes, weights=row_xy[act, 1], minlength=nu) / np.bincount(codes, minlength=nu)
    first = np.full(nu, -1, dtype=np.int64)
    first[codes[::-1]] = act[::-1]
    region = region_of_row[first] if nu else np.zeros(0, dtype=np.int64)
    cur_bid = np.array([None] * nu, dtype=object)
    rows_with = act[has_cur[act]]
    if len(rows_with):
        votes = pd.DataFrame({"u": row_unit[rows_with], "b": row_cur_bid[rows_with], "w": w[rows_with]})
        top = votes.groupby(["u", "b"])["w"].sum().reset_index().sort_values(["u", "w", "b"], ascending=[True, False, True])
        top = top.drop_duplicates("u")
        cur_bid[top["u"].to_numpy()] = top["b"].to_numpy()
    unit_has = np.array([b is not None for b in cur_bid], dtype=bool)
    new = ~unit_has
    relocated = np.bincount(codes, weights=row_reloc[act], minlength=nu) > 0
    frozen = (np.bincount(codes, weights=frozen_row[act], minlength=nu) > 0) & unit_has

    # current sites: given branches, else the medoid of the units that stayed
    site_xy: dict[str, NDArray[np.float64]] = {}
    if current_branches is not None and len(current_branches):
        cb = current_branches.dropna(subset=["lon", "lat"])
        reg = (cb["region"].astype(str) if "region" in cb.columns
               else cb["branch_id"].astype(str).map(branch_region_of))
        pts = to_metres(cb["lon"].to_numpy(float), cb["lat"].to_numpy(float),
                        np.array([zone_of_region(r, city_zones) for r in reg], dtype=np.int64))
        site_xy = {str(b): pts[i] for i, b in enumerate(cb["branch_id"].astype(str))}
    stay = ~new & ~relocated
    branch_region: dict[str, int] = {}
    if unit_has.any():
        for b, rows in pd.Series(np.arange(nu))[unit_has].groupby(cur_bid[unit_has]):
            rows = rows.to_numpy()
            settled = rows[stay[rows]]
            base = settled if len(settled) else rows
            branch_region[str(b)] = int(np.bincount(region[base], weights=demand[base]).argmax())
            if str(b) not in site_xy:
                site_xy[str(b)] = _medoid(xy[base])
    # address-changed units far from their site, when old points were unknown
    if not {"lon", "lat"} <= set(cur.columns):
        for u in np.flatnonzero(unit_has):
            b = cur_bid[u]
            if branch_region.get(b, region[u]) != region[u] or np.hypot(*(xy[u] - site_xy[b])) > policy.keep_radius_m:
                relocated[u] = True
    notes: list[str] = []
    host = _hosts_of_tiny_regions(region, demand, full, xy, names, policy)
    if host:
        region = np.array([host.get(int(r), int(r)) for r in region], dtype=np.int64)
        branch_region = {b: host.get(r, r) for b, r in branch_region.items()}
        notes.append("too small for a branch of their own, joined a neighbour: "
                     + ", ".join(f"{names[r]} -> {names[h]}" for r, h in sorted(host.items())))
    unknown = set(frozen_branches) - set(branch_region)
    if unknown:
        notes.append(f"frozen branches not in the current plan (ignored): {sorted(unknown)[:10]}")
    return Prepared(
        members, ids, active, row_unit, row_xy, row_cur_bid, row_new, removed, reasons,
        xy, demand, full, frozen, region, cur_bid, relocated, new, names,
        site_xy, branch_region, set(frozen_branches) & set(branch_region), notes, host, city_zones,
    )


def _hosts_of_tiny_regions(region: NDArray[np.int64], demand: NDArray[np.int64], full: NDArray[np.int64],
                           xy: NDArray[np.float64], names: list[str], policy: Policy) -> dict[int, int]:
    """{tiny region: the region it joins} for regions whose members cannot form a branch alone
    (as a fresh plan joins them, :func:`geoalloc.solver.form.build_units`): a themed one joins its
    district's residential region, a district the nearest district of its own city that can."""
    if policy.cross_district or not len(region):
        return {}
    m = len(names)
    dem = np.bincount(region, weights=demand, minlength=m)
    ful = np.bincount(region, weights=full, minlength=m)
    live = dem > 0
    tiny = [r for r in range(m) if live[r] and not can_stand_alone(int(dem[r]), int(ful[r]), policy)]
    if not tiny:
        return {}
    count = np.maximum(np.bincount(region, minlength=m), 1)
    centre = np.stack([np.bincount(region, weights=xy[:, 0], minlength=m) / count,
                       np.bincount(region, weights=xy[:, 1], minlength=m) / count], axis=1)
    able = [r for r in range(m) if live[r] and r not in tiny]
    out: dict[int, int] = {}
    for r in tiny:
        base = region_district(names[r])
        same = [h for h in able if names[h] == names[r].split("·", 1)[0] and names[h] != names[r]]
        city = region_city(names[r])
        near = [h for h in able if region_city(names[h]) == city and region_district(names[h]) != base]
        pool = same or near
        if pool:
            out[r] = min(pool, key=lambda h: float(np.hypot(*(centre[h] - centre[r]))))
    return out


def region_problems(prep: Prepared, policy: Policy, keep_threshold: float | None = None,
                    ) -> tuple[list[Region], list[NDArray[np.int64]]]:
    """One :class:`Region` per region name with the free units and non-frozen sites; unit indices.

    A unit whose current branch lies in another region (they moved district) belongs to their
    new region and must move, unless frozen, or, under a tight move budget (``keep_threshold``
    in metres), unless moving would save them less than that: then they are treated as
    members of their branch's region and stay.
    """
    regions, index = [], []
    in_frozen_branch = np.array([b in prep.frozen_branches for b in prep.cur_bid], dtype=bool)
    free = ~in_frozen_branch
    region = prep.region.copy()
    trees: dict[int, cKDTree | None] = {}
    for i in np.flatnonzero(free & ~prep.new):
        b = prep.cur_bid[i]
        if b is None or prep.branch_region[b] == region[i]:
            continue
        keep = bool(prep.frozen[i])
        if not keep and keep_threshold is not None:
            r = int(region[i])
            if r not in trees:
                pts = [prep.site_xy[x] for x, rr in prep.branch_region.items() if rr == r and x not in prep.frozen_branches]
                trees[r] = cKDTree(np.array(pts)) if pts else None
            d_old = float(np.hypot(*(prep.xy[i] - prep.site_xy[b])))
            tree = trees[r]
            d_new = float(tree.query(prep.xy[i])[0]) if tree is not None else 0.0
            keep = d_old - d_new < keep_threshold
        if keep:
            region[i] = prep.branch_region[b]
    free_demand = np.bincount(region[free], weights=prep.demand[free], minlength=len(prep.region_names)).astype(np.float64)
    current_points: dict[int, list[NDArray[np.float64]]] = {}
    for b, rr in prep.branch_region.items():
        if b not in prep.frozen_branches:
            current_points.setdefault(rr, []).append(prep.site_xy[b])
    count = np.maximum(np.bincount(region[free], minlength=len(prep.region_names)), 1)
    middle = np.stack([np.bincount(region[free], weights=prep.xy[free, 0], minlength=len(prep.region_names)) / count,
                       np.bincount(region[free], weights=prep.xy[free, 1], minlength=len(prep.region_names)) / count],
                      axis=1)
    frozen = sorted(prep.frozen_branches)
    centres = region_centres(policy, prep.region_names, prep.joined, free_demand, middle, current_points,
                             [prep.site_xy[b] for b in frozen], [prep.zone(n) for n in prep.region_names],
                             [prep.zone(prep.region_names[prep.branch_region[b]]) for b in frozen])
    check_places(centres, prep.region_names, free_demand, policy)
    targets = branch_targets(prep, policy)
    for r, name in enumerate(prep.region_names):
        mem = np.flatnonzero(free & (region == r))
        bids = sorted(b for b, rr in prep.branch_region.items() if rr == r and b not in prep.frozen_branches)
        pos = {b: j for j, b in enumerate(bids)}
        cur_site = np.array([pos.get(prep.cur_bid[i], -1) if prep.cur_bid[i] is not None else -1 for i in mem], dtype=np.int64)
        pinned = prep.frozen[mem] & (cur_site >= 0)
        pen = (~prep.relocated[mem] & ~prep.new[mem]).astype(float)
        sxy = np.array([prep.site_xy[b] for b in bids]).reshape(-1, 2)
        foreign = int(sum(1 for i, c in zip(mem, cur_site) if c < 0 and prep.cur_bid[i] is not None))
        regions.append(Region(name, prep.xy[mem], prep.demand[mem], prep.full[mem], cur_site, pinned, pen, sxy,
                              list(bids), policy, foreign, centres[r] if centres is not None else None,
                              targets.get(r) if targets is not None else None))
        index.append(mem)
    return regions, index


def branch_targets(prep: Prepared, policy: Policy) -> dict[int, int] | None:
    """The planner's branch count per region (``--branches N|fewest`` or ``--target-size``), by
    the rule a fresh plan uses (:func:`geoalloc.solver.form.branch_counts`: ``N`` spread over the
    regions in proportion to members), less the frozen branches already there. None when the
    policy leaves the count to its default: a rebalance then only opens branches where a region
    has fewer than that default would give, and never merges healthy ones.

    Raises ValueError (naming the regions) when the count asked for cannot meet the limits.
    """
    if policy.n_branches is None and policy.target_size is None:
        return None
    from geoalloc.solver.form import Unit, branch_counts
    from geoalloc.solver.problem import Problem

    able = [r for r in sorted(set(prep.region.tolist()))
            if can_stand_alone(int(prep.demand[prep.region == r].sum()), int(prep.full[prep.region == r].sum()), policy)]
    if not able:
        return {}
    problem = Problem(xy=prep.xy, demand=prep.demand, full=np.minimum(prep.full, prep.demand), region=prep.region,
                      region_names=prep.region_names)
    units = [Unit([r], np.flatnonzero(prep.region == r), prep.region_names[r], []) for r in able]
    counts = branch_counts(problem, units, policy)
    frozen = pd.Series([prep.branch_region[b] for b in prep.frozen_branches], dtype=np.int64).value_counts()
    return {r: max(1, c - int(frozen.get(r, 0))) for r, c in zip(able, counts)}
