"""Recombination over the arcs of the local optima: one MIP over every (point, site) pair seen.

Why: set partitioning (:mod:`geoalloc.solver.pool`) can only reuse whole clusters, so two good
plans that differ by a few points at every border cannot be mixed. Here each point may go to the
site of any pool cluster that ever held it, and any of those sites may open: the capacitated
p-median MIP restricted to those arcs (a few thousand on SJC, strong linking x_ij <= x_jj, the
site's own arc standing for "open"). It contains every plan of the pool and every partition the
set partitioning could pick, and mixes them point by point; HiGHS solves it in seconds on SJC
(figures in benchmarks/README.md).

HiGHS starts from the search's best plan (:mod:`geoalloc.solver.highs`): the MIP never comes back
worse than that plan, and HiGHS's own neighbourhood search (RINS) starts from it (cold, it may
find no plan at all in the time).
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import csc_array, vstack

from geoalloc.solver.highs import INF, solve_binary
from geoalloc.solver.instance import Instance
from geoalloc.solver.pool import ClusterPool


def pool_arcs(pool: ClusterPool, sites: NDArray[np.int64], branch: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The (point, site) arcs of the pool's clusters and of the given plan, each once, plus every
    candidate site's own arc.

    Only those: adding each point's nearest points as sites (to 2,800 arcs) let HiGHS reach SJC2's
    optimum with 4 s alone, but within the search's 3 s it then found nothing (SJC, seeds 0-2,
    16 runs: 3.4% summed instead of 2.6%).
    """
    inst = pool.inst
    pi = [np.arange(inst.n)] + list(pool.members)
    pj = [sites[branch]] + [np.full(len(m), s, dtype=np.int64) for m, s in zip(pool.members, pool.site)]
    cands = np.unique(np.concatenate([np.asarray(pool.site, dtype=np.int64), sites]))
    key = np.unique(np.concatenate(pi + [cands]) * np.int64(inst.n) + np.concatenate(pj + [cands]))
    return key // inst.n, key % inst.n


def _model(inst: Instance, arc_i: NDArray[np.int64], arc_j: NDArray[np.int64]) -> tuple[csc_array, NDArray[np.float64], NDArray[np.float64]]:
    """Rows of the capacitated p-median over the given arcs, one variable per arc: (matrix, lower, upper)."""
    n, na = inst.n, len(arc_i)
    own = np.full(n, -1, dtype=np.int64)  # the arc (j, j) of each site j
    self_arc = np.nonzero(arc_i == arc_j)[0]
    own[arc_j[self_arc]] = self_arc
    if (own[arc_j] < 0).any():
        raise ValueError("every site of an arc needs its own arc")
    sites_all = arc_j[self_arc]
    ns = len(self_arc)
    rows = np.arange(na)
    assign_rows = csc_array((np.ones(na), (arc_i, rows)), shape=(n, na))
    # capacity: sum_i d_i x_ij - Q x_jj <= 0, one row per site (numbered by its self arc)
    site_row = np.full(n, -1, dtype=np.int64)
    site_row[sites_all] = np.arange(ns)
    dem = inst.demand[arc_i].astype(np.float64)
    cap_val = np.where(arc_i == arc_j, dem - inst.max_size, dem)
    cap_rows = csc_array((cap_val, (site_row[arc_j], rows)), shape=(ns, na))
    # strong linking x_ij <= x_jj for the other arcs
    other = np.nonzero(arc_i != arc_j)[0]
    k = len(other)
    link = csc_array((np.concatenate([np.ones(k), -np.ones(k)]),
                      (np.concatenate([np.arange(k), np.arange(k)]), np.concatenate([other, own[arc_j[other]]]))),
                     shape=(k, na))
    count = csc_array((np.ones(ns), (np.zeros(ns, dtype=np.int64), self_arc)), shape=(1, na))
    a = vstack([assign_rows, cap_rows, link, count]).tocsc()
    lo = np.concatenate([np.ones(n), np.full(ns + k, -INF), [inst.p]])
    hi = np.concatenate([np.ones(n), np.zeros(ns + k), [inst.p]])
    return a, lo, hi


def arc_mip(
    inst: Instance, arc_i: NDArray[np.int64], arc_j: NDArray[np.int64], deadline: float,
    start: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]] | None:
    """The best plan HiGHS finds by ``deadline`` using only the given arcs (self-serving sites,
    every site's own arc listed), or None when it found none. ``start``: the site of each point
    in a plan that uses only those arcs, HiGHS's first incumbent. Returns (sites, branch)."""
    left = deadline - time.perf_counter()
    if left < 0.05 or not inst.self_serve:
        return None
    a, lo, hi = _model(inst, arc_i, arc_j)
    x = solve_binary(inst.cost(arc_i, arc_j), a, lo, hi, left,
                     start=None if start is None else (start[arc_i] == arc_j).astype(np.float64))
    if x is None:
        return None
    on = x > 0.5
    site_of = np.full(inst.n, -1, dtype=np.int64)
    site_of[arc_i[on]] = arc_j[on]
    sites = np.unique(arc_j[on & (arc_i == arc_j)])
    if (site_of < 0).any() or len(sites) != inst.p or not np.isin(site_of, sites).all():
        return None
    branch = np.searchsorted(sites, site_of)
    return (sites, branch) if not inst.violations(sites, branch) else None
