"""Assignment for fixed sites: min-cost flow first, the exact MIP when groups get in the way."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.solver.flow import flow_assign
from geoalloc.solver.instance import Instance
from geoalloc.solver.mip import solve_part


def regret_assign(
    inst: Instance, sites: NDArray[np.int64], *, extra: NDArray[np.float64] | None = None
) -> NDArray[np.int64] | None:
    """Greedy by regret for groups that the flow would split (the classic GAP heuristic).

    Repeatedly place the point that would lose most by not getting its best site that still
    has room. Handles ``max_size`` only; returns None if it leaves the lower limits unmet.
    """
    n, p = inst.n, len(sites)
    cost = inst.cost(np.arange(n)[:, None], sites[None, :])
    if extra is not None:
        cost = cost + extra
    room = np.full(p, float(inst.max_size))
    out = np.full(n, -1, dtype=np.int64)
    if inst.self_serve:
        out[sites] = np.arange(p)
        room -= inst.demand[sites]
    todo = np.nonzero(out < 0)[0]
    dem = inst.demand.astype(np.float64)
    # the (todo x p) cost of still-fitting sites; only the column of the site that just lost
    # room changes per step, so first/second best are refreshed only in the rows it touched
    c = np.where(dem[todo, None] <= room[None, :], cost[todo], np.inf)
    two = np.partition(c, 1, axis=1)[:, :2] if p > 1 else np.concatenate([c, np.full((len(c), 1), np.inf)], axis=1)
    first, second = two[:, 0].copy(), two[:, 1].copy()
    alive = np.ones(len(todo), dtype=bool)
    for _ in range(len(todo)):
        if not np.isfinite(first[alive]).all():
            return None
        regret = np.where(np.isfinite(second), second - first, 1e300) + dem[todo] * 1e-9
        a = int(np.argmax(np.where(alive, regret, -np.inf)))
        i = todo[a]
        b = int(np.argmin(c[a]))
        out[i] = b
        room[b] -= dem[i]
        alive[a] = False
        gone = alive & np.isfinite(c[:, b]) & (dem[todo] > room[b])
        if gone.any():
            c[gone, b] = np.inf
            rows = np.nonzero(gone)[0]
            if p > 1:
                t2 = np.partition(c[rows], 1, axis=1)[:, :2]
                first[rows], second[rows] = t2[:, 0], t2[:, 1]
            else:
                first[rows] = np.inf
    if inst.violations(sites, out):
        return None
    return out


def assign(
    inst: Instance,
    sites: NDArray[np.int64],
    *,
    extra: NDArray[np.float64] | None = None,
    k: int = 8,
    time_limit: float = 10.0,
) -> NDArray[np.int64] | None:
    """Cluster index (position in ``sites``) per point, or None when the limits cannot be met.

    Unit demands: the flow answer is optimal. Groups: the flow answer with split groups pinned,
    or, if pinning fails, a MIP over each point's nearest sites (all sites when few).
    """
    sites = np.asarray(sites, dtype=np.int64)
    out = flow_assign(inst, sites, k=k, extra=extra)
    if out is not None or (inst.demand == 1).all():
        return out
    out = regret_assign(inst, sites, extra=extra)
    if out is not None:
        return out
    p = len(sites)
    kk = min(p, max(3 * k, 12))
    if extra is None and kk < p:
        _, nb = cKDTree(inst.sites_xy[sites]).query(inst.xy, k=kk)
        nb = nb.reshape(inst.n, kk)
    else:
        nb = np.broadcast_to(np.arange(p), (inst.n, p))
    arc_i = np.repeat(np.arange(inst.n), nb.shape[1])
    arc_j = sites[nb.ravel()]
    keep = np.ones(len(arc_i), dtype=bool)
    if extra is not None:
        keep &= np.isfinite(extra[arc_i, nb.ravel()])
    if inst.self_serve:
        # an open site's point may only serve itself
        is_site = np.zeros(inst.n, dtype=bool)
        is_site[sites] = True
        keep &= ~is_site[arc_i] | (arc_i == arc_j)
        extra_self = np.nonzero(is_site)[0]
        arc_i = np.concatenate([arc_i[keep], extra_self])
        arc_j = np.concatenate([arc_j[keep], extra_self])
        pairs = np.unique(np.stack([arc_i, arc_j]), axis=1)
        arc_i, arc_j = pairs[0], pairs[1]
    else:
        arc_i, arc_j = arc_i[keep], arc_j[keep]
    res = solve_part(
        inst, np.arange(inst.n), sites, p, arc_i, arc_j, fixed_open=True, time_limit=time_limit
    )
    if res is None:
        return None
    pos = {int(s): b for b, s in enumerate(sites)}
    return np.array([pos[int(s)] for s in res[0]], dtype=np.int64)


def reassign_exact(
    inst: Instance, sites: NDArray[np.int64], branch: NDArray[np.int64], *, k: int = 6, time_limit: float = 5.0
) -> NDArray[np.int64] | None:
    """Exact reassignment for fixed sites when groups make it a generalised assignment problem.

    A MIP over each point's ``k`` nearest sites plus its current one, started from ``branch``;
    it catches chains of moves through several clusters that two-cluster moves cannot see.
    """
    p = len(sites)
    kk = min(k, p)
    _, nb = cKDTree(inst.sites_xy[sites]).query(inst.xy, k=kk)
    nb = np.asarray(nb).reshape(inst.n, kk)
    ai = np.concatenate([np.repeat(np.arange(inst.n), kk), np.arange(inst.n)])
    aj = np.concatenate([sites[nb.ravel()], sites[branch]])
    if inst.self_serve:
        is_site = np.zeros(inst.n, dtype=bool)
        is_site[sites] = True
        keep = ~is_site[ai] | (ai == aj)
        ai, aj = ai[keep], aj[keep]
    pairs = np.unique(np.stack([ai, aj]), axis=1)
    res = solve_part(inst, np.arange(inst.n), sites, p, pairs[0], pairs[1], hint=sites[branch],
                     fixed_open=True, time_limit=time_limit)
    if res is None:
        return None
    pos = np.full(int(sites.max()) + 1, -1, dtype=np.int64)
    pos[sites] = np.arange(p)
    return pos[res[0]]
