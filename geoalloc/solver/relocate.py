"""Relocation of one member in a live plan, instantly and touching as few others as possible.

:class:`PlanState` holds a plan in numpy arrays (no pandas in the hot path) with the open
branch sites of each district as one array. :meth:`PlanState.relocate` then:

1. a member leaving (out of the city, ``transfer_out``, ``lost_contact``) is removed and
   marked; the branch left behind is repaired if it fell below its limits;
2. a member still close to the branch (``keep_radius_m``, same district) keeps it;
3. otherwise the nearest branch with room in the member's district takes them;
4. if no nearby branch has room, only the few branches around the new home are re-solved
   (a local min-cost flow in which moves cost ``move_penalty_m``), opening a branch at the
   new home when the neighbourhood is full (with service centres in the policy, at the
   district's nearest centre with a place).

Sizes count members (a row's ``weight``), and a family (``group_id``) is one unit: they
share a home, so relocating one of them moves them all, and a local re-solve never splits them.

A repair (merge or refill) is the same local flow around the branch in trouble, tried
with and without that branch, keeping whichever breaks fewer limits at lower cost; when
the district alone cannot fix it, branches of neighbouring districts are used (a joint
branch, as the solver does for tiny districts). Every call returns every member whose
branch changed so the caller can persist them in one transaction, and appends events
(who, when, from, to, why) to :attr:`PlanState.events`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geoalloc.model import GeoStatus, MemberStatus
from geoalloc.projection import SHENZHEN_ZONE, point_to_metres, to_lonlat, to_metres, zone_of_region, zones_of
from geoalloc.rules import (
    CITY_SEP,
    THEME_SEP,
    Policy,
    district_keys,
    full_flags,
    region_city,
    region_district as district_of_region,
    unit_keys,
    weights,
)
from geoalloc.solver.rebalance.flow import V_HARD, assign_min_cost
from geoalloc.tables import ASSIGNMENT_COLUMNS, BRANCH_COLUMNS

NEAR_BRANCHES = 8  # branches looked at for a direct move
# (branches whose members a local re-solve may move, further branches that may only receive):
# tried in turn, widening only when the smaller neighbourhood cannot meet every limit
ESCALATION = ((6, 10), (16, 16), (48, 32))

Change = tuple[str, str | None, str | None]


@dataclass
class Relocation:
    """The outcome of one relocation. ``changes`` lists every member whose branch changed."""

    member_id: str
    from_branch: str | None
    to_branch: str | None
    action: str  # kept | moved | resolved | transfer_out | lost_contact | joined
    reason: str
    distance_m: float | None
    changes: list[Change] = field(default_factory=list)
    family: list[str] = field(default_factory=list)  # other members who share the home and moved with it


def _net(changes: list[Change]) -> list[Change]:
    """One entry per member: first origin to final branch, members who ended where they began dropped."""
    first: dict[str, str | None] = {}
    last: dict[str, str | None] = {}
    for m, a, b in changes:
        first.setdefault(m, a)
        last[m] = b
    return [(m, first[m], last[m]) for m in first if first[m] != last[m]]


def _memo(xy: NDArray[np.float64], lon: NDArray[np.float64], lat: NDArray[np.float64],
          ) -> dict[int, tuple[float, float, float, float]]:
    """index -> (x, y, lon, lat) for every finite point (see ``PlanState._member_ll``)."""
    ok = np.isfinite(xy).all(axis=1) & np.isfinite(lon) & np.isfinite(lat)
    return {int(i): (x, y, lo, la) for i, (x, y), lo, la in
            zip(np.flatnonzero(ok).tolist(), xy[ok].tolist(), lon[ok].tolist(), lat[ok].tolist())}


def _lonlat(memo: dict[int, tuple[float, float, float, float]], keys: list[int], xy: list[list[float]],
            zones: list[int]) -> list[tuple[float, float]]:
    """lon/lat of the points ``xy`` (metres) of ``keys``: remembered where the point is unchanged,
    projected (and remembered) otherwise; NaN for a non-finite point."""
    out: list[tuple[float, float]] = []
    miss: list[int] = []
    nan = (float("nan"), float("nan"))
    for k, (key, (x, y)) in enumerate(zip(keys, xy)):
        m = memo.get(key)
        if m is not None and m[0] == x and m[1] == y:
            out.append((m[2], m[3]))
        else:
            out.append(nan)
            if math.isfinite(x) and math.isfinite(y):
                miss.append(k)
    if miss:
        ll = to_lonlat([xy[k][0] for k in miss], [xy[k][1] for k in miss], [zones[k] for k in miss]).tolist()
        for k, (lo, la) in zip(miss, ll):
            out[k] = (lo, la)
            memo[keys[k]] = (xy[k][0], xy[k][1], lo, la)
    return out


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class PlanState:
    """An in-memory plan that answers relocations in milliseconds."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.keep_radius = policy.keep_radius_m
        self.penalty = policy.move_penalty_m
        # members (rows): weight = members a row stands for, full = its full members
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.xy = np.zeros((0, 2))
        self.w = np.zeros(0, dtype=np.int64)
        self.full = np.zeros(0, dtype=np.int64)
        self.unit: list[str] = []  # unit key per row (family or the row itself)
        self.units: dict[str, list[int]] = {}  # unit key -> its rows
        self.branch = np.zeros(0, dtype=np.int64)  # -1: none
        self.frozen = np.zeros(0, dtype=bool)
        self.mdist: list[int] = []  # district index per member (-1 unknown)
        self.status: list[str] = []
        self.precision: list[str] = []  # how the member's point is known (GeoPrecision values)
        # branches
        self.bids: list[str] = []
        self.bindex: dict[str, int] = {}
        self.site = np.zeros((0, 2))
        self.bdist: list[int] = []
        self.size: list[int] = []
        self.nfull: list[int] = []
        self.members_of: list[set[int]] = []
        self.open: list[bool] = []
        # districts and the open branch sites of each
        self.dnames: list[str] = []
        self.dindex: dict[str, int] = {}
        # the UTM zone of each district's points and sites (its city's, as allocate projects them)
        self.dzone: list[int] = []
        self.city_zones: dict[str, int] = {}  # city_zh -> zone, from the plan's rows
        self._open_sites: dict[int, tuple[NDArray[np.float64], NDArray[np.int64]] | None] = {}  # per district, see _open_sites_in
        # lon/lat of member points and branch sites as given (index -> (x, y, lon, lat)), valid while
        # the point in metres is still (x, y): member_rows/branch_rows then need no inverse projection
        # (a pyproj call costs more than the rest of a relocation's rows)
        self._member_ll: dict[int, tuple[float, float, float, float]] = {}
        self._site_ll: dict[int, tuple[float, float, float, float]] = {}
        self.events: list[dict[str, Any]] = []
        self.notes: list[str] = []

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_frames(cls, assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy) -> PlanState:
        """Load a plan (plan-directory frames). Members need lon/lat; ``frozen`` is optional."""
        st = cls(policy)
        for c in ("branch_id", "lon", "lat"):
            if c not in branches.columns:
                raise ValueError(f"branches: missing column {c!r}")
        for c in ("member_id", "branch_id", "lon", "lat"):
            if c not in assignments.columns:
                raise ValueError(f"assignments: missing column {c!r}")
        lon = pd.to_numeric(assignments["lon"], errors="coerce").to_numpy(float)
        lat = pd.to_numeric(assignments["lat"], errors="coerce").to_numpy(float)
        if "city_zh" in assignments.columns:  # a national plan: each city in its own zone
            city = assignments["city_zh"].to_numpy(dtype=object)
            st.city_zones = {str(c): int(z) for c, z in zip(city, zones_of(city, lon)) if isinstance(c, str) and c}
        # a branch's key is its region: the district, or "district·theme" for a themed branch
        key_col = "region" if "region" in branches.columns else "district_zh"
        bdz = branches[key_col].astype(str).to_numpy() if key_col in branches.columns else ["?"] * len(branches)
        bd = [st._district(str(x)) for x in bdz]
        bxy = (to_metres(branches["lon"].to_numpy(float), branches["lat"].to_numpy(float),
                         np.array([st.dzone[d] for d in bd], dtype=np.int64)) if len(branches) else np.zeros((0, 2)))
        for i, b in enumerate(branches["branch_id"].astype(str)):
            st._add_branch(b, bxy[i], bd[i])
        if len(branches):
            st._site_ll = _memo(bxy, branches["lon"].to_numpy(float), branches["lat"].to_numpy(float))
        n = len(assignments)
        ids = assignments["member_id"].astype(str).tolist()
        if len(set(ids)) != n:
            raise ValueError("assignments: member_id values must be unique")
        ok = np.isfinite(lon) & np.isfinite(lat)
        xy = np.full((n, 2), np.nan)
        w = weights(assignments)
        full = w * full_flags(assignments)
        frozen = (
            pd.to_numeric(assignments["frozen"], errors="coerce").fillna(0).astype(int).to_numpy() > 0
            if "frozen" in assignments.columns
            else np.zeros(n, bool)
        )
        status = (
            assignments["status"].astype(object).where(assignments["status"].notna(), "active").astype(str).tolist()
            if "status" in assignments.columns
            else ["active"] * n
        )
        # a member's district as its branches' regions name it ("广州市/天河区" in a national plan)
        mdz = ([d or None for d in district_keys(assignments)] if "district_zh" in assignments.columns
               else [None] * n)
        bcol = assignments["branch_id"].astype(object).where(assignments["branch_id"].notna(), "").astype(str).tolist()
        st.ids = ids
        st.index = {m: i for i, m in enumerate(ids)}
        st.precision = (assignments["geo_precision"].astype(object).where(assignments["geo_precision"].notna(), "none")
                        .astype(str).tolist() if "geo_precision" in assignments.columns else ["exact"] * n)
        st.xy = xy
        st.w = w.astype(np.int64)
        st.full = full.astype(np.int64)
        st.unit = [str(u) for u in unit_keys(assignments)]
        for i, u in enumerate(st.unit):
            st.units.setdefault(u, []).append(i)
        st.frozen = frozen
        st.status = status
        st.mdist = [st._district(d) if isinstance(d, str) and d else -1 for d in mdz]
        st.branch = np.full(n, -1, dtype=np.int64)
        for i, b in enumerate(bcol):
            if b:
                if b not in st.bindex:
                    raise ValueError(f"assignments: row {i + 2} (member_id {ids[i]!r}): branch_id {b!r} is not in branches")
                j = st.bindex[b]
                st.branch[i] = j
                st.members_of[j].add(i)
                st.size[j] += int(w[i])
                st.nfull[j] += int(full[i])
                if st.mdist[i] < 0 or THEME_SEP in st.dnames[st.bdist[j]]:
                    st.mdist[i] = st.bdist[j]  # members of a themed branch stay in its themed region
        # each member in the zone of its district (its branch's when the district is not known)
        mz = np.array([st.dzone[d] if d >= 0 else SHENZHEN_ZONE for d in st.mdist], dtype=np.int64)
        if ok.any():
            xy[ok] = to_metres(lon[ok], lat[ok], mz[ok])
        st.xy = xy
        st._member_ll = _memo(xy, lon, lat)
        for j in range(len(st.bids)):
            if st.size[j] == 0:
                st.open[j] = False
        st._open_sites.clear()
        return st

    def _district(self, name: str | None) -> int:
        if name is None:
            return -1
        if name not in self.dindex:
            self.dindex[name] = len(self.dnames)
            self.dnames.append(name)
            self.dzone.append(zone_of_region(name, self.city_zones))
        return self.dindex[name]

    def _add_branch(self, bid: str, xy: NDArray[np.float64], d: int) -> int:
        j = len(self.bids)
        self.bids.append(bid)
        self.bindex[bid] = j
        self.site = np.vstack([self.site, np.asarray(xy, float).reshape(1, 2)])
        self.bdist.append(d)
        self.size.append(0)
        self.nfull.append(0)
        self.members_of.append(set())
        self.open.append(True)
        self._open_sites.pop(d, None)
        return j

    def _open_point(self, xy: NDArray[np.float64], d: int) -> NDArray[np.float64] | None:
        """Where a branch opened for a relocation meets: the new home, or, when the policy has
        service centres, the nearest centre of the district with a place left (None: no place)."""
        sites = self.policy.sites
        if not sites:
            return xy
        from geoalloc.sites import site_points
        from geoalloc.solver.rebalance.centres import at_centre

        zone = self._zone(d)
        cxy = site_points(self.policy, zone)
        live = [j for j in range(len(self.bids)) if self.open[j] and self._zone(self.bdist[j]) == zone]
        at = at_centre(self.site[live], cxy)
        used = np.bincount(at[at >= 0], minlength=len(sites))
        district = district_of_region(self.dnames[d]) if d >= 0 else None
        ok = [k for k, s in enumerate(sites) if (self.policy.cross_district or s["district_zh"] == district)
              and (s.get("capacity") is None or used[k] < int(s["capacity"]))]
        if not ok:
            return None
        k = min(ok, key=lambda q: float(np.hypot(*(cxy[q] - xy))))
        return cxy[k].copy()

    def _new_branch_id(self, d: int) -> str:
        prefix = self.dnames[d] if d >= 0 else "branch"
        k = 1 + sum(1 for b in self.bids if b.startswith(prefix + "-"))
        while f"{prefix}-{k:03d}" in self.bindex:
            k += 1
        return f"{prefix}-{k:03d}"

    def _add_member(self, member_id: str, weight: int = 1, group_id: str = "") -> int:
        i = len(self.ids)
        self.ids.append(member_id)
        self.index[member_id] = i
        if i >= len(self.xy):  # grow by doubling
            cap = max(16, 2 * len(self.xy))
            self.xy = np.vstack([self.xy, np.full((cap - len(self.xy), 2), np.nan)])
            self.w = np.concatenate([self.w, np.ones(cap - len(self.w), np.int64)])
            self.full = np.concatenate([self.full, np.zeros(cap - len(self.full), np.int64)])
            self.branch = np.concatenate([self.branch, np.full(cap - len(self.branch), -1, np.int64)])
            self.frozen = np.concatenate([self.frozen, np.zeros(cap - len(self.frozen), bool)])
        self.w[i] = max(1, int(weight))
        self.full[i] = 0
        self.mdist.append(-1)
        self.status.append(MemberStatus.ACTIVE.value)
        self.precision.append("none")
        key = f"g:{group_id}" if group_id else f"m:{member_id}"
        self.unit.append(key)
        self.units.setdefault(key, []).append(i)
        return i

    def _family(self, i: int) -> list[int]:
        """The active rows that move with row ``i`` (its family, itself first)."""
        rows = [k for k in self.units.get(self.unit[i], [i]) if k != i and self.status[k] == MemberStatus.ACTIVE.value]
        return [i, *rows]

    def _demand(self, rows: list[int]) -> tuple[int, int]:
        """(members, full members) of some rows."""
        return int(self.w[rows].sum()), int(self.full[rows].sum())

    # -- open sites --------------------------------------------------------------------
    def _open_sites_in(self, d: int) -> tuple[NDArray[np.float64], NDArray[np.int64]] | None:
        """The open branches of district d: (site x, y as a (2, m) array, branch indices), or None.

        A district holds tens of branches: measuring to all of them is cheaper than a k-d tree
        query (which cost a relocation more than any other single step in the service's profile).
        """
        if d not in self._open_sites:
            js = np.array([j for j in range(len(self.bids)) if self.open[j] and self.bdist[j] == d], dtype=np.int64)
            self._open_sites[d] = (np.ascontiguousarray(self.site[js].T), js) if len(js) else None
        return self._open_sites[d]

    def _near(self, xy: NDArray[np.float64], d: int | None, k: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """(distances, branch indices) of the k nearest open branches, in district d (None: any)."""
        if d is None:
            js = np.array([j for j in range(len(self.bids)) if self.open[j]], dtype=np.int64)
            if not len(js):
                return np.zeros(0), np.zeros(0, np.int64)
            dd = np.hypot(*(self.site[js] - xy).T)
            o = np.argsort(dd)[:k]
            return dd[o], js[o]
        t = self._open_sites_in(d)
        if t is None:
            return np.zeros(0), np.zeros(0, np.int64)
        sxy, js = t
        dd = np.hypot(sxy[0] - xy[0], sxy[1] - xy[1])
        o = np.argsort(dd, kind="stable")[:k]
        return dd[o], js[o]

    # -- membership primitives -----------------------------------------------------------
    def _set_branch(self, i: int, j: int, changes: list[Change]) -> None:
        old = int(self.branch[i])
        if old == j:
            return
        if old >= 0:
            self.members_of[old].discard(i)
            self.size[old] -= int(self.w[i])
            self.nfull[old] -= int(self.full[i])
        if j >= 0:
            self.members_of[j].add(i)
            self.size[j] += int(self.w[i])
            self.nfull[j] += int(self.full[i])
            if not self.open[j]:
                self.open[j] = True
                self._open_sites.pop(self.bdist[j], None)
        self.branch[i] = j
        changes.append((self.ids[i], self.bids[old] if old >= 0 else None, self.bids[j] if j >= 0 else None))

    def _close_if_empty(self, j: int) -> None:
        if self.size[j] == 0 and self.open[j]:
            self.open[j] = False
            self._open_sites.pop(self.bdist[j], None)

    def _ok(self, j: int) -> bool:
        p = self.policy
        s = self.size[j]
        return s == 0 or (p.min_size <= s <= p.max_size and self.nfull[j] >= p.min_full)

    # -- local re-solve ----------------------------------------------------------------
    def _local_solve(
        self,
        inner: list[int],
        ring: list[int],
        extra_member: int | None,
        open_at: NDArray[np.float64] | None,
        drop: int | None = None,
    ) -> tuple[int, NDArray[np.int64], list[int], NDArray[np.int64]] | None:
        """Min-cost flow over the members of ``inner`` branches (+ one member) and the sites of
        ``inner`` + ``ring`` (+ a new site at ``open_at``; minus ``drop``). Ring branches only
        receive, up to their free room. Returns (cost, members, site branch list, site per member)
        where a site branch of -1 is the new site.
        """
        p = self.policy
        mem: list[int] = []
        for j in inner:
            mem.extend(sorted(self.members_of[j]))
        if extra_member is not None:
            mem.extend(k for k in self._family(extra_member) if k not in set(mem))
        if not mem:
            return None
        members = np.array(mem, dtype=np.int64)
        sites = [j for j in inner if j != drop] + [j for j in ring if j != drop]
        n_in = len([j for j in inner if j != drop])
        sxy = self.site[sites] if sites else np.zeros((0, 2))
        lo = [p.min_size] * n_in + [0] * (len(sites) - n_in)
        lof = [p.min_full] * n_in + [0] * (len(sites) - n_in)
        hi = [p.max_size] * n_in + [max(0, p.max_size - self.size[j]) for j in sites[n_in:]]
        if open_at is not None:
            sites = sites + [-1]
            sxy = np.vstack([sxy, open_at.reshape(1, 2)])
            lo.append(p.min_size)
            lof.append(p.min_full)
            hi.append(p.max_size)
        m = len(sites)
        if m == 0:
            return None
        # one unit per family: it shares a home and a branch, and is never split
        codes, _ = pd.factorize(np.array([self.unit[i] for i in mem], dtype=object))
        nu = int(codes.max()) + 1
        first = np.full(nu, -1, dtype=np.int64)
        first[codes[::-1]] = members[::-1]
        demand = np.bincount(codes, weights=self.w[members], minlength=nu).astype(np.int64)
        ufull = np.bincount(codes, weights=self.full[members], minlength=nu).astype(np.int64)
        ufrozen = np.bincount(codes, weights=self.frozen[members], minlength=nu) > 0
        units_xy = self.xy[first]
        d = np.hypot(units_xy[:, None, 0] - sxy[None, :, 0], units_xy[:, None, 1] - sxy[None, :, 1])
        cur = self.branch[first]
        site_arr = np.array(sites, dtype=np.int64)
        leave = cur[:, None] != site_arr[None, :]
        pen = np.where(cur >= 0, self.penalty, 0.0)
        cost = d + leave * pen[:, None]
        am = np.repeat(np.arange(nu, dtype=np.int64), m)
        asite = np.tile(np.arange(m, dtype=np.int64), nu)
        acost = cost.ravel()
        # frozen units stay where they are when their branch is a site
        fz = ufrozen & np.isin(cur, site_arr)
        if fz.any():
            keep = ~fz[am] | ~leave.ravel()
            am, asite, acost = am[keep], asite[keep], acost[keep]
        unit_site, total = assign_min_cost(
            am, asite, np.round(acost).astype(np.int64), ufull,
            np.array(lo, np.int64), np.array(hi, np.int64), np.array(lof, np.int64), V_HARD, demand=demand,
        )
        site_of = unit_site[codes]
        # a site left empty is closed, not short: take its minimum back out of the cost
        used = np.bincount(site_of, minlength=m) > 0
        total -= V_HARD * int(sum(max(lo[q], lof[q]) for q in range(m) if not used[q]))
        return total, members, sites, site_of

    def _apply(self, sol: tuple[int, NDArray[np.int64], list[int], NDArray[np.int64]], d: int, new_xy: NDArray[np.float64] | None, changes: list[Change]) -> int | None:
        """Apply a local solution; returns the index of a newly opened branch, if any."""
        _, members, sites, site_of = sol
        new_j: int | None = None
        if -1 in sites and (site_of == sites.index(-1)).any():
            new_j = self._add_branch(self._new_branch_id(d), np.asarray(new_xy), d)
        targets = [new_j if s == -1 else s for s in sites]
        touched = set()
        for i, q in zip(members.tolist(), site_of.tolist()):
            t = targets[q]
            if t is not None:
                old = int(self.branch[i])
                if old != t:
                    touched.add(old)
                    self._set_branch(i, int(t), changes)
        for j in touched:
            if j >= 0:
                self._close_if_empty(j)
        return new_j

    def _violations(self, sol: tuple[int, NDArray[np.int64], list[int], NDArray[np.int64]]) -> int:
        return sol[0] // V_HARD if sol[0] > 0 else 0

    def _neighbourhood(self, xy: NDArray[np.float64], d: int | None, n_inner: int, n_ring: int) -> tuple[list[int], list[int]]:
        _, js = self._near(xy, d, n_inner + n_ring)
        js = js.tolist()
        return js[:n_inner], js[n_inner:]

    @staticmethod
    def _key(sol: tuple[int, NDArray[np.int64], list[int], NDArray[np.int64]]) -> tuple[int, int]:
        return (sol[0] // V_HARD if sol[0] > 0 else 0, sol[0])

    def _search(
        self,
        xy: NDArray[np.float64],
        d: int,
        *,
        must: int | None = None,
        exclude: int | None = None,
        extra_member: int | None = None,
        drops: tuple[int | None, ...] = (None,),
        open_at: NDArray[np.float64] | None = None,
    ) -> tuple[int, NDArray[np.int64], list[int], NDArray[np.int64]] | None:
        """The first local solution that meets every limit, widening the neighbourhood (then
        crossing the district line) as needed; else the least bad one found."""
        best = None
        scopes: list[int | None] = [None] if (self.policy.cross_district or d < 0) else [d, None]
        for scope in scopes:
            for n_inner, n_ring in ESCALATION:
                inner, ring = self._neighbourhood(xy, scope, n_inner, n_ring)
                if must is not None and must not in inner:
                    inner = [must] + [j for j in inner if j != must][: n_inner - 1]
                    ring = [j for j in ring if j != must]
                if exclude is not None:
                    inner = [j for j in inner if j != exclude]
                    ring = [j for j in ring if j != exclude]
                opens: list[NDArray[np.float64] | None] = [None] if open_at is None else [None, open_at]
                for drop in drops:
                    for at in opens:
                        sol = self._local_solve(inner, ring, extra_member, at, drop=drop)
                        if sol is not None and (best is None or self._key(sol) < self._key(best)):
                            best = sol
                    if best is not None and self._key(best)[0] == 0:
                        return best
        return best

    def _repair(self, j: int, changes: list[Change]) -> None:
        """Bring branch j back within limits: refill from neighbours or merge into them."""
        if self._ok(j):
            self._close_if_empty(j)
            return
        best = self._search(self.site[j], self.bdist[j], must=j, drops=(None, j))
        if best is not None:
            self._apply(best, self.bdist[j], None, changes)
            if self._key(best)[0]:
                self.notes.append(f"branch {self.bids[j]}: limits cannot be restored locally")
        self._close_if_empty(j)

    # -- the public call ---------------------------------------------------------------
    def relocate(
        self,
        member_id: str,
        *,
        lon: float | None,
        lat: float | None,
        district_zh: str | None,
        full_member: bool | None = None,
        status: str = "active",
        geo_status: str | None = None,
        weight: int = 1,
        group_id: str = "",
        geo_precision: str = "exact",
    ) -> Relocation:
        """Apply one member's new address (or departure). See the module docstring for the rules.

        An active member's family moves with them (same home). ``weight`` and ``group_id`` are
        used for a member new to the plan; a known member keeps theirs.
        """
        member_id = str(member_id)
        changes: list[Change] = []
        known = member_id in self.index
        i = self.index[member_id] if known else self._add_member(member_id, weight, group_id)
        if not known and full_member is None:
            full_member = True
        old = int(self.branch[i])
        old_bid = self.bids[old] if old >= 0 else None
        if full_member is not None and bool(self.full[i]) != bool(full_member):
            new_full = int(self.w[i]) if full_member else 0
            if old >= 0:
                self.nfull[old] += new_full - int(self.full[i])
            self.full[i] = new_full

        leaving = None
        if geo_status == GeoStatus.OUT_OF_CITY.value or status == MemberStatus.TRANSFER_OUT.value:
            leaving = MemberStatus.TRANSFER_OUT.value
        elif status == MemberStatus.LOST_CONTACT.value:
            leaving = MemberStatus.LOST_CONTACT.value
        elif status != MemberStatus.ACTIVE.value:
            raise ValueError(f"member {member_id!r}: unknown status {status!r}")
        if leaving is None and (lon is None or lat is None or not (math.isfinite(lon) and math.isfinite(lat))):
            raise ValueError(f"member {member_id!r}: lon/lat are required for an active member")

        if leaving is not None:
            if lon is not None and lat is not None:
                self.xy[i] = point_to_metres(lon, lat, self._zone(self.mdist[i]))
                self._remember(i, lon, lat)
            self.status[i] = leaving
            if old >= 0:
                self._set_branch(i, -1, changes)
                self._repair(old, changes)
            why = "moved out of the city" if geo_status == GeoStatus.OUT_OF_CITY.value else f"status {leaving}"
            return self._record(i, old_bid, None, leaving, why + ", removed from the branch", None, changes)

        assert lon is not None and lat is not None  # checked above for an active member
        self.status[i] = MemberStatus.ACTIVE.value
        family = self._family(i)
        if district_zh:
            key = self._region_key(district_zh, self.mdist[i])
            d = self._district(key)
            if old >= 0 and THEME_SEP in self.dnames[self.bdist[old]]:
                # a themed member stays with the theme in the new district when it has themed branches there
                themed = f"{key}{THEME_SEP}{self.dnames[self.bdist[old]].split(THEME_SEP, 1)[1]}"
                if themed in self.dindex and self._open_sites_in(self.dindex[themed]) is not None:
                    d = self.dindex[themed]
        else:
            d = self.mdist[i] if self.mdist[i] >= 0 else self._locate(lon, lat)
        # the new home in its district's zone, where that district's branches are
        xy: NDArray[np.float64] = np.array(point_to_metres(lon, lat, self._zone(d)), dtype=np.float64)
        for k in family:
            self.xy[k] = xy
            self.precision[k] = geo_precision
            self._remember(k, lon, lat)
        if d < 0:
            for k in family:
                self.status[k] = MemberStatus.TRANSFER_OUT.value
                if self.branch[k] >= 0:
                    self._set_branch(k, -1, changes)
            if old >= 0:
                self._repair(old, changes)
            return self._record(i, old_bid, None, "transfer_out", "new address is outside every district", None, changes)
        for k in family:
            self.mdist[k] = d
        joined = old < 0
        size, _ = self._demand(family)
        together = all(self.branch[k] == old for k in family)

        if not joined:
            dist_old = float(np.hypot(*(xy - self.site[old])))
            same = self.bdist[old] == d or self.policy.cross_district
            if same and together and (dist_old <= self.keep_radius or self.frozen[i]):
                self._repair(old, changes)  # a full->probationary change may need it
                why = "frozen member keeps the branch" if self.frozen[i] and dist_old > self.keep_radius else f"still within {self.keep_radius:.0f} m"
                return self._record(i, old_bid, old_bid, "kept", why, dist_old, changes)

        scope = None if self.policy.cross_district else d
        dist, near = self._near(xy, scope, NEAR_BRANCHES)
        for dd, j in zip(dist.tolist(), near.tolist()):
            if j == old and together:
                self._repair(old, changes)
                return self._record(i, old_bid, old_bid, "kept", "the current branch is still the nearest with room", dd, changes)
            inside = sum(int(self.w[k]) for k in family if self.branch[k] == j)
            if self.size[j] - inside + size <= self.policy.max_size and self.open[j]:
                left = {int(self.branch[k]) for k in family if self.branch[k] >= 0 and self.branch[k] != j}
                for k in family:
                    self._set_branch(k, j, changes)
                for b in sorted(left):
                    self._repair(b, changes)
                self._repair(j, changes)  # only matters for a full-member shortfall
                action = "joined" if joined else "moved"
                return self._record(i, old_bid, self.bids[j], action, f"nearest branch with room ({dd:.0f} m)", dd, changes)

        # nobody near has room: re-solve the neighbourhood, opening a branch at the new home (with
        # service centres: the nearest centre with a place) if needed; widening, and crossing into neighbouring districts (joint), only when necessary
        at = self._open_point(xy, d)
        best = self._search(xy, d, exclude=old if old >= 0 else None, extra_member=i, open_at=at)
        if best is not None and self._key(best)[0]:
            self.notes.append(f"member {member_id}: no local re-solve meets every limit")
        if best is None:
            j = self._add_branch(self._new_branch_id(d), at if at is not None else xy, d)
            self._set_branch(i, j, changes)
            self.notes.append(f"branch {self.bids[j]} opened for a single member: below limits")
        else:
            self._apply(best, d, at, changes)
        if old >= 0:
            self._repair(old, changes)
        j = int(self.branch[i])
        dj = float(np.hypot(*(xy - self.site[j]))) if j >= 0 else None
        action = "joined" if joined else "resolved"
        return self._record(
            i, old_bid, self.bids[j] if j >= 0 else None, action,
            f"no nearby branch had room: {len(set(c[0] for c in changes))} members re-placed locally", dj, changes,
        )

    def _zone(self, d: int) -> int:
        return self.dzone[d] if d >= 0 else SHENZHEN_ZONE

    def _region_key(self, district_zh: str, current: int) -> str:
        """A district as the plan's regions name it: in a national plan (``"广州市/天河区"``) a bare
        district name is taken to be in the member's current city."""
        if district_zh in self.dindex or CITY_SEP in district_zh or current < 0:
            return district_zh
        city = region_city(self.dnames[current])
        return f"{city}{CITY_SEP}{district_zh}" if city else district_zh

    def _remember(self, i: int, lon: float, lat: float) -> None:
        """Member ``i`` is now at ``lon``/``lat`` (their ``xy`` just set from it)."""
        if math.isfinite(lon) and math.isfinite(lat):
            self._member_ll[i] = (float(self.xy[i, 0]), float(self.xy[i, 1]), float(lon), float(lat))

    def _locate(self, lon: float, lat: float) -> int:
        from geoalloc.districts import district_at

        name = district_at(lon, lat)
        return self._district(name) if name else -1

    def _record(
        self, i: int, frm: str | None, to: str | None, action: str, reason: str, dist: float | None, changes: list[Change]
    ) -> Relocation:
        at = _utc_now()
        mid = self.ids[i]
        changes = _net(changes)
        self.events.append({"member_id": mid, "at": at, "from_branch": frm, "to_branch": to, "action": action, "reason": reason})
        for (m, a, b) in changes:
            if m != mid:
                self.events.append({"member_id": m, "at": at, "from_branch": a, "to_branch": b, "action": "moved", "reason": f"local repair after {mid} {action}"})
        family = [self.ids[k] for k in self._family(i)[1:]] if self.status[i] == MemberStatus.ACTIVE.value else []
        return Relocation(mid, frm, to, action, reason, None if dist is None else round(dist, 1), changes, family)

    # -- views -------------------------------------------------------------------------
    def take_events(self) -> list[dict[str, Any]]:
        """The events recorded since the last call, removed from the state (for persisting)."""
        out, self.events = self.events, []
        return out

    def events_frame(self) -> pd.DataFrame:
        """All recorded relocation events (who, when, from, to, action, why)."""
        return pd.DataFrame(self.events, columns=["member_id", "at", "from_branch", "to_branch", "action", "reason"])

    def branch_of(self, member_id: str) -> str | None:
        j = int(self.branch[self.index[member_id]])
        return self.bids[j] if j >= 0 else None

    def limit_violations(self) -> list[str]:
        """Branches outside their limits (should always be empty)."""
        return [self.bids[j] for j in range(len(self.bids)) if not self._ok(j)]

    def check(self) -> None:
        """Recount sizes from scratch and compare (for tests): raises AssertionError on drift."""
        n = len(self.ids)
        on = self.branch[:n] >= 0
        size = np.bincount(self.branch[:n][on], weights=self.w[:n][on], minlength=len(self.bids)).astype(int)
        assert size.tolist() == self.size, "size bookkeeping drifted"
        nf = np.bincount(self.branch[:n][self.branch[:n] >= 0], weights=self.full[:n][self.branch[:n] >= 0], minlength=len(self.bids))
        assert nf.astype(int).tolist() == self.nfull, "full-member bookkeeping drifted"

    def member_rows(self, member_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Assignment records (plan-directory columns) of the given members, in the order given.

        A relocation touches a few rows: a caller persists just those without rebuilding the
        whole plan. :meth:`to_frames` uses it for every member.
        """
        idx = [self.index[m] for m in member_ids if m in self.index]
        if not idx:
            return []
        xy = self.xy[idx].tolist()
        ll = _lonlat(self._member_ll, idx, xy, [self._zone(self.mdist[i]) for i in idx])
        branch = self.branch[idx].tolist()
        full = (self.full[idx] > 0).tolist()
        weight = self.w[idx].tolist()
        site = self.site.tolist() if len(idx) > 64 else None  # whole plan: one conversion, not one per row
        rows = []
        for k, i in enumerate(idx):
            j = branch[k]
            d = self.mdist[i]
            if j >= 0:
                sx, sy = site[j] if site is not None else self.site[j].tolist()
                dist = float(np.hypot(xy[k][0] - sx, xy[k][1] - sy))
            else:
                dist = float("nan")
            rows.append({
                "member_id": self.ids[i],
                "branch_id": self.bids[j] if j >= 0 else "",
                "distance_m": round(dist, 1),
                "district_zh": district_of_region(self.dnames[d]) if d >= 0 else None,
                "lon": ll[k][0],
                "lat": ll[k][1],
                "geo_precision": self.precision[i],
                "full_member": int(full[k]),
                "status": self.status[i],
                "weight": int(weight[k]),
                "group_id": self.unit[i][2:] if self.unit[i].startswith("g:") else "",
            })
        return rows

    def branch_rows(self, branch_ids: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """Branch records (plan-directory columns) of the given branches, and the ids of those
        that have no members any more (closed)."""
        branch_ids = list(branch_ids)
        live = [b for b in branch_ids if b in self.bindex and self.size[self.bindex[b]] > 0]
        closed = [b for b in branch_ids if b not in live]
        js = [self.bindex[b] for b in live]
        sites = self.site[js].tolist()
        sl = _lonlat(self._site_ll, js, sites, [self._zone(self.bdist[j]) for j in js])
        rows = []
        for k, (bid, j) in enumerate(zip(live, js)):
            members = sorted(self.members_of[j])
            pts = self.xy[np.fromiter(members, np.int64, len(members))]  # an index array: no list conversion
            sx, sy = sites[k]
            dists = np.hypot(pts[:, 0] - sx, pts[:, 1] - sy).round(1)
            region = self.dnames[self.bdist[j]] if self.bdist[j] >= 0 else None
            rows.append({
                "branch_id": bid,
                "lon": sl[k][0],
                "lat": sl[k][1],
                "district_zh": district_of_region(region) if region else None,
                "size": int(self.size[j]),
                "n_full": int(self.nfull[j]),
                # the sum is mean()'s own reduction: the same float, without mean()'s overhead
                "mean_distance_m": round(float(dists.sum()) / len(dists), 1) if len(dists) else 0.0,
                "max_distance_m": round(float(dists.max()), 1) if len(dists) else 0.0,
                "joint": int(len({self.mdist[i] for i in members}) > 1),
                "region": region,
            })
            if self.city_zones:  # a national plan: a branch opened here is stored with its city
                rows[-1]["city_zh"] = region_city(region) if region else ""
        return rows, closed

    def to_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(assignments, branches) in plan-directory form, for persisting or a new plan version."""
        assignments = pd.DataFrame(self.member_rows(self.ids), columns=ASSIGNMENT_COLUMNS)
        live = [b for j, b in enumerate(self.bids) if self.size[j] > 0]
        branches = pd.DataFrame(self.branch_rows(live)[0], columns=BRANCH_COLUMNS)
        return assignments, branches
