"""The global phase of the large-scale matheuristic: a first plan on the reduced problem, fast.

Gnägi & Baumann (Computers & OR 132, 2021) start from a plan of the reduced problem in which a
point may only go to its ``k`` nearest open sites. Here that plan comes from location-allocation
rounds compiled with numba: for fixed sites, a regret-greedy assignment over each point's ``k``
nearest sites (the classic generalised-assignment heuristic: the point that would lose most by
missing its best site with room goes first), improved by shift and swap moves between those
sites; then every site moves to its cluster's 1-median, and again until the sites stop moving.

Why compiled: with weighted demands the exact flow splits points, and pinning them one network at
a time took 21 s for p3038_700's first plan (n=3,038, p=700); these rounds take a fraction of a
second and end nearer the best known. Only for instances whose sites are their points and whose
only size rule is the maximum (the textbook CPMP); :func:`~geoalloc.solver.textbook.applies` says
when (it lives apart so that only this module imports numba), and the caller
keeps its general construction otherwise.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.solver.compiled import njit
from geoalloc.solver.construct import seed_sites
from geoalloc.solver.instance import Instance
from geoalloc.solver.textbook import applies

__all__ = ["applies", "global_plan", "refine", "search", "solve"]

NEAREST = 16  # open sites each point may use in the reduced problem (more only when it fits nowhere)
ROUNDS = 30  # location-allocation rounds at most (they usually stop moving within ten)


@njit(cache=True)
def _d(xy: NDArray[np.float64], w: NDArray[np.float64], i: int, j: int, floor: bool) -> float:
    d = np.hypot(xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1])
    if floor:
        d = np.floor(d)
    return w[i] * d


@njit(cache=True)
def _regret(
    xy: NDArray[np.float64], w: NDArray[np.float64], floor: bool, dem: NDArray[np.int64], cap: int,
    sites: NDArray[np.int64], nb: NDArray[np.int64], cd: NDArray[np.float64],
) -> NDArray[np.int64]:
    """Regret greedy over the nearest-site lists; cluster per point, -1 where nothing had room."""
    n, k = nb.shape
    p = len(sites)
    out = np.full(n, -1, dtype=np.int64)
    room = np.full(p, cap, dtype=np.int64)
    for b in range(p):
        out[sites[b]] = b
        room[b] -= dem[sites[b]]
    b1 = np.full(n, -1, dtype=np.int64)
    b2 = np.full(n, -1, dtype=np.int64)
    c1 = np.zeros(n)
    c2 = np.zeros(n)

    def refresh(i: int) -> None:
        b1[i] = -1
        b2[i] = -1
        for s in range(k):
            b = nb[i, s]
            if room[b] >= dem[i]:
                if b1[i] < 0:
                    b1[i] = b
                    c1[i] = cd[i, s]
                else:
                    b2[i] = b
                    c2[i] = cd[i, s]
                    break

    for i in range(n):
        if out[i] < 0:
            refresh(i)
    left = 0
    for i in range(n):
        if out[i] < 0:
            left += 1
    for _ in range(left):
        best = -1
        score = -1.0
        for i in range(n):
            if out[i] >= 0:
                continue
            if b1[i] < 0:
                r = 1e300  # fits none of its nearest: place it first, wherever there is room
            elif b2[i] < 0:
                r = 1e200 + dem[i]
            else:
                r = c2[i] - c1[i] + 1e-9 * dem[i]
            if r > score:
                score = r
                best = i
        i = best
        b = b1[i]
        if b < 0:  # the nearest site with room, over all sites
            bd = 1e300
            for s in range(p):
                if room[s] >= dem[i]:
                    d = _d(xy, w, i, sites[s], floor)
                    if d < bd:
                        bd = d
                        b = s
            if b < 0:
                return out
        out[i] = b
        room[b] -= dem[i]
        for j in range(n):
            if out[j] < 0 and (b1[j] == b or b2[j] == b) and room[b] < dem[j]:
                refresh(j)
    return out


@njit(cache=True)
def _improve(
    xy: NDArray[np.float64], w: NDArray[np.float64], floor: bool, dem: NDArray[np.int64], cap: int,
    sites: NDArray[np.int64], nb: NDArray[np.int64], cd: NDArray[np.float64], out: NDArray[np.int64],
    max_passes: int,
) -> None:
    """Shift and swap moves towards nearer sites (in place) until none gains."""
    n, k = nb.shape
    p = len(sites)
    is_site = np.zeros(n, dtype=np.bool_)
    for b in range(p):
        is_site[sites[b]] = True
    load = np.zeros(p, dtype=np.int64)
    for i in range(n):
        load[out[i]] += dem[i]
    # members as linked lists
    head = np.full(p, -1, dtype=np.int64)
    nxt = np.full(n, -1, dtype=np.int64)
    prv = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        b = out[i]
        nxt[i] = head[b]
        if head[b] >= 0:
            prv[head[b]] = i
        head[b] = i

    def unlink(i: int) -> None:
        b = out[i]
        if prv[i] >= 0:
            nxt[prv[i]] = nxt[i]
        else:
            head[b] = nxt[i]
        if nxt[i] >= 0:
            prv[nxt[i]] = prv[i]
        prv[i] = -1
        nxt[i] = -1

    def link(i: int, b: int) -> None:
        out[i] = b
        nxt[i] = head[b]
        prv[i] = -1
        if head[b] >= 0:
            prv[head[b]] = i
        head[b] = i

    for _ in range(max_passes):
        moved = 0
        for i in range(n):
            if is_site[i]:
                continue
            a = out[i]
            cur = _d(xy, w, i, sites[a], floor)
            for s in range(k):
                b = nb[i, s]
                c = cd[i, s]
                if c >= cur - 1e-9:
                    break
                if b == a:
                    continue
                if load[b] + dem[i] <= cap:
                    unlink(i)
                    load[a] -= dem[i]
                    load[b] += dem[i]
                    link(i, b)
                    moved += 1
                    break
                best_j = -1
                best_g = 1e-9
                j = head[b]
                while j >= 0:
                    if not is_site[j] and load[b] - dem[j] + dem[i] <= cap and load[a] - dem[i] + dem[j] <= cap:
                        g = cur + _d(xy, w, j, sites[b], floor) - c - _d(xy, w, j, sites[a], floor)
                        if g > best_g:
                            best_g = g
                            best_j = j
                    j = nxt[j]
                if best_j >= 0:
                    j = best_j
                    unlink(i)
                    unlink(j)
                    load[a] += dem[j] - dem[i]
                    load[b] += dem[i] - dem[j]
                    link(i, b)
                    link(j, a)
                    moved += 1
                    break
        if moved == 0:
            break


@njit(cache=True)
def _recentre(
    xy: NDArray[np.float64], w: NDArray[np.float64], floor: bool, sites: NDArray[np.int64], out: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Each cluster's 1-median among its members (its load does not change)."""
    n = len(out)
    p = len(sites)
    order = np.argsort(out, kind="mergesort")
    start = np.zeros(p + 1, dtype=np.int64)
    for i in range(n):
        start[out[i] + 1] += 1
    for b in range(p):
        start[b + 1] += start[b]
    new = sites.copy()
    for b in range(p):
        mem = order[start[b]:start[b + 1]]
        best = 1e300
        for m in mem:
            tot = 0.0
            for j in mem:
                tot += _d(xy, w, j, m, floor)
                if tot >= best:
                    break
            if tot < best - 1e-9 or (m == sites[b] and tot <= best + 1e-9):
                best = tot
                new[b] = m
    return new


def reduced_assign(inst: Instance, sites: NDArray[np.int64], nearest: int = NEAREST) -> NDArray[np.int64] | None:
    """A good assignment to fixed ``sites`` over each point's ``nearest`` open sites, or None."""
    p = len(sites)
    k = min(nearest, p)
    cd, nb = cKDTree(inst.xy[sites]).query(inst.xy, k=k)
    nb = np.asarray(nb, dtype=np.int64).reshape(inst.n, k)
    cd = np.asarray(cd, dtype=np.float64).reshape(inst.n, k)
    if inst.floor:
        cd = np.floor(cd)
    cd = cd * inst.weight[:, None]
    dem = inst.demand.astype(np.int64)
    out = _regret(inst.xy, inst.weight, inst.floor, dem, int(inst.max_size), sites, nb, cd)
    if (out < 0).any():
        return None
    _improve(inst.xy, inst.weight, inst.floor, dem, int(inst.max_size), sites, nb, cd, out, 50)
    return out


def global_plan(
    inst: Instance, rng: np.random.Generator, deadline: float, rounds: int = ROUNDS, local: bool = True,
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """Location-allocation on the reduced problem from k-means++ sites, then (``local``) the local
    phase (:func:`local_phase`): (sites, cluster per point), or None."""
    best: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
    best_obj = np.inf
    for _ in range(3):
        sites = seed_sites(inst, rng, greedy=False)
        prev = np.inf
        for _ in range(rounds):
            branch = reduced_assign(inst, sites)
            if branch is None:
                break
            obj = inst.objective(sites, branch)
            if obj < best_obj - 1e-9:
                best, best_obj = (sites.copy(), branch.copy()), obj
            if obj >= prev - 1e-9 or time.perf_counter() > deadline:
                break
            prev = obj
            new = _recentre(inst.xy, inst.weight, inst.floor, sites, branch)
            if np.array_equal(new, sites):
                break
            sites = new
        if best is not None:
            break
    if best is None or not local:
        return best
    return local_phase(inst, best[0], best[1], rng, deadline)


@njit(cache=True)
def _assign_costs(
    c: NDArray[np.float64], own: NDArray[np.int64], dem_p: NDArray[np.int64], cap: int, out: NDArray[np.int64],
) -> float:
    """Assign points to a few sites from their cost matrix ``c`` (point by site; ``own[a]``: the
    site that is point a's own, or -1): regret greedy, then shifts and swaps; ``out`` gets a site
    per point. Returns the cost, or inf when the greedy found no room for a point.

    A point's regret changes only when a site it could use fills up, so the regrets are kept
    and sorted once (ties by point, as a first-best scan takes them) and computed again only
    after a site's room falls below the largest demand: the same plan as scanning every point
    in every round, at a fraction of the work."""
    npt, q = c.shape
    room = np.full(q, cap, dtype=np.int64)
    done = np.zeros(npt, dtype=np.bool_)
    maxdem = 0
    left = 0
    for a in range(npt):
        out[a] = -1
        t = own[a]
        if t >= 0:
            out[a] = t
            room[t] -= dem_p[a]
            done[a] = True
        else:
            left += 1
        maxdem = max(maxdem, dem_p[a])
    reg = np.empty(npt)
    top = np.empty(npt, dtype=np.int64)
    order = np.empty(0, dtype=np.int64)
    pos = 0
    fresh = False
    for _ in range(left):
        if not fresh:
            cnt = 0
            for a in range(npt):
                if done[a]:
                    continue
                f1 = 1e300
                f2 = 1e300
                t1 = -1
                for t in range(q):
                    if room[t] >= dem_p[a]:
                        if c[a, t] < f1:
                            f2 = f1
                            f1 = c[a, t]
                            t1 = t
                        elif c[a, t] < f2:
                            f2 = c[a, t]
                if t1 < 0:
                    return np.inf
                reg[a] = (f2 - f1 if f2 < 1e299 else 1e200) + 1e-9 * dem_p[a]
                top[a] = t1
                cnt += 1
            undone = np.empty(cnt, dtype=np.int64)
            key = np.empty(cnt)
            cnt = 0
            for a in range(npt):
                if not done[a]:
                    undone[cnt] = a
                    key[cnt] = -reg[a]
                    cnt += 1
            order = undone[np.argsort(key, kind="mergesort")]
            pos = 0
            fresh = True
        best = order[pos]
        pos += 1
        bt = top[best]
        out[best] = bt
        room[bt] -= dem_p[best]
        done[best] = True
        if room[bt] < maxdem:
            fresh = False
    _shift_swap(c, own, dem_p, room, out)
    tot = 0.0
    for a in range(npt):
        tot += c[a, out[a]]
    return tot


@njit(cache=True)
def _shift_swap(c: NDArray[np.float64], own: NDArray[np.int64], dem_p: NDArray[np.int64], room: NDArray[np.int64],
                out: NDArray[np.int64]) -> None:
    """Improve the assignment ``out`` (``room`` left per site) by shifting a point to a cheaper site
    with room, or swapping it with a point there, until nothing gains (20 rounds at most)."""
    npt, q = c.shape
    for _ in range(20):
        moved = False
        for a in range(npt):
            ta = out[a]
            if own[a] == ta:
                continue
            for t in range(q):
                if t == ta or c[a, t] >= c[a, ta] - 1e-9:
                    continue
                if room[t] >= dem_p[a]:
                    room[t] -= dem_p[a]
                    room[ta] += dem_p[a]
                    out[a] = t
                    moved = True
                    break
                bj = -1
                bg = 1e-9
                for b in range(npt):
                    if out[b] != t or own[b] == t:
                        continue
                    dd = dem_p[a] - dem_p[b]
                    if room[t] >= dd and room[ta] >= -dd:
                        g = c[a, ta] + c[b, t] - c[a, t] - c[b, ta]
                        if g > bg:
                            bg = g
                            bj = b
                if bj >= 0:
                    dd = dem_p[a] - dem_p[bj]
                    room[t] -= dd
                    room[ta] += dd
                    out[a] = t
                    out[bj] = ta
                    moved = True
                    break
        if not moved:
            break


@njit(cache=True)
def _cost_matrix(
    xy: NDArray[np.float64], w: NDArray[np.float64], floor: bool, dem: NDArray[np.int64], pts: NDArray[np.int64],
    tsites: NDArray[np.int64], cands: NDArray[np.int64],
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64]]:
    """Each point's cost to every site, then to every candidate (columns), its demand, and which
    site is its own point (-1: none)."""
    npt = len(pts)
    q = len(tsites)
    nc = len(cands)
    c = np.empty((npt, q + nc))
    dem_p = np.empty(npt, dtype=np.int64)
    own = np.full(npt, -1, dtype=np.int64)
    for a in range(npt):
        dem_p[a] = dem[pts[a]]
        for t in range(q):
            c[a, t] = _d(xy, w, pts[a], tsites[t], floor)
            if pts[a] == tsites[t]:
                own[a] = t
        for k in range(nc):
            c[a, q + k] = _d(xy, w, pts[a], cands[k], floor)
    return c, own, dem_p


@njit(cache=True)
def _sub_assign(
    xy: NDArray[np.float64], w: NDArray[np.float64], floor: bool, dem: NDArray[np.int64], cap: int,
    pts: NDArray[np.int64], tsites: NDArray[np.int64], out: NDArray[np.int64],
) -> float:
    """Assign ``pts`` to the few sites ``tsites`` (each site's point serves itself) by
    :func:`_assign_costs`; ``out`` gets a position in ``tsites`` per point. Returns the cost, or
    inf when the greedy found no room for a point."""
    c, own, dem_p = _cost_matrix(xy, w, floor, dem, pts, tsites, tsites[:0])
    return _assign_costs(c, own, dem_p, cap, out)


@njit(cache=True)
def _neighbourhood_move(
    xy: NDArray[np.float64], w: NDArray[np.float64], floor: bool, dem: NDArray[np.int64], cap: int,
    pts: NDArray[np.int64], tsites: NDArray[np.int64], cur_cost: float, cands: NDArray[np.int64],
) -> tuple[float, NDArray[np.int64], NDArray[np.int64]]:
    """Best plan of a freed neighbourhood: its sites as they are, or one of them moved to one of its
    ``cands`` points, each reassigned by :func:`_assign_costs`. Returns (cost, sites, position per
    point); the cost is ``cur_cost`` (and the sites unchanged) when nothing gains. The costs of
    every point to every site and candidate are computed once, not once per trial."""
    npt = len(pts)
    q = len(tsites)
    nc = len(cands)
    cc, own, dem_p = _cost_matrix(xy, w, floor, dem, pts, tsites, cands)  # columns: the sites, then the candidates
    out = np.empty(npt, dtype=np.int64)
    best_out = np.empty(npt, dtype=np.int64)
    best_sites = tsites.copy()
    best = cur_cost - 1e-9 * max(1.0, cur_cost)
    found = False
    c = cc[:, :q].copy()
    base = _assign_costs(c, own, dem_p, cap, out)
    if base < best:
        best = base
        best_out[:] = out
        found = True
    trial = tsites.copy()
    for t in range(q):
        for k in range(nc):
            m = cands[k]
            clash = False
            for u in range(q):
                if tsites[u] == m:
                    clash = True
            if clash:
                continue
            # every point at its nearest trial site: a lower bound on any assignment's cost
            low = 0.0
            for a in range(npt):
                f = 1e300
                for u in range(q):
                    d = cc[a, q + k] if u == t else cc[a, u]
                    if d < f:
                        f = d
                low += f
                if low >= best:
                    break
            if low >= best:
                continue
            trial[:] = tsites
            trial[t] = m
            for a in range(npt):
                own[a] = -1
                for u in range(q):
                    c[a, u] = cc[a, q + k] if u == t else cc[a, u]
                    if pts[a] == trial[u]:
                        own[a] = u
            cost = _assign_costs(c, own, dem_p, cap, out)
            if cost < best:
                best = cost
                best_out[:] = out
                best_sites[:] = trial
                found = True
    if not found:
        return cur_cost, tsites.copy(), best_out
    return best, best_sites, best_out


LOCAL_CLUSTERS = (3, 5)  # clusters freed per neighbourhood: first pass size, then the grown size
LOCAL_CANDIDATES = 24  # points of the neighbourhood nearest each freed site that it may move to
LOCAL_MAX_POINTS = 400  # fewer clusters when they would free more points than this
REQUEUE_FACTOR = 4  # after a gain, regions are recomputed among this many times the region size nearest the change


@dataclass(frozen=True)
class Moves:
    """The neighbourhood moves' size: clusters freed per pass (``sizes``, one pass each) and the
    points of the neighbourhood nearest each freed site that it may move to (``candidates``)."""

    sizes: tuple[int, ...] = LOCAL_CLUSTERS
    candidates: int = LOCAL_CANDIDATES


TEXTBOOK = Moves()  # the benchmark form's (clusters of a few to 60 points)


class Memo:
    """Which neighbourhoods were solved in which state: a cluster's version changes whenever its
    members or site change, and a neighbourhood is tried again only when one of its versions did."""

    def __init__(self, p: int) -> None:
        self.version = np.zeros(p, dtype=np.int64)
        self.solved: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.counter = 0

    def touch(self, clusters: NDArray[np.int64]) -> None:
        self.counter += 1
        self.version[clusters] = self.counter

    def stamp(self, clusters: NDArray[np.int64]) -> tuple[int, ...]:
        return tuple(self.version[clusters].tolist())


def _regions(tree: cKDTree, centres: NDArray[np.float64], sizes: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Per cluster (its site at a row of ``centres``), itself and its nearest clusters (by site),
    ``size`` of them, fewer (down to two) when they would free more than LOCAL_MAX_POINTS points;
    -1 pads the shortened rows."""
    m, k = len(centres), min(len(sizes), size)
    _, near = tree.query(centres, k=k)
    near = np.asarray(near, dtype=np.int64).reshape(m, k)
    cut = (np.cumsum(sizes[near], axis=1) > LOCAL_MAX_POINTS) & (np.arange(k) >= 2)[None, :]
    return np.where(cut, -1, near)


def _local_moves(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator,
    deadline: float, stats: dict[str, object] | None = None, memo: Memo | None = None,
    seeds: NDArray[np.int64] | None = None, moves: Moves | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Free a cluster and its nearest clusters, move one of their sites anywhere among their points
    (or none) and reassign their points; keep the change when the plan gains. Driven by work: the
    clusters to try wait in a queue (``seeds``, default all, in a seeded order); a gain queues the
    clusters near the changed ones, and a neighbourhood is tried again only when one of its
    clusters changed (``memo``). First with ``moves.sizes[0]`` clusters, then the grown size
    (default :data:`TEXTBOOK`); ``deadline`` is a ceiling. The plan never gets worse or invalid (each step is checked against
    the instance's rules before it is kept)."""
    p = len(sites)
    sites, branch = sites.copy(), branch.copy()
    dem = inst.demand.astype(np.int64)
    cap = int(inst.max_size)
    memo = memo or Memo(p)
    steps = gains = 0
    t0 = time.perf_counter()
    start = rng.permutation(p) if seeds is None else seeds[rng.permutation(len(seeds))]
    mv = moves or TEXTBOOK
    obj = inst.objective(sites, branch)  # the current plan's, kept as it changes
    for size in mv.sizes:
        order = np.argsort(branch, kind="stable")
        cuts = np.searchsorted(branch[order], np.arange(p + 1))
        sizes = np.diff(cuts)
        regions = _regions(cKDTree(inst.xy[sites]), inst.xy[sites], sizes, size)
        queue = deque(int(c) for c in start)
        queued = np.zeros(p, dtype=bool)
        queued[start] = True
        while queue and time.perf_counter() <= deadline:
            seed = queue.popleft()
            queued[seed] = False
            row = regions[seed]
            clusters = np.sort(row[row >= 0])
            key = (size, *clusters.tolist())
            stamp = memo.stamp(clusters)
            if memo.solved.get(key) == stamp:
                continue
            memo.solved[key] = stamp
            steps += 1
            pts = np.concatenate([order[cuts[b]:cuts[b + 1]] for b in clusters])
            tsites = sites[clusters]
            cur_cost = float(inst.cost(pts, sites[branch[pts]]).sum())
            kk = min(len(pts), mv.candidates)
            cand = np.arange(len(pts)) if kk == len(pts) else \
                np.unique(cKDTree(inst.xy[pts]).query(inst.xy[tsites], k=kk)[1].reshape(-1))
            cost, new_sites, pos = _neighbourhood_move(inst.xy, inst.weight, inst.floor, dem, cap, pts, tsites,
                                                       cur_cost, pts[cand])
            if cost >= cur_cost:
                continue
            s2, b2 = sites.copy(), branch.copy()
            s2[clusters] = new_sites
            b2[pts] = clusters[pos]
            obj2 = inst.objective(s2, b2)
            if inst.violations(s2, b2) or obj2 >= obj:
                continue
            sites, branch, obj = s2, b2, obj2
            memo.touch(clusters)
            memo.solved[key] = memo.stamp(clusters)
            gains += 1
            order = np.argsort(branch, kind="stable")
            cuts = np.searchsorted(branch[order], np.arange(p + 1))
            sizes = np.diff(cuts)
            # only the regions that held a changed cluster or lie near one can change: recompute
            # those (a region lies among the changed sites' REQUEUE_FACTOR * size nearest, save
            # rare layouts), then every cluster whose region holds a changed one goes back in the queue
            tree = cKDTree(inst.xy[sites])
            _, near = tree.query(inst.xy[sites[clusters]], k=min(p, REQUEUE_FACTOR * size))
            changed = np.zeros(p + 1, dtype=bool)  # the padding's -1 looks up the last, False
            changed[clusters] = True
            rows = np.union1d(np.asarray(near, dtype=np.int64).ravel(), np.nonzero(changed[regions].any(axis=1))[0])
            regions[rows] = _regions(tree, inst.xy[sites[rows]], sizes, size)
            again = np.nonzero(changed[regions].any(axis=1) & ~queued)[0]
            queue.extend(int(c) for c in again)
            queued[again] = True
        start = np.arange(p) if seeds is None else start
    if stats is not None:
        stats["local_steps"] = int(stats.get("local_steps", 0)) + steps  # type: ignore[call-overload]
        stats["local_gains"] = int(stats.get("local_gains", 0)) + gains  # type: ignore[call-overload]
        stats["local_seconds"] = round(float(stats.get("local_seconds", 0.0)) + time.perf_counter() - t0, 3)  # type: ignore[arg-type]
    return sites, branch


@njit(cache=True)
def _open_bounds(
    xy: NDArray[np.float64], w: NDArray[np.float64], floor: bool, order: NDArray[np.int64], cuts: NDArray[np.int64],
    sites: NDArray[np.int64], nbhs: NDArray[np.int64], ms: NDArray[np.int64], cur: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Per opening (a site at ``ms[r]`` among the clusters ``nbhs[r]``): the change in cost if every
    point of those clusters went to its nearest of their sites and the new one, capacity aside."""
    nm, k = nbhs.shape
    out = np.empty(nm)
    for r in range(nm):
        m = ms[r]
        tot = 0.0
        for c in range(k):
            b = nbhs[r, c]
            for q in range(cuts[b], cuts[b + 1]):
                i = order[q]
                f = _d(xy, w, i, m, floor)
                for c2 in range(k):
                    d = _d(xy, w, i, sites[nbhs[r, c2]], floor)
                    if d < f:
                        f = d
                tot += f - cur[i]
        out[r] = tot
    return out


DROP_ADD_CLUSTERS = 6  # clusters reassigned around a closed site and around an opened one
DROP_ADD_TRIES = 60  # best-ranked closings and openings paired per pass


def drop_add(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], deadline: float, memo: Memo | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], int]:
    """Close sites where their neighbours absorb their points cheaply and open sites where points
    gain most, in pairs whose neighbourhoods do not overlap: this moves sites between areas, which
    moves inside a neighbourhood of fixed site count cannot. Returns (sites, branch, pairs kept)."""
    p = len(sites)
    if p < 2 * DROP_ADD_CLUSTERS:
        return sites, branch, 0
    dem = inst.demand.astype(np.int64)
    cap = int(inst.max_size)
    order = np.argsort(branch, kind="stable")
    cuts = np.searchsorted(branch[order], np.arange(p + 1))
    members = [order[cuts[b]:cuts[b + 1]] for b in range(p)]
    tree = cKDTree(inst.xy[sites])
    cur = inst.cost(np.arange(inst.n), sites[branch])
    # as many clusters as keep a region within LOCAL_MAX_POINTS points (at least two)
    k = int(max(2, min(DROP_ADD_CLUSTERS, LOCAL_MAX_POINTS * p // max(inst.n, 1))))
    _, near_site = tree.query(inst.xy[sites], k=k)
    drops = []
    for b in range(p):
        if time.perf_counter() > deadline:
            return sites, branch, 0
        nbh = np.asarray(near_site[b], dtype=np.int64)
        pts = np.concatenate([members[int(c)] for c in nbh])
        keep = nbh[nbh != b]
        out = np.empty(len(pts), dtype=np.int64)
        after = _sub_assign(inst.xy, inst.weight, inst.floor, dem, cap, pts, sites[keep], out)
        if np.isfinite(after):
            drops.append((after - float(cur[pts].sum()), int(b), nbh, pts, keep, out.copy()))
    if time.perf_counter() > deadline:
        return sites, branch, 0
    is_site = np.zeros(inst.n, dtype=bool)
    is_site[sites] = True
    _, near_pt = tree.query(inst.xy, k=k)
    ms = np.nonzero(~is_site)[0]
    nbhs = np.asarray(near_pt, dtype=np.int64).reshape(inst.n, k)[ms]
    # the new site's point must be among the points reassigned
    outside = ~(nbhs == branch[ms][:, None]).any(axis=1)
    nbhs[outside, -1] = branch[ms[outside]]
    # every point at its nearest site of the opening: below any assignment's cost, so openings
    # taken in this order stop once the bound cannot reach the DROP_ADD_TRIES-th best (the same
    # openings as valuing every one, at a fraction of the assignments)
    low = _open_bounds(inst.xy, inst.weight, inst.floor, order, cuts, sites, nbhs, ms, cur)
    tol = 1e-9 * max(1.0, float(cur.sum()))
    adds: list[tuple[float, int, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]] = []
    kth: list[float] = []  # the best DROP_ADD_TRIES gains so far, a max-heap by negation
    for r in np.lexsort((ms, low)):
        if len(kth) >= DROP_ADD_TRIES and low[r] > -kth[0] + tol:
            break
        if time.perf_counter() > deadline:
            return sites, branch, 0
        m, nbh = int(ms[r]), nbhs[r]
        pts = np.concatenate([members[int(c)] for c in nbh])
        tsites = np.concatenate([sites[nbh], [m]])
        out = np.empty(len(pts), dtype=np.int64)
        after = _sub_assign(inst.xy, inst.weight, inst.floor, dem, cap, pts, tsites, out)
        if np.isfinite(after):
            gain = after - float(cur[pts].sum())
            adds.append((gain, m, nbh, pts, tsites, out.copy()))
            heapq.heappush(kth, -gain)
            if len(kth) > DROP_ADD_TRIES:
                heapq.heappop(kth)
    drops.sort(key=lambda r: (r[0], r[1]))
    adds.sort(key=lambda r: (r[0], r[1]))
    drops, adds = drops[:DROP_ADD_TRIES], adds[:DROP_ADD_TRIES]
    touched = np.zeros(p, dtype=bool)
    s2, b2 = sites.copy(), branch.copy()
    kept = 0
    used_add: set[int] = set()
    for dg, b, nbh_d, pts_d, keep, out_d in drops:
        if touched[nbh_d].any():
            continue
        for ai, (ag, site_pt, nbh_a, pts_a, tsites, out_a) in enumerate(adds):
            if dg + ag >= -1e-12 * max(1.0, float(cur.sum())):
                break
            if ai in used_add or touched[nbh_a].any() or np.intersect1d(nbh_a, nbh_d).size:
                continue
            s2[b] = site_pt
            b2[pts_d] = keep[out_d]
            slots = np.concatenate([nbh_a, [b]])
            b2[pts_a] = slots[out_a]
            touched[nbh_d] = True
            touched[nbh_a] = True
            used_add.add(ai)
            kept += 1
            break
    if kept == 0 or inst.violations(s2, b2) or inst.objective(s2, b2) >= inst.objective(sites, branch):
        return sites, branch, 0
    if memo is not None:
        memo.touch(np.nonzero(touched)[0])
    return s2, b2, kept


def local_phase(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator,
    deadline: float, stats: dict[str, object] | None = None, rounds: int = 30, memo: Memo | None = None,
    moves: Moves | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Neighbourhood moves until settled, then site closings/openings in pairs, and again, until a
    round of pairs finds nothing (at most ``rounds``; ``deadline`` as a ceiling)."""
    st: dict[str, object] = {}
    memo = memo or Memo(len(sites))
    pairs = 0
    sites, branch = _local_moves(inst, sites, branch, rng, deadline, st, memo, moves=moves)
    for _ in range(rounds):
        if time.perf_counter() > deadline:
            break
        sites, branch, kept = drop_add(inst, sites, branch, deadline, memo)
        if kept == 0:
            break
        pairs += kept
        sites, branch = _local_moves(inst, sites, branch, rng, deadline, st, memo, moves=moves)
    if stats is not None:  # counters add up over the calls (the search calls this after every kick)
        st["drop_add_pairs"] = pairs
        for key, value in st.items():
            total = stats.get(key, 0)
            assert isinstance(value, int | float) and isinstance(total, int | float)
            stats[key] = round(total + value, 3) if isinstance(value, float) else total + value
    return sites, branch


KICK_REGION = 6  # clusters around a random one whose sites a kick may move ...
KICK_MOVES = 2  # ... and how many of their sites it moves to random points of the region
DROP_ADD_EVERY = 50  # kicks between rounds of site closings/openings over the whole plan


def _kick(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """Move a few sites of a random region to random points of it and reassign the region:
    (sites, branch, clusters changed), or None when the region's points found no room."""
    p = len(sites)
    b = int(rng.integers(p))
    k = min(p, KICK_REGION)
    _, near = cKDTree(inst.xy[sites]).query(inst.xy[sites[b]], k=k)
    region = np.sort(np.atleast_1d(near).astype(np.int64))
    pts = np.nonzero(np.isin(branch, region))[0]
    tsites = sites[region].copy()
    free = np.setdiff1d(pts, tsites)
    if len(free) == 0:
        return None
    moved = rng.choice(len(region), size=min(KICK_MOVES, len(region), len(free)), replace=False)
    tsites[moved] = rng.choice(free, size=len(moved), replace=False)
    out = np.empty(len(pts), dtype=np.int64)
    cost = _sub_assign(inst.xy, inst.weight, inst.floor, inst.demand.astype(np.int64), int(inst.max_size), pts,
                       tsites, out)
    if not np.isfinite(cost):
        return None
    s2, b2 = sites.copy(), branch.copy()
    s2[region] = tsites
    b2[pts] = region[out]
    return s2, b2, region


def search(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator,
    deadline: float, *, kicks: int | None = None, stats: dict[str, object] | None = None,
    moves: Moves | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The local phase from a plan, then an iterated local search: kick a region (:func:`_kick`),
    descend again where the kick changed the plan (the memo keeps every other neighbourhood
    solved), keep the result only when it is better. ``kicks``: a work limit (None: until
    ``deadline``, which is always the ceiling). Never returns a worse or invalid plan."""
    st: dict[str, object] = {}
    sites, branch = local_phase(inst, sites, branch, rng, deadline, st, moves=moves)
    best_obj = inst.objective(sites, branch)
    best_memo = Memo(len(sites))
    done = gained = 0
    while (kicks is None or done < kicks) and time.perf_counter() < deadline:
        kicked = _kick(inst, sites, branch, rng)
        done += 1
        if kicked is None:
            continue
        memo = Memo(len(sites))
        memo.version[:], memo.solved, memo.counter = best_memo.version, dict(best_memo.solved), best_memo.counter
        memo.touch(kicked[2])
        _, near = cKDTree(inst.xy[kicked[0]]).query(inst.xy[kicked[0][kicked[2]]], k=min(len(sites), 2 * KICK_REGION))
        seeds = np.unique(np.asarray(near, dtype=np.int64))
        s2, b2 = _local_moves(inst, kicked[0], kicked[1], rng, deadline, st, memo, seeds=seeds, moves=moves)
        if done % DROP_ADD_EVERY == 0:
            s2, b2 = local_phase(inst, s2, b2, rng, deadline, st, rounds=3, memo=memo, moves=moves)
        obj = inst.objective(s2, b2)
        if obj < best_obj - 1e-9 * max(1.0, best_obj) and not inst.violations(s2, b2):
            sites, branch, best_obj, best_memo = s2, b2, obj, memo
            gained += 1
    if stats is not None:
        stats.update(st)
        stats.update({"ils_kicks": done, "ils_gains": gained})
    return sites, branch


def solve(
    inst: Instance, rng: np.random.Generator, deadline: float, *, kicks: int | None = None,
    stats: dict[str, object] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], float] | None:
    """The matheuristic: :func:`global_plan`, then :func:`search`; (sites, branch, objective)."""
    first = global_plan(inst, rng, deadline, local=False)
    if first is None:
        return None
    st: dict[str, object] = {"construct_objective": inst.objective(*first)}
    sites, branch = search(inst, first[0], first[1], rng, deadline, kicks=kicks, stats=st)
    if stats is not None:
        stats.update(st)
    return sites, branch, inst.objective(sites, branch)


# the product's districts (clusters of about 40 points): regions of three clusters, eight
# candidate points per freed site (the textbook moves take seconds per district there)
PRODUCT = Moves(sizes=(3,), candidates=8)


def refine(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator, deadline: float,
    *, kicks: int, stats: dict[str, object] | None = None,
) -> NDArray[np.int64]:
    """Sites for a product district (:func:`~geoalloc.solver.textbook.refines`), from its plan:
    :func:`search` with ``kicks`` kicks on the relaxation with the maximum size as the only size
    rule. The caller assigns its points to them under every rule and keeps the plan only when it
    is valid and better. Where the lower limits rarely bind (loose capacity, most members full)
    the relaxation's plans are the district's; where they bind, that assignment fails or costs
    more, and the caller's plan stands."""
    relaxed = replace(inst, min_size=0, min_full=0)
    out, _ = search(relaxed, sites, branch, rng, deadline, kicks=kicks, stats=stats, moves=PRODUCT)
    return out
