"""A first plan: spread the sites out (k-means++ style), then alternate assign / re-centre.

Re-centring moves each site to the member (or candidate) that minimises its cluster's total
distance; the capacitated assignment is then redone exactly. This converges in a few rounds to
a plan the search in :mod:`geoalloc.solver.search` improves.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.solver.assign import assign
from geoalloc.solver.instance import Instance, pair_dist
from geoalloc.solver.textbook import applies


def seed_sites(inst: Instance, rng: np.random.Generator, greedy: bool = True) -> NDArray[np.int64]:
    """``p`` distinct candidate sites spread like greedy k-means++ over the demand (``greedy`` off: plain).

    Greedy: each new site is the best of a few drawn in proportion to the squared distance (the one
    that leaves the least weighted squared distance). Plain draws put two sites in one dense group of
    members and none in another often enough (members geocoded to an estate's or a subdistrict's point
    stand in such groups) that a first plan ended 42% above the optimum. The benchmark form, whose many
    starts feed a pool of clusters, keeps the plain draws: they are more varied.
    """
    n, p = inst.n, inst.p
    w = inst.demand.astype(np.float64)
    first = int(rng.choice(n, p=w / w.sum()))
    centres = [first]
    d2 = pair_dist(inst.xy, inst.xy[first][None, :], False) ** 2
    trials = 2 + int(np.log(p)) if greedy else 1
    for _ in range(1, p):
        prob = w * d2
        tot = prob.sum()
        if tot <= 0:
            c = int(rng.integers(n))
            centres.append(c)
            continue
        drawn = rng.choice(n, size=trials, p=prob / tot)
        near = np.minimum(d2[None, :], pair_dist(inst.xy[None, :, :], inst.xy[drawn][:, None, :], False) ** 2)
        k = int(np.argmin(near @ w))
        centres.append(int(drawn[k]))
        d2 = near[k]
    pts = np.array(centres, dtype=np.int64)
    if inst.self_serve:
        return _distinct(pts, n, rng)
    # nearest free candidate to each chosen point
    tree = cKDTree(inst.cand_xy)
    taken: set[int] = set()
    out = []
    for c in pts:
        kk = min(inst.m, p + 1)
        _, nb = tree.query(inst.xy[c], k=kk)
        for j in np.atleast_1d(nb):
            if int(j) not in taken:
                taken.add(int(j))
                out.append(int(j))
                break
    return np.array(out, dtype=np.int64)


def _distinct(pts: NDArray[np.int64], n: int, rng: np.random.Generator) -> NDArray[np.int64]:
    seen: set[int] = set()
    out = []
    for c in pts:
        c = int(c)
        while c in seen:
            c = int(rng.integers(n))
        seen.add(c)
        out.append(c)
    return np.array(out, dtype=np.int64)


def recentre(inst: Instance, sites: NDArray[np.int64], branch_of: NDArray[np.int64],
             table: NDArray[np.float64] | None = None) -> NDArray[np.int64]:
    """Each cluster's best single site (its 1-median among its members or the candidates);
    ``table``: the instance's costs (:func:`~geoalloc.solver.table.cost_table`), if at hand."""
    new = sites.copy()
    used = {int(s) for s in sites}
    for b in range(len(sites)):
        mem = np.nonzero(branch_of == b)[0]
        if len(mem) == 0:
            continue
        if inst.self_serve:
            cands = mem
        else:
            kk = min(inst.m, 30)
            _, cands = cKDTree(inst.cand_xy).query(inst.xy[mem].mean(axis=0), k=kk)
            cands = np.atleast_1d(cands).astype(np.int64)
        tot = np.zeros(len(cands))
        for lo in range(0, len(cands), 256):  # bounded memory for big clusters
            cj = cands[lo : lo + 256]
            block = inst.cost(mem[:, None], cj[None, :]) if table is None else table[np.ix_(mem, cj)]
            tot[lo : lo + 256] = block.sum(axis=0)
        for j in cands[np.argsort(tot, kind="stable")]:
            j = int(j)
            if j == sites[b] or j not in used:
                used.discard(int(sites[b]))
                used.add(j)
                new[b] = j
                break
    return new


def construct(
    inst: Instance, rng: np.random.Generator, deadline: float, rounds: int = 25,
    table: NDArray[np.float64] | None = None, greedy: bool = True,
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """A feasible plan (sites, cluster per point) or None if none was found in time
    (``greedy``: of :func:`seed_sites`).

    The textbook CPMP at scale takes the compiled global phase (:mod:`geoalloc.solver.globalphase`)."""
    if applies(inst):
        from geoalloc.solver import globalphase  # numba: only where its kernels run

        plan = globalphase.global_plan(inst, rng, deadline)
        if plan is not None:
            return plan  # else (its greedy found no room for a point) the general construction
    best: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
    best_obj = np.inf
    for attempt in range(5):
        sites = seed_sites(inst, rng, greedy)
        branch = assign(inst, sites, time_limit=max(1.0, deadline - time.perf_counter()))
        if branch is None:
            continue
        for _ in range(rounds):
            obj = inst.objective(sites, branch)
            if obj < best_obj - 1e-9:
                best, best_obj = (sites.copy(), branch.copy()), obj
            else:
                break
            if time.perf_counter() > deadline:
                break
            new = recentre(inst, sites, branch, table)
            if np.array_equal(new, sites):
                break
            nb = assign(inst, new, time_limit=max(1.0, deadline - time.perf_counter()))
            if nb is None:
                break
            sites, branch = new, nb
        if best is not None:
            break
    return best


def construct_means(
    inst: Instance, rng: np.random.Generator, deadline: float, rounds: int = 20,
    table: NDArray[np.float64] | None = None, greedy: bool = True,
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """A first plan from capacitated k-means: free centres, flow assignment, mean updates
    (``greedy``: of :func:`seed_sites`).

    Centres that are not tied to members move further per round than medians do, which gives
    a better global layout on large regions; the sites are then each cluster's best member.
    """
    from dataclasses import replace

    from geoalloc.solver.flow import flow_assign

    start = seed_sites(inst, rng, greedy)
    centres = inst.sites_xy[start].copy()
    w = inst.demand.astype(np.float64)
    branch = None
    for _ in range(rounds):
        tmp = replace(inst, cand_xy=centres)
        nb = flow_assign(tmp, np.arange(inst.p))
        if nb is None:
            break
        moved = branch is None or not np.array_equal(nb, branch)
        branch = nb
        sums = np.zeros((inst.p, 2))
        np.add.at(sums, branch, inst.xy * w[:, None])
        tot = np.bincount(branch, weights=w, minlength=inst.p)
        centres = np.where(tot[:, None] > 0, sums / np.maximum(tot, 1e-12)[:, None], centres)
        if not moved or time.perf_counter() > deadline:
            break
    if branch is None:
        return None
    if inst.self_serve:
        sites = np.array([int(np.nonzero(branch == b)[0][0]) if (branch == b).any() else -1 for b in range(inst.p)])
        if (sites < 0).any():
            return None
    else:
        _, sites = cKDTree(inst.cand_xy).query(centres, k=1)
        sites = np.asarray(sites, dtype=np.int64)
        if len(np.unique(sites)) < inst.p:
            return None
    sites = recentre(inst, sites, branch, table)
    out = assign(inst, sites, time_limit=max(1.0, deadline - time.perf_counter()))
    if out is None:
        return None
    return sites, out
