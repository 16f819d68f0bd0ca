"""Swap moves ranked by an estimate: close one site, open a candidate anywhere.

Why: pair moves only re-choose sites inside two neighbouring clusters, and random kicks find a
better layout (a site taken from a crowded corner and put where points are served badly) only
by luck. The classic p-median interchange asks, for every open site i and candidate k, what the
plan would cost with k instead of i. Capacities make that exact question an assignment per pair,
so it is estimated as for the uncapacitated problem, from the current plan's own costs: a point
may move to k if k is nearer than its present site, and the points of the closed cluster fall
back to their nearest other site. All (i, k) come from two matrix products. The engine then
tries the best-ranked swaps for real (re-place the closed cluster's points, pair descent).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from geoalloc.solver.instance import Instance


def ranked_swaps(
    inst: Instance, cost: NDArray[np.float64], sites: NDArray[np.int64], branch: NDArray[np.int64], limit: int
) -> list[tuple[int, int, float]]:
    """Up to ``limit`` swaps (cluster position b, new site k, estimated change), best first.

    Only swaps estimated to improve the plan are returned. ``cost``: from :func:`~geoalloc.solver.table.cost_table`.
    """
    n, p = inst.n, len(sites)
    if p < 2:
        return []
    cur = cost[np.arange(n), sites[branch]]
    own = cost[:, sites].copy()
    own[np.arange(n), branch] = np.inf
    fallback = own.min(axis=1)  # nearest other open site, for points of a closed cluster
    gain = np.minimum(cost - cur[:, None], 0.0).sum(axis=0)  # (m,) every point may move to k
    # extra for closing b: its points cannot stay; they take min(fallback, k) instead of min(cur, k)
    loss = np.minimum(fallback[:, None], cost) - np.minimum(cur[:, None], cost)  # (n, m)
    # sum the loss rows per cluster (reduceat over rows sorted by cluster: no BLAS threads on a
    # shared machine); every cluster holds at least its own site's point
    order = np.argsort(branch, kind="stable")
    starts = np.searchsorted(branch[order], np.arange(p))
    delta = gain[None, :] + np.add.reduceat(loss[order], starts, axis=0)  # (p, m)
    delta[:, sites] = np.inf  # open already
    flat = np.argsort(delta, axis=None, kind="stable")[: 4 * limit]
    out: list[tuple[int, int, float]] = []
    for f in flat:
        b, k = divmod(int(f), inst.m)
        d = float(delta[b, k])
        if not d < -1e-9:
            break
        out.append((b, k, d))
        if len(out) >= limit:
            break
    return out
