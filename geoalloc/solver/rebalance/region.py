"""One region's rebalance: a local search over the site set around the exact assignment.

Sites are the current branches (kept where they are) plus candidate new sites at members'
homes; a site can be closed (merge) or opened (split / accumulation). For fixed sites the
units are assigned exactly (:func:`~geoalloc.solver.rebalance.flow.assign_min_cost`) with arc
cost ``distance + penalty`` when the arc leaves the unit's current branch. The search
re-centres a site on its members, closes an under-filled branch, opens a site where branches
overflow or the region has fewer branches than a fresh plan would, and swaps a branch's site
(close one, open one where members are far); it accepts a change only when the total
penalised cost falls. Sizes are members: a unit's ``demand`` is the members it stands for.

With service centres (``Region.centres``) every site is a centre with a free place: a current
branch meeting elsewhere is first moved to the centre best for its members (it keeps its id
and members), re-centring picks the best free centre instead of a member's home, and new
branches open at free centres. With the planner's branch count (``Region.n_target``, from
``--branches``/``--target-size``) each branch more or fewer than the target costs as much as
a member outside the limits, so the search opens and closes branches to meet it whenever the
moves that takes are worth less (under a tight move budget they may not be).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.rules import Policy, excess
from geoalloc.solver.rebalance.centres import Centres, at_centre, best_centre
from geoalloc.solver.rebalance.flow import assign_min_cost

K_ARCS = 12  # candidate sites per unit in the flow


@dataclass
class Region:
    """Members of one region (free to move) and its sites. Indices are local."""

    name: str
    xy: NDArray[np.float64]  # (n,2) units' current homes
    demand: NDArray[np.int64]  # members each unit stands for
    full: NDArray[np.int64]  # full members of each unit
    cur_site: NDArray[np.int64]  # site index of the current branch in this region, -1 if none
    pinned: NDArray[np.bool_]  # frozen members: may only stay
    pen_factor: NDArray[np.float64]  # 1 for settled members, 0 for relocated/new (no move penalty)
    site_xy: NDArray[np.float64]  # (m,2) current sites
    site_bid: list[str | None]  # branch id per site, None for a new site
    policy: Policy
    n_foreign: int = 0  # members whose current branch is in another region: they must move
    centres: Centres | None = None  # service centres the branches must meet at (None: anywhere)
    n_target: int | None = None  # the planner's branch count for the region (None: at least target_count)


@dataclass
class RegionPlan:
    site_xy: NDArray[np.float64]
    site_bid: list[str | None]
    site_of: NDArray[np.int64]  # member -> index into site_xy
    cost: int
    moves: int
    excess: int


class RegionSolver:
    """Site search for one region at a fixed move penalty and violation cost."""

    def __init__(self, reg: Region, penalty: float, violation_cost: int, reloc_penalty: float = 0.0):
        self.r = reg
        self.penalty = float(penalty)
        self.V = int(violation_cost)
        # relocated/new members pay ``reloc_penalty`` (0 normally; raised under a tight budget)
        pen = np.where(reg.pen_factor > 0, self.penalty, float(reloc_penalty))
        pen = np.where(reg.cur_site >= 0, pen, 0.0)  # nobody to leave
        self.pen = pen
        self.tree_members = cKDTree(reg.xy) if len(reg.xy) else None
        self.centres = reg.centres

    # -- service centres ---------------------------------------------------------------
    def _free(self, site_xy: NDArray[np.float64]) -> NDArray[np.int64]:
        """Places left at each centre with these sites open."""
        c = self.centres
        assert c is not None
        at = at_centre(site_xy, c.xy)
        return c.cap - np.bincount(at[at >= 0], minlength=len(c.xy))

    def _resite(self, site_xy: NDArray[np.float64], site_key: list[int]) -> tuple[NDArray[np.float64], list[int]]:
        """Every current branch at a centre with a place: those meeting elsewhere (or beyond a
        centre's capacity) move to the free centre best for their members, those holding frozen
        members first, then the largest; a branch for which no place is left closes (its members
        are re-assigned), unless it holds a frozen member: it then stays where it is (the
        report lists it as meeting away from the centres)."""
        c, r = self.centres, self.r
        assert c is not None
        at = at_centre(site_xy, c.xy)
        mem = [np.flatnonzero(r.cur_site == k) for k in site_key]
        held = [bool(r.pinned[m].any()) for m in mem]
        order = sorted(range(len(site_xy)), key=lambda j: (not held[j], -int(r.demand[mem[j]].sum()), j))
        free = c.cap.copy()
        place = np.full(len(site_xy), -1, dtype=np.int64)
        for j in order:  # branches already at a centre keep their places first
            if at[j] >= 0 and free[at[j]] > 0:
                place[j] = at[j]
                free[at[j]] -= 1
        for j in order:
            if place[j] < 0:
                k = best_centre(r.xy[mem[j]], r.demand[mem[j]].astype(float), c.xy, free > 0, site_xy[j])
                if k >= 0:
                    place[j] = k
                    free[k] -= 1
        keep = (place >= 0) | np.array(held, dtype=bool)
        out = np.array([c.xy[place[j]] if place[j] >= 0 else site_xy[j] for j in range(len(site_xy))]).reshape(-1, 2)
        return out[keep], [q for q, u in zip(site_key, keep) if u]

    def _recentre_at_centres(self, site_xy: NDArray[np.float64], site_key: list[int],
                             site_of: NDArray[np.int64]) -> NDArray[np.float64]:
        """Each branch to the free centre (or its own) least far from its members, in turn."""
        c, r = self.centres, self.r
        assert c is not None
        out = site_xy.copy()
        at = at_centre(site_xy, c.xy)
        free = self._free(site_xy)
        for j in range(len(site_xy)):
            members = np.flatnonzero(site_of == j)
            if not len(members) or not self._may_recentre(site_key[j]):
                continue
            allowed = free > 0
            if at[j] >= 0:
                allowed[at[j]] = True
            k = best_centre(r.xy[members], r.demand[members].astype(float), c.xy, allowed)
            if k < 0 or k == at[j]:
                continue
            if at[j] >= 0:
                free[at[j]] += 1
            free[k] -= 1
            at[j] = k
            out[j] = c.xy[k]
        return out

    def _may_recentre(self, key: int) -> bool:
        """Whether a site may move to its members: a new one always, a current branch's unless the
        policy keeps meeting points (``extra["recentre_branches"]`` false)."""
        return key < 0 or bool(self.r.policy.extra.get("recentre_branches", True))

    def _count_cost(self, m: int) -> int:
        """What a site count off the planner's target costs (nothing without a target)."""
        n = self.r.n_target
        return 0 if n is None else self.V * abs(m - n)

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
            am, asite, acost, r.full, ones * p.min_size, ones * p.max_size, ones * p.min_full, self.V, demand=r.demand
        )
        return site_of, cost, cur

    def _settle(self, site_xy: NDArray[np.float64], site_key: list[int]) -> tuple[NDArray[np.float64], list[int], NDArray[np.int64], int]:
        """Evaluate, drop sites left empty, re-evaluate until every site is used."""
        while True:
            site_of, cost, _ = self.evaluate(site_xy, site_key)
            used = np.bincount(site_of, minlength=len(site_xy)) > 0
            if used.all() or not used.any():
                return site_xy, site_key, site_of, cost + self._count_cost(len(site_xy))
            site_xy = site_xy[used]
            site_key = [k for k, u in zip(site_key, used) if u]

    # -- search ------------------------------------------------------------------------
    def target_count(self) -> int:
        """The branch count a from-scratch plan would use for this region: by the policy's target
        mean size (:meth:`Policy.target_mean`), or the fewest allowed, never more than the minimum allows."""
        n, p = int(self.r.demand.sum()), self.r.policy
        if self.r.n_target is not None:
            count = self.r.n_target
        else:
            target = p.target_mean()
            fewest = max(1, math.ceil(n / p.max_size))
            count = fewest if target is None else max(fewest, min(math.ceil(n / target), max(1, n // max(p.min_size, 1))))
        if self.centres is not None:  # never more branches than the centres have places
            count = min(count, int(self.centres.cap.sum()))
        return count

    def solve(self, rounds: int = 30) -> RegionPlan:
        r, p = self.r, self.r.policy
        n = len(r.xy)
        if n == 0:
            return RegionPlan(np.zeros((0, 2)), [], np.zeros(0, np.int64), 0, r.n_foreign, 0)
        site_xy = r.site_xy.copy()
        site_key = list(range(len(site_xy)))  # >=0: original site index; <0: new site
        if self.centres is not None:
            site_xy, site_key = self._resite(site_xy, site_key)
        next_new = -1
        need = self.target_count()
        # open sites where members are while the region has fewer than a fresh plan would
        if len(site_xy) < need:
            site_of = self._nearest_or_none(site_xy)
            for _ in range(need):  # bounded: one candidate per missing branch
                if len(site_xy) >= need:
                    break
                c = self._best_new_site(site_xy, site_of)
                if c is None:
                    break
                site_xy = np.vstack([site_xy.reshape(-1, 2), c[None, :]])
                site_key.append(next_new)
                next_new -= 1
                site_of = self._nearest_or_none(site_xy)
        site_xy, site_key, site_of, cost = self._settle(site_xy, site_key)
        if r.n_target is not None:  # close branches above the planner's count, cheapest first
            site_xy, site_key, site_of, cost = self._close_to_target(site_xy, site_key, site_of, cost)
        swaps = 0
        for _ in range(rounds):
            improved = False
            # 1) re-centre sites on their members (no member moves by itself)
            if self.centres is not None:
                cand_xy = self._recentre_at_centres(site_xy, site_key, site_of)
            else:
                cand_xy = site_xy.copy()
                for j in range(len(site_xy)):
                    members = np.flatnonzero(site_of == j)
                    if len(members) and self._may_recentre(site_key[j]):
                        cand_xy[j] = self._medoid(members)
            if not np.allclose(cand_xy, site_xy):
                t = self._settle(cand_xy, list(site_key))
                if t[3] < cost:
                    site_xy, site_key, site_of, cost = t
                    improved = True
            # 2) close a branch that is under its limits (merge), smallest first
            size = self._sizes(site_of, len(site_xy))
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
            size = self._sizes(site_of, len(site_xy))
            if len(site_xy) < need or (size > p.max_size).any():
                for c in self._open_candidates(site_xy, site_of, 3):
                    t = self._settle(np.vstack([site_xy, c[None, :]]), site_key + [next_new])
                    if t[3] < cost:
                        site_xy, site_key, site_of, cost = t
                        next_new -= 1
                        improved = True
                        break
            if not improved:
                # 4) swap: move a branch (close one, open one elsewhere) when that pays for its moves
                if swaps >= int(p.extra.get("swap_rounds", 12)):
                    break
                swap = self._best_swap(site_xy, site_key, site_of, cost, next_new)
                if swap is None:
                    break
                site_xy, site_key, site_of, cost = swap
                next_new -= 1
                swaps += 1
        cur = self._cur_pos(site_key)
        moves = int(((cur >= 0) & (site_of != cur)).sum()) + r.n_foreign
        size = self._sizes(site_of, len(site_xy))
        fulls = np.bincount(site_of, weights=r.full, minlength=len(site_xy)).astype(int)
        bids = [r.site_bid[k] if k >= 0 else None for k in site_key]
        return RegionPlan(site_xy, bids, site_of, cost, moves, int(excess(size, fulls, p).sum()))

    def _sizes(self, site_of: NDArray[np.int64], m: int) -> NDArray[np.int64]:
        """Members per site (units' demand summed)."""
        return np.bincount(site_of, weights=self.r.demand, minlength=m).astype(np.int64)

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
                t = self._settle(np.vstack([site_xy[keep], c[None, :]]), [q for q, u in zip(site_key, keep) if u] + [new_key])
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
        size = np.bincount(site_of[ok], weights=r.demand[ok], minlength=len(site_xy))
        share = np.maximum(size - p.max_size, 0) / np.maximum(size, 1)
        d[ok] += share[site_of[ok]] * self.V
        return d

    def _best_new_site(self, site_xy: NDArray[np.float64], site_of: NDArray[np.int64]) -> NDArray[np.float64] | None:
        cands = self._open_candidates(site_xy, site_of, 1, penalise_moves=False)
        if cands:
            return cands[0]
        if self.centres is not None:  # no centre saves anyone much: the free one nearest the members
            k = best_centre(np.zeros((0, 2)), np.zeros(0), self.centres.xy, self._free(site_xy) > 0,
                            self.r.xy.mean(axis=0))
            return self.centres.xy[k].copy() if k >= 0 else None
        return self.r.xy[0].copy()

    def _close_to_target(self, site_xy: NDArray[np.float64], site_key: list[int], site_of: NDArray[np.int64],
                         cost: int) -> tuple[NDArray[np.float64], list[int], NDArray[np.int64], int]:
        """Close branches while the region has more than the planner's count and closing pays
        (the cheapest few to close are tried each time)."""
        r = self.r
        assert r.n_target is not None
        while len(site_xy) > max(r.n_target, 1):
            size = self._sizes(site_of, len(site_xy))
            pinned = set(site_of[r.pinned].tolist())
            best = None
            for j in [int(j) for j in np.argsort(size, kind="stable") if int(j) not in pinned][:4]:
                keep = np.ones(len(site_xy), dtype=bool)
                keep[j] = False
                t = self._settle(site_xy[keep], [k for k, u in zip(site_key, keep) if u])
                if t[3] < cost and (best is None or t[3] < best[3]):
                    best = t
            if best is None:
                break
            site_xy, site_key, site_of, cost = best
        return site_xy, site_key, site_of, cost

    def _open_candidates(
        self, site_xy: NDArray[np.float64], site_of: NDArray[np.int64], top: int, penalise_moves: bool = True
    ) -> list[NDArray[np.float64]]:
        """Points that would save most as a new site (sum of the best max_size savings): members'
        homes, or free service centres near the members who pay most now."""
        r, p = self.r, self.r.policy
        n = len(r.xy)
        now = self._member_cost(site_xy, site_of)
        pool = np.argsort(-now)[: min(n, 60)]
        if self.centres is not None:
            free = np.flatnonzero(self._free(site_xy) > 0)
            if not len(free):
                return []
            _, near = cKDTree(self.centres.xy[free]).query(r.xy[pool], k=min(len(free), 4))
            points = self.centres.xy[free[np.unique(np.asarray(near))]]
        else:
            points = r.xy[pool]
        radius = float(np.percentile(now[now < self.V], 90)) * 2 if (now < self.V).any() else 5000.0
        radius = max(radius, 1500.0)
        best: list[tuple[float, int]] = []
        cur = r.cur_site
        tree = self.tree_members
        assert tree is not None  # a region with members has its tree
        keys = pool if self.centres is None else np.arange(len(points))
        for c, point in zip(keys, points):
            nb = np.asarray(tree.query_ball_point(point, radius), dtype=np.int64)
            if len(nb) == 0:
                continue
            dnew = np.hypot(*(r.xy[nb] - point).T)
            if penalise_moves:
                dnew = dnew + np.where(cur[nb] >= 0, self.pen[nb], 0.0)
            s = now[nb] - dnew
            s = np.sort(s[s > 0])[::-1][: p.max_size]
            if len(s) >= p.min_size:
                best.append((float(s.sum()), int(c)))
        best.sort(reverse=True)
        at = {int(c): point for c, point in zip(keys, points)}
        return [at[c].copy() for _, c in best[:top]]

    def _medoid(self, members: NDArray[np.int64]) -> NDArray[np.float64]:
        pts = self.r.xy[members]
        if len(pts) > 300:
            pts = pts[:: max(1, len(pts) // 300)]
        d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1]).sum(axis=1)
        return pts[int(np.argmin(d))].copy()
