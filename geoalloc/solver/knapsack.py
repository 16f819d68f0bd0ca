"""The Lagrangian bound's site knapsacks for weighted demands, compiled (numba), one site at a time.

:func:`geoalloc.solver.bounds.lagrangian_bound` values each site by the greedy ratio rule over
its points of negative reduced cost (families weigh their demand). As whole-array steps over
every arc (a lexsort of the overflowing sites' arcs, several gathers and bincounts) that cost
about 6 ms a step on a product district of 1,450 members with families, nearly all of its bound;
row by row over each site's arcs it is a fraction of that. The additions run in the same order
as the whole-array form's, so the values are the same numbers. Kept apart so that only large
instances (:data:`geoalloc.solver.bounds.COMPILED_MIN_N`) import numba.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from geoalloc.solver.compiled import njit


@njit(cache=True)
def site_knapsacks(
    pad_c: NDArray[np.float64], pad_i: NDArray[np.int64], pad_a: NDArray[np.int64], width: NDArray[np.int64],
    lam: NDArray[np.float64], d: NDArray[np.float64], room: NDArray[np.float64], frac: NDArray[np.float64],
    neg: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Each site's value at multipliers ``lam``: the sum of its negative reduced costs, the sites
    whose negative points' demand exceeds ``room`` filled by the ratio rule (most negative cost per
    unit of demand first, the last point in part). Sets ``neg`` and ``frac`` at each arc's index
    (``pad_a``): whether its reduced cost is negative, and the share of its point the site takes."""
    m = pad_c.shape[0]
    w = pad_c.shape[1]
    v = np.zeros(m)
    rs = np.empty(w)
    ks = np.empty(w, dtype=np.int64)
    for r in range(m):
        c = 0
        load = 0.0
        for k in range(width[r]):
            x = pad_c[r, k] - lam[pad_i[r, k]]
            a = pad_a[r, k]
            if x < 0.0:
                rs[c] = x
                ks[c] = k
                load += d[pad_i[r, k]]
                neg[a] = True
                frac[a] = 1.0
                c += 1
            else:
                neg[a] = False
        if load > room[r]:
            ratio = np.empty(c)
            for t in range(c):
                ratio[t] = rs[t] / d[pad_i[r, ks[t]]]
            order = np.argsort(ratio, kind="mergesort")
            before = 0.0
            for t in range(c):
                k = ks[order[t]]
                dd = d[pad_i[r, k]]
                f = (room[r] - before) / dd
                frac[pad_a[r, k]] = min(max(f, 0.0), 1.0)
                before += dd
        s = 0.0
        for t in range(c):
            s += rs[t] * frac[pad_a[r, ks[t]]]
        v[r] = s
    return v


@njit(cache=True)
def taken_shares(
    ai: NDArray[np.int64], aj: NDArray[np.int64], neg: NDArray[np.bool_], frac: NDArray[np.float64],
    chosen: NDArray[np.bool_], n: int,
) -> NDArray[np.float64]:
    """How much of each point the chosen sites take (the arcs in their order, as a bincount adds)."""
    out = np.zeros(n)
    for a in range(len(ai)):
        if neg[a] and chosen[aj[a]]:
            out[ai[a]] += frac[a]
    return out
