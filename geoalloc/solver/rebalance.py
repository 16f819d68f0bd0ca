"""Rebalancing an existing plan with as few member moves as possible.

Branches are communities, so the current plan is the starting point and every move
has a price. The model, per region (district, or district·theme):

- sites: the current branches (kept where they are) plus candidate new sites at members'
  homes; a site can be closed (merge) or opened (split / accumulation);
- for fixed sites the members are assigned *exactly* by a min-cost flow whose arc cost is
  ``distance + penalty`` when the arc leaves the member's current branch. Branch limits
  are soft arcs costing ``V`` per unit of violation, so the flow first removes violations
  and then trades distance against moves; ``V`` far above any distance makes them hard
  whenever they can be met;
- a small local search over the site set (re-centre a site on its members, close an
  under-filled branch, open a site where branches overflow or the region has fewer
  branches than a fresh plan would, and swap a branch's site: close one, open one where
  members are far) accepts a change only when the total penalised cost falls. Opening is
  limited so that the branch count stays that of a fresh plan unless limits need more.

Members whose address changed (their point moved, or their district did) and new members
carry no move penalty: placing them is the point of the exercise. ``max_moves`` is a hard
budget (placing new members and removing leavers are not moves): a ladder of settings is
searched by bisection: raise the move penalty, then charge relocated members too (letting
those who moved district stay when moving would save them less than that charge), then let
violations go; in the last resort the current assignment (new members placed, leavers
removed) is returned: zero moves, with the unfixed violations listed in the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow
from scipy.spatial import cKDTree

from geoalloc.model import MoveReason
from geoalloc.rules import Policy
from geoalloc.plan_diff import MOVE_COLUMNS, new_plan_id, plan_report, violations
from geoalloc.policies import district_of_region, region_keys
from geoalloc.projection import to_lonlat, to_metres

V_HARD = 100_000_000  # cost per unit of limit violation: far above any distance in metres
DEFAULT_MOVE_PENALTY_M = 500.0  # a member moves only if it saves this many metres
DEFAULT_RELOCATED_M = 200.0  # a member whose point moved further than this has a new address
MAX_PENALTY_M = 10_000_000.0
K_ARCS = 12  # candidate sites per member in the flow

Progress = Callable[[str, float], None]


# --------------------------------------------------------------------------------------
# Exact assignment for fixed sites: min-cost flow with soft size and full-member limits.
# --------------------------------------------------------------------------------------


def assign_min_cost(
    arc_member: NDArray[np.int64],
    arc_site: NDArray[np.int64],
    arc_cost: NDArray[np.int64],
    full: NDArray[np.int64],
    site_lo: NDArray[np.int64],
    site_hi: NDArray[np.int64],
    site_lo_full: NDArray[np.int64],
    violation_cost: int = V_HARD,
) -> tuple[NDArray[np.int64], int]:
    """Assign every member to one site along the given arcs at minimum cost.

    Each site should hold between ``site_lo`` and ``site_hi`` members, ``site_lo_full`` of
    them full; every missing or excess unit costs ``violation_cost``. Returns (site per
    member, total cost including violation costs). Every member needs at least one arc.

    Network: member -> F_j (full members) or S_j; F_j -> S_j; F_j -> T (lo_full units,
    cost -V); S_j -> T (lo - lo_full units, cost -V), (hi - lo units, cost 0) and
    (overflow, cost +V). The constant V * sum(lo) turns the bonus into a penalty.
    """
    n = len(full)
    m = len(site_lo)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    lo = np.maximum(site_lo, site_lo_full)
    lo_full = np.minimum(site_lo_full, site_hi)
    hi = np.maximum(site_hi, lo)
    fnode = n + np.arange(m)
    snode = n + m + np.arange(m)
    sink = n + 2 * m
    V = int(violation_cost)
    f = min_cost_flow.SimpleMinCostFlow()
    is_full = full[arc_member] > 0
    heads = np.where(is_full, fnode[arc_site], snode[arc_site])
    member_arcs = f.add_arcs_with_capacity_and_unit_cost(
        arc_member.astype(np.int64), heads.astype(np.int64), np.ones(len(arc_member), dtype=np.int64), arc_cost.astype(np.int64)
    )
    ones = np.ones(m, dtype=np.int64)
    f.add_arcs_with_capacity_and_unit_cost(fnode, snode, ones * n, ones * 0)
    f.add_arcs_with_capacity_and_unit_cost(fnode, np.full(m, sink), lo_full.astype(np.int64), ones * -V)
    f.add_arcs_with_capacity_and_unit_cost(snode, np.full(m, sink), (lo - lo_full).astype(np.int64), ones * -V)
    f.add_arcs_with_capacity_and_unit_cost(snode, np.full(m, sink), (hi - lo).astype(np.int64), ones * 0)
    f.add_arcs_with_capacity_and_unit_cost(snode, np.full(m, sink), ones * n, ones * V)
    supplies = np.zeros(sink + 1, dtype=np.int64)
    supplies[:n] = 1
    supplies[sink] = -n
    f.set_nodes_supplies(np.arange(sink + 1), supplies)
    status = f.solve()
    if status != f.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status} (a member without any arc?)")
    flows = f.flows(member_arcs)
    used = flows > 0
    site_of = np.full(n, -1, dtype=np.int64)
    site_of[arc_member[used]] = arc_site[used]
    if (site_of < 0).any():
        raise RuntimeError("min-cost flow left a member unassigned")
    return site_of, int(f.optimal_cost()) + V * int(lo.sum())


def limit_excess(size: NDArray[np.int64], n_full: NDArray[np.int64], policy: Policy) -> int:
    """Units of violation over non-empty branches (excess + missing members + missing full members)."""
    live = size > 0
    over = np.maximum(size - policy.max_size, 0)
    under = np.maximum(policy.min_size - size, 0)
    under_full = np.maximum(policy.min_full - n_full, 0)
    return int(((over + np.maximum(under, under_full)) * live).sum())


# --------------------------------------------------------------------------------------
# One region: local search over the site set around the exact assignment.
# --------------------------------------------------------------------------------------


@dataclass
class _Region:
    """Members of one region (free to move) and its sites. Indices are local."""

    name: str
    xy: NDArray[np.float64]  # (n,2) members' current homes
    full: NDArray[np.int64]
    cur_site: NDArray[np.int64]  # site index of the current branch in this region, -1 if none
    pinned: NDArray[np.bool_]  # frozen members: may only stay
    pen_factor: NDArray[np.float64]  # 1 for settled members, 0 for relocated/new (no move penalty)
    site_xy: NDArray[np.float64]  # (m,2) current sites
    site_bid: list[str | None]  # branch id per site, None for a new site
    policy: Policy
    n_foreign: int = 0  # members whose current branch is in another region: they must move


@dataclass
class _RegionPlan:
    site_xy: NDArray[np.float64]
    site_bid: list[str | None]
    site_of: NDArray[np.int64]  # member -> index into site_xy
    cost: int
    moves: int
    excess: int


class _RegionSolver:
    """Site search for one region at a fixed move penalty and violation cost."""

    def __init__(self, reg: _Region, penalty: float, violation_cost: int, reloc_penalty: float = 0.0):
        self.r = reg
        self.penalty = float(penalty)
        self.V = int(violation_cost)
        # relocated/new members pay ``reloc_penalty`` (0 normally; raised under a tight budget)
        pen = np.where(reg.pen_factor > 0, self.penalty, float(reloc_penalty))
        pen = np.where(reg.cur_site >= 0, pen, 0.0)  # nobody to leave
        self.pen = pen
        self.tree_members = cKDTree(reg.xy) if len(reg.xy) else None

    # -- evaluation --------------------------------------------------------------------
    def _arcs(self, site_xy: NDArray[np.float64], site_key: list[int]) -> tuple[NDArray[np.int64], ...]:
        r = self.r
        n, m = len(r.xy), len(site_xy)
        k = min(m, K_ARCS)
        d, idx = cKDTree(site_xy).query(r.xy, k=k)
        d = np.asarray(d, dtype=float).reshape(n, k)
        idx = np.asarray(idx, dtype=np.int64).reshape(n, k)
        # map current-site index (original numbering) to the site list given
        key_to_pos = {key: p for p, key in enumerate(site_key) if key >= 0}
        cur = np.array([key_to_pos.get(int(c), -1) if c >= 0 else -1 for c in r.cur_site], dtype=np.int64)
        am = np.repeat(np.arange(n, dtype=np.int64), k)
        asite = idx.ravel()
        acost = d.ravel() + np.where(asite == np.repeat(cur, k), 0.0, np.repeat(self.pen, k))
        # the stay arc, when the current site is not among the k nearest
        has_stay = (idx == cur[:, None]).any(axis=1)
        extra = np.flatnonzero((cur >= 0) & ~has_stay)
        if len(extra):
            dd = np.hypot(*(r.xy[extra] - site_xy[cur[extra]]).T)
            am = np.concatenate([am, extra])
            asite = np.concatenate([asite, cur[extra]])
            acost = np.concatenate([acost, dd])
        # pinned members: only the stay arc
        if r.pinned.any():
            keep = ~r.pinned[am] | (asite == cur[am])
            am, asite, acost = am[keep], asite[keep], acost[keep]
        return am, asite, np.round(acost).astype(np.int64), cur

    def evaluate(self, site_xy: NDArray[np.float64], site_key: list[int]) -> tuple[NDArray[np.int64], int, NDArray[np.int64]]:
        """(site per member, penalised cost, current-site position per member) for this site list."""
        r, p = self.r, self.r.policy
        m = len(site_xy)
        am, asite, acost, cur = self._arcs(site_xy, site_key)
        ones = np.ones(m, dtype=np.int64)
        site_of, cost = assign_min_cost(
            am, asite, acost, r.full, ones * p.min_size, ones * p.max_size, ones * p.min_full, self.V
        )
        return site_of, cost, cur

    def _settle(self, site_xy: NDArray[np.float64], site_key: list[int]) -> tuple[NDArray[np.float64], list[int], NDArray[np.int64], int]:
        """Evaluate, drop sites left empty, re-evaluate until every site is used."""
        while True:
            site_of, cost, _ = self.evaluate(site_xy, site_key)
            used = np.bincount(site_of, minlength=len(site_xy)) > 0
            if used.all() or not used.any():
                return site_xy, site_key, site_of, cost
            site_xy = site_xy[used]
            site_key = [k for k, u in zip(site_key, used) if u]

    # -- search ------------------------------------------------------------------------
    def target_count(self) -> int:
        """The branch count a from-scratch plan would use for this region (fewest allowed, or by target size)."""
        n, p = len(self.r.xy), self.r.policy
        if p.target_size:
            return max(1, math.ceil(n / p.target_size))
        return max(1, math.ceil(n / p.max_size))

    def solve(self, rounds: int = 30) -> _RegionPlan:
        r, p = self.r, self.r.policy
        n = len(r.xy)
        if n == 0:
            return _RegionPlan(np.zeros((0, 2)), [], np.zeros(0, np.int64), 0, r.n_foreign, 0)
        site_xy = r.site_xy.copy()
        site_key = list(range(len(site_xy)))  # >=0: original site index; <0: new site
        next_new = -1
        need = self.target_count()
        # open sites where members are while the region has fewer than a fresh plan would
        if len(site_xy) < need:
            site_of = self._nearest_or_none(site_xy)
            for _ in range(need):  # bounded: one candidate per missing branch
                if len(site_xy) >= need:
                    break
                c = self._best_new_site(site_xy, site_of)
                site_xy = np.vstack([site_xy, r.xy[c][None, :]]) if len(site_xy) else r.xy[c][None, :].copy()
                site_key.append(next_new)
                next_new -= 1
                site_of = self._nearest_or_none(site_xy)
        site_xy, site_key, site_of, cost = self._settle(site_xy, site_key)
        swaps = 0
        for _ in range(rounds):
            improved = False
            # 1) re-centre sites on their members (no member moves by itself)
            cand_xy = site_xy.copy()
            for j in range(len(site_xy)):
                members = np.flatnonzero(site_of == j)
                if len(members) and (site_key[j] < 0 or p.extra.get("recentre_branches", True)):
                    cand_xy[j] = self._medoid(members)
            if not np.allclose(cand_xy, site_xy):
                t = self._settle(cand_xy, list(site_key))
                if t[3] < cost:
                    site_xy, site_key, site_of, cost = t
                    improved = True
            # 2) close a branch that is under its limits (merge), smallest first
            size = np.bincount(site_of, minlength=len(site_xy))
            fulls = np.bincount(site_of, weights=r.full, minlength=len(site_xy)).astype(int)
            bad = np.flatnonzero((size < p.min_size) | (fulls < p.min_full))
            for j in bad[np.argsort(size[bad])][:3]:
                if len(site_xy) <= 1 or (r.pinned & (site_of == j)).any():
                    continue
                keep = np.ones(len(site_xy), dtype=bool)
                keep[j] = False
                t = self._settle(site_xy[keep], [k for k, u in zip(site_key, keep) if u])
                if t[3] < cost:
                    site_xy, site_key, site_of, cost = t
                    improved = True
                    break
            # 3) open a site only where branches overflow or the region is short of branches
            size = np.bincount(site_of, minlength=len(site_xy))
            if len(site_xy) < need or (size > p.max_size).any():
                for c in self._open_candidates(site_xy, site_of, 3):
                    t = self._settle(np.vstack([site_xy, r.xy[c][None, :]]), site_key + [next_new])
                    if t[3] < cost:
                        site_xy, site_key, site_of, cost = t
                        next_new -= 1
                        improved = True
                        break
            if not improved:
                # 4) swap: move a branch (close one, open one elsewhere) when that pays for its moves
                if swaps >= int(p.extra.get("swap_rounds", 12)):
                    break
                t = self._best_swap(site_xy, site_key, site_of, cost, next_new)
                if t is None:
                    break
                site_xy, site_key, site_of, cost = t
                next_new -= 1
                swaps += 1
        cur = self._cur_pos(site_key)
        moves = int(((cur >= 0) & (site_of != cur)).sum()) + r.n_foreign
        size = np.bincount(site_of, minlength=len(site_xy))
        fulls = np.bincount(site_of, weights=r.full, minlength=len(site_xy)).astype(int)
        bids = [r.site_bid[k] if k >= 0 else None for k in site_key]
        return _RegionPlan(site_xy, bids, site_of, cost, moves, limit_excess(size, fulls, p))

    def _best_swap(
        self, site_xy: NDArray[np.float64], site_key: list[int], site_of: NDArray[np.int64], cost: int, new_key: int
    ) -> tuple[NDArray[np.float64], list[int], NDArray[np.int64], int] | None:
        """The best improving (close j, open c) pair among the cheapest closes and best opens."""
        r = self.r
        m = len(site_xy)
        if m < 2:
            return None
        # what closing each site would cost (its members to their next-nearest site), cheapest first
        k = min(m, 2)
        d, idx = cKDTree(site_xy).query(r.xy, k=k)
        d = np.asarray(d).reshape(len(r.xy), k)
        own = np.hypot(*(r.xy - site_xy[site_of]).T)
        alt = np.where(np.asarray(idx).reshape(len(r.xy), k)[:, 0] == site_of, d[:, 1], d[:, 0])
        loss = np.bincount(site_of, weights=np.maximum(alt - own, 0) + np.where(r.cur_site >= 0, self.pen, 0.0), minlength=m)
        pinned_sites = set(site_of[r.pinned].tolist())
        closes = [int(j) for j in np.argsort(loss) if int(j) not in pinned_sites][:3]
        opens = self._open_candidates(site_xy, site_of, 3)
        best = None
        for j in closes:
            keep = np.ones(m, dtype=bool)
            keep[j] = False
            for c in opens:
                t = self._settle(np.vstack([site_xy[keep], r.xy[c][None, :]]), [q for q, u in zip(site_key, keep) if u] + [new_key])
                if t[3] < cost and (best is None or t[3] < best[3]):
                    best = t
        return best

    def _cur_pos(self, site_key: list[int]) -> NDArray[np.int64]:
        key_to_pos = {key: q for q, key in enumerate(site_key) if key >= 0}
        return np.array([key_to_pos.get(int(c), -1) if c >= 0 else -1 for c in self.r.cur_site], dtype=np.int64)

    def _nearest_or_none(self, site_xy: NDArray[np.float64]) -> NDArray[np.int64]:
        if len(site_xy) == 0:
            return np.full(len(self.r.xy), -1, dtype=np.int64)
        return np.asarray(cKDTree(site_xy).query(self.r.xy, k=1)[1], dtype=np.int64)

    def _member_cost(self, site_xy: NDArray[np.float64], site_of: NDArray[np.int64]) -> NDArray[np.float64]:
        """What each member pays now: distance, move penalty, and a share of its site's overflow."""
        r, p = self.r, self.r.policy
        if len(site_xy) == 0:
            return np.full(len(r.xy), float(self.V))
        ok = site_of >= 0
        d = np.full(len(r.xy), float(self.V))
        d[ok] = np.hypot(*(r.xy[ok] - site_xy[site_of[ok]]).T)
        size = np.bincount(site_of[ok], minlength=len(site_xy))
        share = np.maximum(size - p.max_size, 0) / np.maximum(size, 1)
        d[ok] += share[site_of[ok]] * self.V
        return d

    def _best_new_site(self, site_xy: NDArray[np.float64], site_of: NDArray[np.int64]) -> int:
        cands = self._open_candidates(site_xy, site_of, 1, penalise_moves=False)
        return int(cands[0]) if len(cands) else 0

    def _open_candidates(
        self, site_xy: NDArray[np.float64], site_of: NDArray[np.int64], top: int, penalise_moves: bool = True
    ) -> list[int]:
        """Members whose home would save most as a new site (sum of the best max_size savings)."""
        r, p = self.r, self.r.policy
        n = len(r.xy)
        now = self._member_cost(site_xy, site_of)
        pool = np.argsort(-now)[: min(n, 60)]
        radius = float(np.percentile(now[now < self.V], 90)) * 2 if (now < self.V).any() else 5000.0
        radius = max(radius, 1500.0)
        best: list[tuple[float, int]] = []
        cur = r.cur_site
        for c in pool:
            nb = np.asarray(self.tree_members.query_ball_point(r.xy[c], radius), dtype=np.int64)
            if len(nb) == 0:
                continue
            dnew = np.hypot(*(r.xy[nb] - r.xy[c]).T)
            if penalise_moves:
                dnew = dnew + np.where(cur[nb] >= 0, self.pen[nb], 0.0)
            s = now[nb] - dnew
            s = np.sort(s[s > 0])[::-1][: p.max_size]
            if len(s) >= p.min_size:
                best.append((float(s.sum()), int(c)))
        best.sort(reverse=True)
        return [c for _, c in best[:top]]

    def _medoid(self, members: NDArray[np.int64]) -> NDArray[np.float64]:
        pts = self.r.xy[members]
        if len(pts) > 300:
            pts = pts[:: max(1, len(pts) // 300)]
        d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1]).sum(axis=1)
        return pts[int(np.argmin(d))].copy()


# --------------------------------------------------------------------------------------
# The public call.
# --------------------------------------------------------------------------------------


@dataclass
class RebalanceResult:
    """A rebalanced plan in plan-directory frames, the moves, and the report.json fields."""

    assignments: pd.DataFrame
    branches: pd.DataFrame
    moves: pd.DataFrame
    report: dict[str, Any]
    placements: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["member_id", "to_branch"]))


@dataclass
class _Prepared:
    members: pd.DataFrame
    ids: NDArray[np.object_]
    active: NDArray[np.bool_]
    xy: NDArray[np.float64]
    full: NDArray[np.int64]
    frozen: NDArray[np.bool_]
    region: NDArray[np.int64]
    region_names: list[str]
    cur_bid: NDArray[np.object_]  # current branch id or None
    relocated: NDArray[np.bool_]
    new: NDArray[np.bool_]
    site_xy: dict[str, NDArray[np.float64]]  # current branch -> site
    branch_region: dict[str, int]
    frozen_branches: set[str]
    notes: list[str]
    removed: NDArray[np.bool_]


def _col(df: pd.DataFrame, name: str, default: Any) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([default] * len(df), index=df.index)


def _prepare(
    members: pd.DataFrame,
    current: pd.DataFrame,
    policy: Policy,
    frozen_branches: set[str] | frozenset[str],
    current_branches: pd.DataFrame | None,
) -> _Prepared:
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
    status = _col(members, "status", "active").astype(object).where(_col(members, "status", "active").notna(), "active")
    active = status.astype(str).str.strip().isin(["active", ""]).to_numpy().copy()
    # like the pipeline: members placed outside the city or not placed at all are listed, not allocated
    if "geo_status" in members.columns:
        active &= ~members["geo_status"].astype(str).isin(["out_of_city", "failed"]).to_numpy()
    if "district_zh" in members.columns and not policy.cross_district:
        dz = members["district_zh"]
        active &= (dz.notna() & (dz.astype(str).str.strip() != "")).to_numpy()
    lon = pd.to_numeric(members["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(members["lat"], errors="coerce").to_numpy(float)
    bad = active & ~(np.isfinite(lon) & np.isfinite(lat))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"members: row {i + 2} (member_id {ids[i]!r}): field lon/lat is missing for an active member")
    xy = np.zeros((len(members), 2))
    if active.any():
        xy[active] = to_metres(lon[active], lat[active])
    full = pd.to_numeric(_col(members, "full_member", 1), errors="coerce").fillna(0).astype(int).clip(0, 1).to_numpy()
    frozen = pd.to_numeric(_col(members, "frozen", 0), errors="coerce").fillna(0).astype(int).to_numpy() > 0
    region, names = region_keys(members, policy)

    cur = current.copy()
    cur["member_id"] = cur["member_id"].astype(str)
    cur = cur.drop_duplicates("member_id", keep="last").set_index("member_id")
    bid = cur["branch_id"].astype(object).where(cur["branch_id"].notna(), None)
    bid = bid.map(lambda b: None if b is None or str(b).strip() == "" else str(b))
    cur_bid = pd.Series(ids).map(bid).astype(object).to_numpy()
    cur_bid = np.array([b if isinstance(b, str) else None for b in cur_bid], dtype=object)
    in_current = pd.Series(ids).isin(cur.index).to_numpy()
    new = active & (~in_current | np.array([b is None for b in cur_bid]))
    removed = ~active & np.array([b is not None for b in cur_bid])  # had a branch, no longer allocated
    cur_bid[~active] = None

    # members whose address changed: point moved (when the old point is known) or district changed
    reloc_m = float(policy.extra.get("relocated_min_m", DEFAULT_RELOCATED_M))
    relocated = np.zeros(len(members), dtype=bool)
    if {"lon", "lat"} <= set(cur.columns):
        olon = pd.Series(ids).map(pd.to_numeric(cur["lon"], errors="coerce")).to_numpy(float)
        olat = pd.Series(ids).map(pd.to_numeric(cur["lat"], errors="coerce")).to_numpy(float)
        known = active & ~new & np.isfinite(olon) & np.isfinite(olat)
        if known.any():
            oxy = to_metres(olon[known], olat[known])
            relocated[np.flatnonzero(known)[np.hypot(*(oxy - xy[known]).T) > reloc_m]] = True
    if "district_zh" in cur.columns and "district_zh" in members.columns:
        od = pd.Series(ids).map(cur["district_zh"]).astype(object).to_numpy()
        nd = members["district_zh"].astype(object).to_numpy()
        changed = active & ~new & pd.notna(od) & pd.notna(nd) & (od.astype(str) != nd.astype(str))
        relocated |= changed

    # current sites: given branches, else the medoid of the members who stayed
    site_xy: dict[str, NDArray[np.float64]] = {}
    if current_branches is not None and len(current_branches):
        cb = current_branches.dropna(subset=["lon", "lat"])
        pts = to_metres(cb["lon"].to_numpy(float), cb["lat"].to_numpy(float))
        site_xy = {str(b): pts[i] for i, b in enumerate(cb["branch_id"].astype(str))}
    stay = active & ~new & ~relocated
    has_b = np.array([b is not None for b in cur_bid])
    grp = pd.Series(np.arange(len(members)))[has_b].groupby(cur_bid[has_b])
    branch_region: dict[str, int] = {}
    for b, rows in grp:
        rows = rows.to_numpy()
        settled = rows[stay[rows]]
        base = settled if len(settled) else rows
        branch_region[str(b)] = int(np.bincount(region[base]).argmax())
        if str(b) not in site_xy:
            pts = xy[base]
            if len(pts) > 300:
                pts = pts[:: len(pts) // 300]
            d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1]).sum(axis=1)
            site_xy[str(b)] = pts[int(np.argmin(d))].copy()
    # address-changed members far from their site, when old points were unknown
    if not {"lon", "lat"} <= set(cur.columns):
        keep_r = float(policy.extra.get("keep_radius_m", 3000.0))
        for i in np.flatnonzero(active & ~new & has_b):
            b = cur_bid[i]
            if branch_region.get(b, region[i]) != region[i] or np.hypot(*(xy[i] - site_xy[b])) > keep_r:
                relocated[i] = True
    notes: list[str] = []
    unknown = set(frozen_branches) - set(branch_region)
    if unknown:
        notes.append(f"frozen branches not in the current plan (ignored): {sorted(unknown)[:10]}")
    return _Prepared(
        members, ids, active, xy, full, frozen & active & has_b, region, names, cur_bid, relocated, new,
        site_xy, branch_region, set(frozen_branches) & set(branch_region), notes, removed,
    )


def _region_problems(prep: _Prepared, keep_threshold: float | None = None) -> tuple[list[_Region], list[NDArray[np.int64]]]:
    """One _Region per region name with the free members and non-frozen sites; global member indices.

    A member whose current branch lies in another region (they moved district) belongs to
    their new region and must move, unless frozen, or, under a tight move budget
    (``keep_threshold`` in metres), unless moving would save them less than that: then they
    are treated as members of their branch's region and stay.
    """
    regions, index = [], []
    in_frozen_branch = np.array([b in prep.frozen_branches for b in prep.cur_bid], dtype=bool)
    free = prep.active & ~in_frozen_branch
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
            d_new = float(trees[r].query(prep.xy[i])[0]) if trees[r] is not None else 0.0
            keep = d_old - d_new < keep_threshold
        if keep:
            region[i] = prep.branch_region[b]
    for r, name in enumerate(prep.region_names):
        mem = np.flatnonzero(free & (region == r))
        bids = sorted(b for b, rr in prep.branch_region.items() if rr == r and b not in prep.frozen_branches)
        pos = {b: j for j, b in enumerate(bids)}
        cur_site = np.array([pos.get(prep.cur_bid[i], -1) if prep.cur_bid[i] is not None else -1 for i in mem], dtype=np.int64)
        pinned = prep.frozen[mem] & (cur_site >= 0)
        pen = (~prep.relocated[mem] & ~prep.new[mem]).astype(float)
        sxy = np.array([prep.site_xy[b] for b in bids]).reshape(-1, 2)
        foreign = int(sum(1 for i, c in zip(mem, cur_site) if c < 0 and prep.cur_bid[i] is not None))
        regions.append(_Region(name, prep.xy[mem], prep.full[mem], cur_site, pinned, pen, sxy, list(bids), None, foreign))  # type: ignore[arg-type]
        index.append(mem)
    return regions, index


def _solve_all(
    regions: list[_Region], policy: Policy, penalty: float, V: int, reloc_penalty: float, progress: Progress | None,
    label: str, engine: Any = None,
) -> list[_RegionPlan]:
    """Every region's plan, in order; on ``engine`` (:mod:`geoalloc.engines`) when given, else here.
    A region's plan depends only on the region and the settings, so the engine changes nothing."""
    for reg in regions:
        reg.policy = policy
    plans: list[_RegionPlan | None] = [None] * len(regions)
    if engine is None:
        done = ((i, _solve_region((reg, penalty, V, reloc_penalty))) for i, reg in enumerate(regions))
    else:
        done = engine.run(_solve_region, [(reg, penalty, V, reloc_penalty) for reg in regions],
                          [len(reg.xy) for reg in regions])
    for k, (i, plan) in enumerate(done):
        plans[i] = plan
        if progress:
            progress(f"{label}: {regions[i].name}", (k + 1) / max(1, len(regions)))
    return plans  # type: ignore[return-value]


def _solve_region(args: tuple[_Region, float, int, float]) -> _RegionPlan:
    reg, penalty, V, reloc_penalty = args
    return _RegionSolver(reg, penalty, V, reloc_penalty).solve()


def _zero_move_frames(prep: _Prepared, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The zero-move plan: everyone stays, leavers go, new members join the nearest branch with room.

    A region with newcomers but no branch gets one at the first newcomer's home (reported
    as a violation when it is too small).
    """
    bid_of = prep.cur_bid.copy()
    bid_of[~prep.active] = None
    sites = dict(prep.site_xy)
    branch_reg = {b: prep.region_names[r] for b, r in prep.branch_region.items()}
    size: dict[str, int] = {}
    for b in bid_of:
        if b is not None:
            size[b] = size.get(b, 0) + 1
    for r, name in enumerate(prep.region_names):
        todo = np.flatnonzero(prep.new & (prep.region == r))
        if not len(todo):
            continue
        bids = [b for b, rr in prep.branch_region.items() if rr == r and b not in prep.frozen_branches]
        if not bids:
            b = _next_ids(set(sites), name, 1)[0]
            sites[b] = prep.xy[todo[0]].copy()
            branch_reg[b] = name
            bids = [b]
        pts = np.array([sites[b] for b in bids]).reshape(-1, 2)
        _, idx = cKDTree(pts).query(prep.xy[todo], k=min(len(bids), K_ARCS))
        idx = np.asarray(idx).reshape(len(todo), -1)
        for t, i in enumerate(todo):
            choice = next((bids[j] for j in idx[t] if size.get(bids[j], 0) < policy.max_size), bids[int(idx[t][0])])
            bid_of[i] = choice
            size[choice] = size.get(choice, 0) + 1
    site = np.full((len(bid_of), 2), np.nan)
    for i, b in enumerate(bid_of):
        if b is not None:
            site[i] = sites[b]
    return _frames_from(prep, bid_of, site, sites, branch_reg)


def _next_ids(existing: set[str], prefix: str, count: int) -> list[str]:
    used = set()
    for b in existing:
        if b.startswith(prefix + "-"):
            tail = b[len(prefix) + 1 :]
            if tail.isdigit():
                used.add(int(tail))
    out, k = [], 1
    while len(out) < count:
        if k not in used:
            out.append(f"{prefix}-{k:03d}")
        k += 1
    return out


def _frames(
    prep: _Prepared, regions: list[_Region], index: list[NDArray[np.int64]], plans: list[_RegionPlan]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plan-directory frames (assignments, branches) from the region plans + frozen branches."""
    n = len(prep.ids)
    bid_of = np.array([None] * n, dtype=object)
    site_of_member = np.full((n, 2), np.nan)
    sites: dict[str, NDArray[np.float64]] = {}
    branch_reg: dict[str, str] = {}
    existing = set(prep.branch_region)
    for reg, mem, plan in zip(regions, index, plans):
        new_ids = iter(_next_ids(existing, reg.name, sum(b is None for b in plan.site_bid)))
        names = []
        for j, b in enumerate(plan.site_bid):
            b = b if b is not None else next(new_ids)
            existing.add(b)
            names.append(b)
            sites[b] = plan.site_xy[j]
            branch_reg[b] = reg.name
        if len(mem):
            bid_of[mem] = np.array(names, dtype=object)[plan.site_of]
            site_of_member[mem] = plan.site_xy[plan.site_of]
    for b in prep.frozen_branches:
        rows = np.flatnonzero(prep.active & (prep.cur_bid == b))
        if len(rows):
            bid_of[rows] = b
            site_of_member[rows] = prep.site_xy[b]
            sites[b] = prep.site_xy[b]
            branch_reg[b] = prep.region_names[prep.branch_region[b]]
    return _frames_from(prep, bid_of, site_of_member, sites, branch_reg)


def _frames_from(
    prep: _Prepared,
    bid_of: NDArray[np.object_],
    site_of_member: NDArray[np.float64],
    sites: dict[str, NDArray[np.float64]],
    branch_reg: dict[str, str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    m = prep.members
    dist = np.hypot(*(prep.xy - site_of_member).T)
    assigned = np.array([b is not None for b in bid_of])
    dist = np.where(assigned, np.round(dist, 1), np.nan)
    status = _col(m, "status", "active").astype(object).where(_col(m, "status", "active").notna(), "active")
    a = pd.DataFrame(
        {
            "member_id": prep.ids,
            "branch_id": [b if b is not None else "" for b in bid_of],
            "distance_m": dist,
            "district_zh": _col(m, "district_zh", None).to_numpy(),
            "lon": pd.to_numeric(m["lon"], errors="coerce").to_numpy(float),
            "lat": pd.to_numeric(m["lat"], errors="coerce").to_numpy(float),
            "geo_precision": _col(m, "geo_precision", "exact").to_numpy(),
            "full_member": prep.full,
            "status": status.astype(str).to_numpy(),
        }
    )
    rows = []
    if sites:
        keys = sorted(sites)
        ll = to_lonlat(np.array([sites[b][0] for b in keys]), np.array([sites[b][1] for b in keys]))
        aa = a[assigned]
        g = aa.groupby("branch_id")
        size = g.size()
        nfull = g["full_member"].sum()
        mean_d = g["distance_m"].mean()
        max_d = g["distance_m"].max()
        ndist = g["district_zh"].nunique()
        for k, b in enumerate(keys):
            if b not in size.index:
                continue
            rows.append(
                {
                    "branch_id": b,
                    "lon": round(float(ll[k, 0]), 6),
                    "lat": round(float(ll[k, 1]), 6),
                    "district_zh": district_of_region(branch_reg[b]),
                    "size": int(size[b]),
                    "n_full": int(nfull[b]),
                    "mean_distance_m": round(float(mean_d[b]), 1),
                    "max_distance_m": round(float(max_d[b]), 1),
                    "joint": int(ndist[b] > 1),
                    "region": branch_reg[b],
                }
            )
    cols = ["branch_id", "lon", "lat", "district_zh", "size", "n_full", "mean_distance_m", "max_distance_m", "joint", "region"]
    return a, pd.DataFrame(rows, columns=cols)


def _before_frames(prep: _Prepared) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The current plan seen with today's roster: leavers gone, newcomers not yet placed."""
    bid_of = prep.cur_bid.copy()
    bid_of[~prep.active] = None
    site = np.full((len(bid_of), 2), np.nan)
    for i, b in enumerate(bid_of):
        if b is not None:
            site[i] = prep.site_xy[b]
    branch_reg = {b: prep.region_names[r] for b, r in prep.branch_region.items()}
    return _frames_from(prep, bid_of, site, dict(prep.site_xy), branch_reg)


def _naive_violations(prep: _Prepared, before_b: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """Limit violations if newcomers simply joined their nearest branch and nobody else moved."""
    b = before_b[["branch_id", "size", "n_full"]].copy() if len(before_b) else pd.DataFrame(columns=["branch_id", "size", "n_full"])
    size = dict(zip(b["branch_id"], b["size"]))
    nfull = dict(zip(b["branch_id"], b["n_full"]))
    for r in range(len(prep.region_names)):
        todo = np.flatnonzero(prep.new & (prep.region == r))
        bids = [x for x, rr in prep.branch_region.items() if rr == r]
        if not len(todo) or not bids:
            continue
        _, idx = cKDTree(np.array([prep.site_xy[x] for x in bids])).query(prep.xy[todo], k=1)
        for i, j in zip(todo, np.atleast_1d(idx)):
            size[bids[j]] = size.get(bids[j], 0) + 1
            nfull[bids[j]] = nfull.get(bids[j], 0) + int(prep.full[i])
    frame = pd.DataFrame({"branch_id": list(size), "size": list(size.values()), "n_full": [nfull.get(x, 0) for x in size]})
    return violations(frame, policy)


def _move_reasons(prep: _Prepared, before_b: pd.DataFrame, after_a: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(moves of existing members with a reason, placements of new members)."""
    new_bid = after_a["branch_id"].to_numpy(dtype=object)
    size_before = dict(zip(before_b["branch_id"], before_b["size"])) if len(before_b) else {}
    full_before = dict(zip(before_b["branch_id"], before_b["n_full"])) if len(before_b) else {}
    live_after = set(after_a["branch_id"][after_a["branch_id"] != ""])
    rows, placed = [], []
    for i in range(len(prep.ids)):
        if not prep.active[i]:
            continue
        old, nw = prep.cur_bid[i], new_bid[i] or None
        if prep.new[i]:
            if nw:
                placed.append((prep.ids[i], nw))
            continue
        if old == nw:
            continue
        if prep.relocated[i]:
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
    moves = pd.DataFrame(rows, columns=MOVE_COLUMNS)
    return moves, pd.DataFrame(placed, columns=["member_id", "to_branch"])


def _unassigned_reason(status: str, geo_status: str) -> str:
    if status not in ("active", ""):
        return status
    if geo_status in ("out_of_city", "failed"):
        return geo_status
    return "not_located"


def _nn_lower_bound(prep: _Prepared, branches: pd.DataFrame) -> float:
    """A valid (weak) bound on the from-scratch distance with the same branch count per region.

    Sites are members' homes, so every member but the p sites pays at least the distance to
    its nearest other member in its region.
    """
    total = 0.0
    counts = branches.groupby("region").size() if len(branches) else pd.Series(dtype=int)
    for r, name in enumerate(prep.region_names):
        mem = np.flatnonzero(prep.active & (prep.region == r))
        p = int(counts.get(name, 0))
        if len(mem) <= max(p, 1):
            continue
        d, _ = cKDTree(prep.xy[mem]).query(prep.xy[mem], k=2)
        nn = np.sort(np.asarray(d)[:, 1])
        total += float(nn[: len(mem) - p].sum())
    return total


def _lower_bound(
    prep: _Prepared, assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy, objective: float
) -> tuple[float, str]:
    """The solver's Lagrangian bound for the same members and branch counts (time-boxed by
    ``policy.extra["bound_seconds"]``, default 5 s), else the weak nearest-neighbour bound."""
    try:
        from geoalloc.solver.bounds import lagrangian_bound
        from geoalloc.solver.form import build_units
        from geoalloc.solver.instance import Instance
        from geoalloc.solver.problem import Problem

        act = np.flatnonzero(prep.active)
        problem = Problem(xy=prep.xy[act], full=prep.full[act], region=prep.region[act], region_names=prep.region_names)
        units = build_units(problem, policy)
        per_region = branches.groupby("region").size() if len(branches) else pd.Series(dtype=int)
        dist = pd.to_numeric(assignments["distance_m"], errors="coerce").fillna(0).to_numpy(float)[act]
        seconds = float(policy.extra.get("bound_seconds", 5.0))
        total = 0.0
        for u in units:
            p = int(sum(per_region.get(prep.region_names[r], 0) for r in u.regions))
            if p <= 0:
                raise ValueError(f"no branch in {u.name}")
            idx = u.members
            inst = Instance(
                xy=problem.xy[idx], demand=np.ones(len(idx), np.int64), full=problem.full[idx],  # type: ignore[index]
                weight=np.ones(len(idx)), p=p, max_size=policy.max_size, min_size=policy.min_size,
                min_full=policy.min_full, cand_xy=None,
            )
            share = seconds * len(idx) / max(1, len(act))
            total += min(lagrangian_bound(inst, float(dist[idx].sum()), deadline=time.perf_counter() + share), float(dist[idx].sum()))
        return min(total, objective), "Lagrangian bound (geoalloc.solver.bounds) for the same members and branch counts"
    except Exception as exc:  # the bound is a certificate, not a reason to fail a rebalance
        return min(_nn_lower_bound(prep, branches), objective), f"nearest-neighbour bound (weak; solver bound unavailable: {exc})"


def rebalance(
    members: pd.DataFrame,
    current: pd.DataFrame,
    policy: Policy,
    *,
    max_moves: int | None = None,
    move_penalty_m: float | None = None,
    frozen_branches: set[str] | frozenset[str] = frozenset(),
    progress: Progress | None = None,
    current_branches: pd.DataFrame | None = None,
    parent_plan_id: str | None = None,
    certify: bool = True,
    ladder_cache: dict[Any, Any] | None = None,
    engine: Any = None,
) -> RebalanceResult:
    """Fix the current plan for today's roster, moving as few members as the settings allow.

    ``max_moves`` is a hard budget on members of the current plan who change branch
    (placing new members and removing leavers are not moves). ``move_penalty_m`` is what a
    move must save, in metres (default ``policy.extra["move_penalty_m"]`` or 1000).
    ``current_branches`` (a previous branches.csv) keeps the meeting points exactly;
    without it a branch's site is the medoid of its members who did not move house.
    ``progress(stage, fraction)`` is called as regions are solved. ``certify=False`` skips
    the (time-boxed) Lagrangian bound and reports the weak nearest-neighbour bound instead.
    ``ladder_cache``: a dict shared by calls on the same inputs with different budgets (the
    trade-off curve), so each penalty setting is solved once. ``engine``: where the regions are
    solved (:func:`geoalloc.engines.get_engine`; default one after the other in this process).
    """
    t0 = time.perf_counter()
    if max_moves is not None and max_moves < 0:
        raise ValueError(f"max_moves must be at least 0 (got {max_moves})")
    if move_penalty_m is not None and move_penalty_m < 0:
        raise ValueError(f"move_penalty_m must be at least 0 (got {move_penalty_m})")
    prep = _prepare(members, current, policy, frozen_branches, current_branches)
    before_a, before_b = _before_frames(prep)
    regions, index = _region_problems(prep)
    for reg in regions:
        reg.policy = policy
    penalty = float(move_penalty_m if move_penalty_m is not None else policy.extra.get("move_penalty_m", DEFAULT_MOVE_PENALTY_M))
    notes = list(prep.notes)
    budget_info: dict[str, Any] = {"max_moves": max_moves, "budget_met_all_fixes": True}

    nothing_changed = (
        not prep.relocated.any()
        and not prep.new.any()
        and violations(before_b, policy)["total"] == 0
        and move_penalty_m is None
        and np.array_equal(prep.active, prep.active & np.array([b is not None for b in prep.cur_bid]))
    )
    left = int(prep.removed.sum())
    plans: list[_RegionPlan] | None
    if nothing_changed and left == 0:
        plans = None
        notes.append("unchanged roster: current plan kept")
    elif max_moves is None:
        plans = _solve_all(regions, policy, penalty, V_HARD, 0.0, progress, "rebalance", engine)
    else:
        plans, regions, index, label = _within_budget(
            prep, policy, penalty, max_moves, progress, budget_info, ladder_cache if ladder_cache is not None else {},
            before_b, engine,
        )
        notes.append(label)
    if plans is None:
        after_a, after_b = _zero_move_frames(prep, policy)
    else:
        after_a, after_b = _frames(prep, regions, index, plans)
    moves, placements = _move_reasons(prep, before_b, after_a, policy)
    if max_moves is not None and len(moves) > max_moves:  # cannot happen; kept as a guard
        raise AssertionError(f"rebalance exceeded the move budget ({len(moves)} > {max_moves})")
    report = plan_report((before_a, before_b), (after_a, after_b), moves, policy)
    report["violations_without_rebalance"] = _naive_violations(prep, before_b, policy)
    va = report["violations_after"]
    if va["total"] and max_moves is not None:
        budget_info["budget_met_all_fixes"] = False
        notes.append(f"the move budget ({max_moves}) could not fix every limit violation: {va['total']} branches remain outside limits")
    elif va["total"]:
        notes.append(f"{va['total']} branches remain outside limits (the rules cannot all be met in their region)")
    objective = float(np.nansum(after_a["distance_m"].to_numpy(float)))
    if objective <= 0:
        lb, lb_kind = 0.0, "empty plan"
    elif certify:
        lb, lb_kind = _lower_bound(prep, after_a, after_b, policy, objective)
    else:
        lb, lb_kind = min(_nn_lower_bound(prep, after_b), objective), "nearest-neighbour bound (weak, valid)"
    removed = int(prep.removed.sum())
    report.update(
        {
            "plan_id": new_plan_id(),
            "parent_plan_id": parent_plan_id,
            "kind": "rebalance",
            "objective_m": round(objective, 1),
            "lower_bound_m": round(lb, 1),
            "lower_bound_kind": lb_kind,
            "gap": round((objective - lb) / objective, 4) if objective > 0 else 0.0,
            "n_members": int(len(prep.ids)),
            "n_assigned": int((after_a["branch_id"] != "").sum()),
            "n_unassigned": int((after_a["branch_id"] == "").sum()),
            "n_branches": int(len(after_b)),
            "min_size": policy.min_size,
            "max_size": policy.max_size,
            "min_full": policy.min_full,
            "unassigned": [
                {"member_id": str(r.member_id), "status": str(r.status), "reason": _unassigned_reason(r.status, g)}
                for r, g in zip(
                    after_a[after_a["branch_id"] == ""].itertuples(),
                    _col(prep.members, "geo_status", "").astype(str).to_numpy()[(after_a["branch_id"] == "").to_numpy()],
                )
            ],
            "distance_m": report["distance_after"],
            "branch_size": {
                "min": int(after_b["size"].min()) if len(after_b) else 0,
                "mean": round(float(after_b["size"].mean()), 1) if len(after_b) else 0.0,
                "max": int(after_b["size"].max()) if len(after_b) else 0,
            },
            "relocated": int((prep.relocated & prep.active).sum()),
            "joined": int(len(placements)),
            "removed": removed,
            "frozen_members": int(prep.frozen.sum()),
            "frozen_branches": sorted(prep.frozen_branches),
            "move_penalty_m": penalty if max_moves is None else budget_info.get("penalty_m"),
            "budget": budget_info,
            "seconds": round(time.perf_counter() - t0, 2),
            "engine": ({"name": engine.name, "workers": engine.workers, "retried": engine.retried}
                       if engine is not None else {"name": "inline", "workers": 1}),
            "notes": notes,
        }
    )
    return RebalanceResult(after_a, after_b, moves, report, placements)


LadderStep = tuple[float, int, float, float | None]  # (move penalty, violation cost, relocated penalty, keep threshold)


def budget_ladder(penalty: float) -> list[LadderStep]:
    """Settings from least to most conservative: raise the move penalty, then penalise the
    relocated too (letting members who moved district stay), then let violations go."""
    ladder: list[LadderStep] = []
    lam = max(penalty, 1.0)
    while lam < MAX_PENALTY_M:
        ladder.append((lam, V_HARD, 0.0, None))
        lam *= 3.0
    ladder.append((MAX_PENALTY_M, V_HARD, 0.0, None))
    for reloc in (250.0, 500.0, 1_000.0, 1_500.0, 2_000.0, 3_000.0, 4_000.0, 6_000.0, 8_000.0, 12_000.0, 16_000.0, 25_000.0, 50_000.0, MAX_PENALTY_M):
        ladder.append((MAX_PENALTY_M, V_HARD, reloc, reloc))
    for V in (2 * int(MAX_PENALTY_M), int(MAX_PENALTY_M), int(MAX_PENALTY_M) // 2, int(MAX_PENALTY_M) // 5):
        ladder.append((MAX_PENALTY_M, V, MAX_PENALTY_M, MAX_PENALTY_M))
    return ladder


def _within_budget(
    prep: _Prepared,
    policy: Policy,
    penalty: float,
    max_moves: int,
    progress: Progress | None,
    info: dict[str, Any],
    cache: dict[Any, Any],
    before_b: pd.DataFrame,
    engine: Any = None,
) -> tuple[list[_RegionPlan] | None, list[_Region], list[NDArray[np.int64]], str]:
    """The least-penalised plan that moves at most ``max_moves`` members (hard).

    Returns (plans or None for the zero-move plan, regions, member index, note). ``cache``
    keeps solved ladder steps, so a sweep of budgets (the curve) solves each step once.
    A step's moves are counted on the plan it really produces (the same count ``moves.csv``
    gets), so the budget holds whatever the regions' own bookkeeping says.
    """
    ladder = budget_ladder(penalty)

    def run(i: int) -> tuple[list[_RegionPlan], list[_Region], list[NDArray[np.int64]]]:
        key = ("step", ladder[i])
        if key not in cache:
            lam, V, reloc, keep = ladder[i]
            rkey = ("regions", keep)
            if rkey not in cache:
                cache[rkey] = _region_problems(prep, keep_threshold=keep)
            regions, index = cache[rkey]
            plans = _solve_all(regions, policy, lam, V, reloc, progress, f"budget step {i + 1}/{len(ladder)}", engine)
            cache[key] = (plans, regions, index)
        return cache[key]

    def moves(i: int) -> int:
        key = ("moves", ladder[i])
        if key not in cache:
            plans, regions, index = run(i)
            after_a, _ = _frames(prep, regions, index, plans)
            cache[key] = len(_move_reasons(prep, before_b, after_a, policy)[0])
        return int(cache[key])

    if moves(0) <= max_moves:
        info["penalty_m"] = ladder[0][0]
        plans, regions, index = run(0)
        return plans, regions, index, f"move budget {max_moves} not binding"
    lo, hi = 0, len(ladder)  # moves(lo) > budget; hi: first step known within budget (len: zero-move plan)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if moves(mid) <= max_moves:
            hi = mid
        else:
            lo = mid
    # any cheaper solved step within budget is at least as good
    solved = sorted(i for i in range(len(ladder)) if ("step", ladder[i]) in cache and moves(i) <= max_moves)
    if solved:
        i = solved[0]
        lam, V, reloc, keep = ladder[i]
        info.update({"penalty_m": lam, "violation_cost": V, "relocated_penalty_m": reloc, "keep_across_districts_below_m": keep})
        plans, regions, index = run(i)
        return plans, regions, index, f"move budget {max_moves}: move penalty {lam:.0f} m, relocated members' penalty {reloc:.0f} m"
    info.update({"penalty_m": None, "fallback": "zero moves"})
    regions, index = _region_problems(prep)
    return None, regions, index, f"move budget {max_moves}: even the smallest fix needs more moves; no one moved"
