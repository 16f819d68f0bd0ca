"""Service centres (党群服务中心) in a rebalance: where each region's branches may meet.

With sites in the policy (:mod:`geoalloc.sites`) a branch meets only at a centre of its
district (any centre with ``cross_district``), and a centre holds at most ``capacity``
branches. Regions are solved independently (and perhaps on other machines), so a centre's
capacity is shared out before they run (:func:`region_centres`): frozen branches at it keep
their places, the regions that meet there now keep theirs, each region then gets the places
its members need at least, and what is left goes in proportion to members. A region that cannot get the places its members
need (``ceil(members / max_size)``) stops the rebalance with an error naming it, as allocate does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.projection import SHENZHEN_ZONE
from geoalloc.rules import Policy, region_district
from geoalloc.sites import site_points

AT_SITE_M = 1.0  # a meeting point this close to a centre is at it (points are the centres' own)


@dataclass
class Centres:
    """The centres one region may use and how many of its branches each may hold."""

    xy: NDArray[np.float64]  # (s, 2) metres
    cap: NDArray[np.int64]  # (s,) places for this region's branches


def at_centre(points: NDArray[np.float64], centres: NDArray[np.float64]) -> NDArray[np.int64]:
    """The centre each point sits at (-1: none)."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    if not len(points) or not len(centres):
        return np.full(len(points), -1, dtype=np.int64)
    d, idx = cKDTree(centres).query(points)
    return np.where(np.asarray(d) <= AT_SITE_M, np.asarray(idx), -1).astype(np.int64)


def at_centres(points: list[NDArray[np.float64]], zones: list[int], policy: Policy) -> NDArray[np.int64]:
    """:func:`at_centre` for points each in its own zone (the zone of its city, see
    :func:`geoalloc.projection.zone_of_region`): the centres are projected per zone."""
    out = np.full(len(points), -1, dtype=np.int64)
    z = np.asarray(zones, dtype=np.int64)
    for zone in np.unique(z):
        rows = np.flatnonzero(z == zone)
        out[rows] = at_centre(np.array([points[k] for k in rows]).reshape(-1, 2), site_points(policy, int(zone)))
    return out


def best_centre(pts: NDArray[np.float64], weight: NDArray[np.float64], centres: NDArray[np.float64],
                allowed: NDArray[np.bool_], near: NDArray[np.float64] | None = None) -> int:
    """The allowed centre with the least weighted distance to ``pts`` (or, with no points, the
    allowed centre nearest ``near``); -1 when none is allowed. Ties: the lowest index."""
    cand = np.flatnonzero(allowed)
    if not len(cand):
        return -1
    if not len(pts):
        if near is None:
            return int(cand[0])
        return int(cand[int(np.argmin(np.hypot(*(centres[cand] - near).T)))])
    if len(cand) > 64:  # only the centres near the members can be best
        mean = np.average(pts, axis=0, weights=weight)
        _, k = cKDTree(centres[cand]).query(mean, k=64)
        cand = np.sort(cand[np.asarray(k)])
    c = centres[cand]
    cost = (weight[:, None] * np.hypot(pts[:, None, 0] - c[None, :, 0], pts[:, None, 1] - c[None, :, 1])).sum(axis=0)
    return int(cand[int(np.argmin(cost))])


def region_centres(policy: Policy, names: list[str], joined: dict[int, int], demand: NDArray[np.float64],
                   middle: NDArray[np.float64], branch_points: dict[int, list[NDArray[np.float64]]],
                   frozen_points: list[NDArray[np.float64]], zones: list[int] | None = None,
                   frozen_zones: list[int] | None = None) -> list[Centres] | None:
    """Per region (index into ``names``): the centres it may use, with its share of their places.

    ``joined``: {tiny region: the region it joined} (the tiny region's district's centres serve
    the host); ``demand``: members to place per region, ``middle`` their mean point;
    ``branch_points``: the meeting points of each region's current (not frozen) branches;
    ``frozen_points``: those of frozen branches; ``zones``, ``frozen_zones``: the UTM zone of
    each region and of each frozen point (None: 49N). None when the policy has no sites.

    A limited centre's places go first to the branches meeting there now, then, region by
    region (largest first), the places each region needs at least (``ceil(members /
    max_size)``) at the free centres nearest its members, and the rest one at a time to the
    region with most members per place so far.
    """
    sites = policy.sites or []
    if not sites:
        return None
    m, s = len(names), len(sites)
    zones = list(zones) if zones is not None else [SHENZHEN_ZONE] * m
    xy_of = {z: site_points(policy, z) for z in set(zones)}
    districts = [{region_district(n)} for n in names]
    for tiny, host in joined.items():
        districts[host].add(region_district(names[tiny]))
    usable = np.array([[policy.cross_district or sites[k]["district_zh"] in districts[r] for k in range(s)]
                       for r in range(m)], dtype=bool).reshape(m, s) & (demand > 0)[:, None]
    limited = np.array([site.get("capacity") is not None for site in sites], dtype=bool)
    # an unlimited centre may hold every branch a region could have
    most = np.maximum(1, demand // max(policy.min_size, 1)).astype(np.int64)
    cap = np.where(usable & ~limited[None, :], most[:, None], 0).astype(np.int64)
    at = at_centres(list(frozen_points), list(frozen_zones) if frozen_zones is not None
                    else [SHENZHEN_ZONE] * len(frozen_points), policy)
    left = np.array([int(site["capacity"]) if lim else 0 for site, lim in zip(sites, limited)], dtype=np.int64)
    left -= np.bincount(at[at >= 0], minlength=s)
    left = np.maximum(left, 0)
    for r in range(m):  # the branches meeting at a centre now keep their places
        here = at_centre(np.array(branch_points.get(r, [])).reshape(-1, 2), xy_of[zones[r]])
        for k in here[here >= 0]:
            if usable[r, k] and limited[k] and left[k] > 0:
                cap[r, k] += 1
                left[k] -= 1
    need = np.where(demand > 0, np.ceil(demand / policy.max_size), 0).astype(np.int64)
    for r in sorted(range(m), key=lambda q: (-demand[q], q)):  # each region's least, near its members
        while cap[r].sum() < need[r]:
            free = np.flatnonzero(usable[r] & limited & (left > 0))
            if not len(free):
                break
            k = int(free[int(np.argmin(np.hypot(*(xy_of[zones[r]][free] - middle[r]).T)))])
            cap[r, k] += 1
            left[k] -= 1
    for k in np.flatnonzero(limited):  # the rest in proportion to members
        users = np.flatnonzero(usable[:, k])
        while left[k] > 0 and len(users):
            best = max(users, key=lambda q: (demand[q] / (cap[q].sum() + 1), -q))
            cap[best, k] += 1
            left[k] -= 1
    out = []
    for q in range(m):
        keep = usable[q] & (cap[q] > 0)
        out.append(Centres(xy_of[zones[q]][keep], cap[q, keep]))
    return out


def check_places(centres: list[Centres] | None, names: list[str], demand: NDArray[np.float64], policy: Policy) -> None:
    """Raise ValueError naming each region whose centres hold fewer branches than its members need."""
    if centres is None:
        return
    short = []
    for r, c in enumerate(centres):
        need = math.ceil(float(demand[r]) / policy.max_size) if demand[r] > 0 else 0
        if need > int(c.cap.sum()):
            short.append(f"{names[r]}: {int(demand[r])} members need at least {need} branches of at most "
                         f"{policy.max_size}, but its service centres hold {int(c.cap.sum())}")
    if short:
        raise ValueError("too few places at the service centres: " + "; ".join(short))


def off_centre(points: dict[str, NDArray[np.float64]], district: dict[str, str], policy: Policy,
               zone: dict[str, int] | None = None) -> list[str]:
    """Branches (ids, sorted) that do not meet at a centre of their district, or meet at one
    beyond its capacity (counted in id order); ``zone``: each branch's UTM zone (default 49N).
    Empty without sites."""
    sites = policy.sites or []
    if not sites or not points:
        return []
    ids = sorted(points)
    at = at_centres([points[b] for b in ids], [(zone or {}).get(b, SHENZHEN_ZONE) for b in ids], policy)
    used = np.zeros(len(sites), dtype=np.int64)
    out = []
    for b, k in zip(ids, at):
        ok = k >= 0 and (policy.cross_district or sites[k]["district_zh"] == district.get(b))
        if ok:
            used[k] += 1
            cap = sites[k].get("capacity")
            ok = cap is None or used[k] <= int(cap)
        if not ok:
            out.append(b)
    return out


def resite(points: dict[str, NDArray[np.float64]], district: dict[str, str], members: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]],
           keep: set[str], policy: Policy, zone: dict[str, int] | None = None) -> dict[str, NDArray[np.float64]]:
    """Meeting points with every branch not in ``keep`` (frozen) moved, without moving anyone, to
    the free centre of its district best for its members (``members``: points, weights), largest
    first; a branch for which no centre has a place left keeps its point (the caller says so)."""
    sites = policy.sites or []
    zone = zone or {}
    bad = [b for b in off_centre(points, district, policy, zone) if b not in keep]
    if not bad:
        return dict(points)
    ok = {b: p for b, p in points.items() if b not in bad}
    at = at_centres(list(ok.values()), [zone.get(b, SHENZHEN_ZONE) for b in ok], policy)
    free = np.array([10**9 if s.get("capacity") is None else int(s["capacity"]) for s in sites], dtype=np.int64)
    free -= np.bincount(at[at >= 0], minlength=len(sites))
    out = dict(points)
    for b in sorted(bad, key=lambda q: (-float(members.get(q, (None, np.zeros(0)))[1].sum()), q)):
        pts, w = members.get(b, (np.zeros((0, 2)), np.zeros(0)))
        allowed = (free > 0) & np.array([policy.cross_district or s["district_zh"] == district.get(b) for s in sites])
        xy = site_points(policy, zone.get(b, SHENZHEN_ZONE))
        k = best_centre(pts, w, xy, allowed, points[b])
        if k >= 0:
            out[b] = xy[k].copy()
            free[k] -= 1
    return out


def unit_candidates(policy: Policy, names: list[str], regions: list[int], joined: dict[int, int],
                    p: int, zone: int = SHENZHEN_ZONE) -> NDArray[np.float64] | None:
    """Candidate sites for a bound over ``regions`` with ``p`` branches: every centre they may
    use, repeated as often as it may hold branches (at most ``p``), in ``zone`` (the regions');
    None without sites."""
    sites = policy.sites or []
    if not sites:
        return None
    districts = {region_district(names[r]) for r in regions}
    districts |= {region_district(names[t]) for t, h in joined.items() if h in regions}
    xy = site_points(policy, zone)
    rows = [k for k, s in enumerate(sites) if policy.cross_district or s["district_zh"] in districts]
    copies = [min(p, int(sites[k]["capacity"] or p)) for k in rows]
    return np.repeat(xy[rows], copies, axis=0).reshape(-1, 2)
