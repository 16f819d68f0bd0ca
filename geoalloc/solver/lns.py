"""Large-neighbourhood search with exact sub-MIPs: free a few neighbouring clusters, re-solve them.

The local phase of the large-scale matheuristics for capacitated clustering (Gnägi & Baumann,
Computers & OR 132, 2021; Stefanello et al., ITOR 22, 2015): pick a seed cluster and the clusters
whose sites are nearest to it, free their points, and solve the capacitated p-median of those
points with exactly as many sites as were freed, as a binary programme (HiGHS, one thread,
started from the current plan). Everything else stays fixed, so every rule of the instance
(demands, which keep families and weighted rows whole; max/min size; full members; given
candidate sites) holds in the sub-problem and hence in the plan. A sub-problem's plan is taken
only when it is valid and strictly better, so a step never makes the plan worse or invalid.

The reduced model: each freed point may go only to its ``k`` nearest candidate sites of the
sub-problem (plus its current site, so the current plan is always feasible), and the candidate
sites are, per freed cluster, the few points (or given sites) nearest to its current site. That
keeps a sub-MIP at a few thousand binaries, solved in tens of milliseconds.

The search is driven by work, not by the clock: seeds are visited in a seeded random order; a
neighbourhood is solved again only when one of its clusters changed since; when a whole pass
finds nothing, the neighbourhoods grow once, and when that pass finds nothing either the search
has settled. HiGHS is stopped by a node limit (deterministic); the deadline is a safety net.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csc_array, vstack
from scipy.spatial import cKDTree

from geoalloc.solver.highs import INF, solve_binary
from geoalloc.solver.instance import Instance, pair_dist


@dataclass(frozen=True)
class LnsConfig:
    """How large a neighbourhood is and how its sub-MIP is reduced."""

    points: int = 100  # points freed per neighbourhood (whole clusters, at least ``clusters``) ...
    clusters: int = 2  # ... and at least this many clusters
    max_clusters: int = 12  # at most this many clusters
    grow: float = 1.6  # a pass without gains multiplies ``points`` by this, once
    site_shortlist: int = 6  # candidate sites per freed cluster: the points nearest its site
    arcs_per_point: int = 8  # each point's nearest candidate sites in the sub-MIP
    node_limit: int = 200  # HiGHS branch-and-bound nodes per sub-MIP (a work limit)
    strong: bool = True  # strong linking rows x_ij <= y_j (a tighter LP, a larger model)
    sub_seconds: float = 3.0  # safety net per sub-MIP


    def fits(self, n: int, p: int) -> bool:
        """Whether ``clusters`` clusters of an instance with ``n`` points and ``p`` clusters make a
        sub-problem of about ``points`` points (at most half as many again): with far larger
        clusters a sub-MIP of a few of them is too large to solve in a fraction of a second."""
        return p >= 2 and self.clusters * n / p <= 1.5 * self.points


def _members(branch: NDArray[np.int64], p: int) -> list[NDArray[np.int64]]:
    order = np.argsort(branch, kind="stable")
    cuts = np.searchsorted(branch[order], np.arange(p + 1))
    return [order[cuts[b]:cuts[b + 1]] for b in range(p)]


def neighbourhood(
    inst: Instance, sites: NDArray[np.int64], members: list[NDArray[np.int64]], seed: int, cfg: LnsConfig,
    points: int, tree: cKDTree,
) -> NDArray[np.int64]:
    """The seed cluster and the clusters whose sites are nearest to its site, up to ``points``
    freed points (at least ``cfg.clusters`` clusters, at most ``cfg.max_clusters``)."""
    p = len(sites)
    k = min(p, cfg.max_clusters)
    _, near = tree.query(inst.sites_xy[sites[seed]], k=k)
    near = np.atleast_1d(near)
    chosen: list[int] = []
    total = 0
    for b in near:
        b = int(b)
        if len(chosen) >= cfg.clusters and total + len(members[b]) > points:
            break
        chosen.append(b)
        total += len(members[b])
    return np.array(sorted(chosen), dtype=np.int64)


def _candidates(
    inst: Instance, sites: NDArray[np.int64], clusters: NDArray[np.int64], pts: NDArray[np.int64],
    members: list[NDArray[np.int64]], cfg: LnsConfig, cand_tree: cKDTree | None,
) -> NDArray[np.int64]:
    """Candidate sites of a sub-problem: per freed cluster its current site and the points (or
    free given sites) nearest to it."""
    out: list[NDArray[np.int64]] = [sites[clusters]]
    if inst.self_serve:
        for b in clusters:
            mem = members[int(b)]
            if len(mem) <= cfg.site_shortlist:
                out.append(mem)
            else:
                d = pair_dist(inst.xy[mem], inst.xy[sites[b]][None, :], False)
                out.append(mem[np.argpartition(d, cfg.site_shortlist - 1)[: cfg.site_shortlist]])
        return np.unique(np.concatenate(out))
    assert cand_tree is not None
    taken = np.zeros(inst.m, dtype=bool)
    taken[sites] = True
    taken[sites[clusters]] = False
    kk = min(inst.m, cfg.site_shortlist + len(sites))
    _, nb = cand_tree.query(inst.sites_xy[sites[clusters]], k=kk)
    for row in np.atleast_2d(nb):
        free = row[~taken[row]][: cfg.site_shortlist]
        out.append(free.astype(np.int64))
    return np.unique(np.concatenate(out))


def _arcs(
    inst: Instance, pts: NDArray[np.int64], cands: NDArray[np.int64], current: NDArray[np.int64], k: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Each freed point's ``k`` nearest candidates and its current site; with self-serving sites
    every candidate's own arc too. Returns (point, candidate) index arrays (global indices)."""
    d = pair_dist(inst.xy[pts][:, None, :], inst.sites_xy[cands][None, :, :], False)
    kk = min(k, len(cands))
    nb = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < len(cands) else np.broadcast_to(
        np.arange(len(cands)), (len(pts), len(cands)))
    ai = [np.repeat(pts, kk), pts]
    aj = [cands[nb.ravel()], current]
    if inst.self_serve:
        ai.append(cands)
        aj.append(cands)
    key = np.unique(np.concatenate(ai) * np.int64(inst.m) + np.concatenate(aj))
    return key // inst.m, key % inst.m


def sub_mip(
    inst: Instance, pts: NDArray[np.int64], cands: NDArray[np.int64], q: int,
    arc_i: NDArray[np.int64], arc_j: NDArray[np.int64], current: NDArray[np.int64], *,
    node_limit: int, seconds: float, strong: bool = True,
) -> NDArray[np.int64] | None:
    """The capacitated p-median of ``pts`` with exactly ``q`` of ``cands`` open, over the given
    arcs, with the instance's size and full-member limits; started from ``current`` (the site
    of each point, which must use listed arcs). Returns the site per point, or None."""
    npt, nc, na = len(pts), len(cands), len(arc_i)
    ppos = np.full(inst.n, -1, dtype=np.int64)
    ppos[pts] = np.arange(npt)
    cpos = np.full(inst.m, -1, dtype=np.int64)
    cpos[cands] = np.arange(nc)
    ia, jb = ppos[arc_i], cpos[arc_j]
    cols = np.arange(na)
    dem = inst.demand[arc_i].astype(np.float64)
    full = np.where(inst.is_full[arc_i], dem, 0.0)
    if inst.self_serve:
        own = np.full(nc, -1, dtype=np.int64)
        selfa = np.nonzero(arc_i == arc_j)[0]
        own[jb[selfa]] = selfa
        ycol = own  # an open site is its own point's arc
        nvar = na
    else:
        ycol = na + np.arange(nc)
        nvar = na + nc
    rows = [csc_array((np.ones(na), (ia, cols)), shape=(npt, nvar))]
    lo = [np.ones(npt)]
    hi = [np.ones(npt)]

    def load_rows(coef: NDArray[np.float64], ycoef: float) -> csc_array:
        """One row per candidate: sum coef x_ij + ycoef * y_j (own arc coefficients merged)."""
        r = np.concatenate([jb, np.arange(nc)])
        c = np.concatenate([cols, ycol])
        v = np.concatenate([coef, np.full(nc, ycoef)])
        return csc_array((v, (r, c)), shape=(nc, nvar))  # duplicates (own arc) are summed

    rows.append(load_rows(dem, -float(inst.max_size)))  # load - Q y <= 0
    lo.append(np.full(nc, -INF))
    hi.append(np.zeros(nc))
    if inst.min_size > 0:
        rows.append(load_rows(dem, -float(inst.min_size)))  # load - L y >= 0
        lo.append(np.zeros(nc))
        hi.append(np.full(nc, INF))
    if inst.min_full > 0:
        rows.append(load_rows(full, -float(inst.min_full)))  # full load - F y >= 0
        lo.append(np.zeros(nc))
        hi.append(np.full(nc, INF))
    other = np.nonzero(cols != ycol[jb])[0] if strong else np.zeros(0, dtype=np.int64)
    k = len(other)
    rows.append(csc_array((np.concatenate([np.ones(k), -np.ones(k)]),
                           (np.concatenate([np.arange(k), np.arange(k)]), np.concatenate([other, ycol[jb[other]]]))),
                          shape=(k, nvar)))  # x_ij <= y_j
    lo.append(np.full(k, -INF))
    hi.append(np.zeros(k))
    rows.append(csc_array((np.ones(nc), (np.zeros(nc, dtype=np.int64), ycol)), shape=(1, nvar)))
    lo.append(np.array([float(q)]))
    hi.append(np.array([float(q)]))
    a = vstack(rows).tocsc()
    cost = np.zeros(nvar)
    cost[:na] = inst.cost(arc_i, arc_j)
    start = np.zeros(nvar)
    start[:na] = (current[ia] == arc_j).astype(np.float64)
    opened = np.zeros(nc)
    opened[cpos[np.unique(current)]] = 1.0
    start[ycol] = np.maximum(start[ycol], opened)
    x = solve_binary(cost, a, np.concatenate(lo), np.concatenate(hi), seconds, start=start, max_nodes=node_limit)
    if x is None:
        return None
    on = np.nonzero(x[:na] > 0.5)[0]
    site = np.full(npt, -1, dtype=np.int64)
    site[ia[on]] = arc_j[on]
    if (site < 0).any() or len(np.unique(site)) != q:
        return None
    return site


def lns_step(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], clusters: NDArray[np.int64],
    members: list[NDArray[np.int64]], cfg: LnsConfig, cand_tree: cKDTree | None, deadline: float,
) -> tuple[NDArray[np.int64], NDArray[np.int64], float] | None:
    """Re-solve the given clusters' points exactly; (sites, branch, gain) when the plan improves
    and stays valid, else None. The inputs are not modified."""
    pts = np.concatenate([members[int(b)] for b in clusters])
    current = sites[branch[pts]]
    cands = _candidates(inst, sites, clusters, pts, members, cfg, cand_tree)
    ai, aj = _arcs(inst, pts, cands, current, cfg.arcs_per_point)
    left = deadline - time.perf_counter()
    if left <= 0.01:
        return None
    new = sub_mip(inst, pts, cands, len(clusters), ai, aj, current, node_limit=cfg.node_limit,
                  seconds=min(cfg.sub_seconds, left), strong=cfg.strong)
    if new is None:
        return None
    before = float(inst.cost(pts, current).sum())
    after = float(inst.cost(pts, new).sum())
    if after >= before - 1e-9 * max(1.0, before):
        return None
    sites2 = sites.copy()
    branch2 = branch.copy()
    opened = np.unique(new)
    sites2[clusters] = opened  # the freed cluster positions take the new sites
    branch2[pts] = clusters[np.searchsorted(opened, new)]
    if inst.violations(sites2, branch2):
        return None
    return sites2, branch2, before - after


def lns(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], rng: np.random.Generator,
    deadline: float, stats: dict[str, object], cfg: LnsConfig | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], bool]:
    """Improve the plan by :func:`lns_step` until a pass at the grown size finds nothing
    (settled) or ``deadline``. Returns (sites, branch, settled)."""
    cfg = cfg or LnsConfig()
    p = len(sites)
    if p < 2:
        return sites, branch, True
    sites, branch = sites.copy(), branch.copy()
    cand_tree = None if inst.self_serve else cKDTree(inst.cand_xy)
    version = np.zeros(p, dtype=np.int64)  # bumped when a cluster changes
    solved: dict[tuple[int, ...], int] = {}  # neighbourhood -> sum of its clusters' versions when solved
    points = cfg.points
    grown = False
    steps = gains = 0
    settled = False
    t0 = time.perf_counter()
    while True:
        members = _members(branch, p)
        tree = cKDTree(inst.sites_xy[sites])
        improved = False
        for seed in rng.permutation(p):
            if time.perf_counter() > deadline:
                stats.update({"lns_steps": steps, "lns_gains": gains, "lns_seconds": round(time.perf_counter() - t0, 3)})
                return sites, branch, False
            clusters = neighbourhood(inst, sites, members, int(seed), cfg, points, tree)
            key = tuple(clusters.tolist())
            stamp = int(version[clusters].sum())
            if solved.get(key) == stamp:
                continue
            solved[key] = stamp
            steps += 1
            out = lns_step(inst, sites, branch, clusters, members, cfg, cand_tree, deadline)
            if out is None:
                continue
            sites, branch, _ = out
            version[clusters] += 1
            solved[key] = int(version[clusters].sum())
            gains += 1
            improved = True
            members = _members(branch, p)
            tree = cKDTree(inst.sites_xy[sites])
        if not improved:
            if grown:
                settled = True
                break
            grown = True
            points = int(points * cfg.grow)
            solved.clear()
    stats.update({"lns_steps": steps, "lns_gains": gains, "lns_seconds": round(time.perf_counter() - t0, 3)})
    return sites, branch, settled
