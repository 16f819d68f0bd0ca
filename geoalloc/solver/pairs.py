"""Exact re-optimisation of two neighbouring clusters: best pair of sites and best split.

The workhorse move of the search. Free the points of clusters A and B; for each pair of
candidate sites (a, b) the best split of the points is exact and cheap:

- unit demands: a point's preference is diff_i = c(i, a) - c(i, b); the cheapest split that puts
  kf full and kn other points on a's side takes the kf (kn) smallest diffs of each kind; its cost
  is convex in kn, so a scan over kf with prefix sums, kn at its best within the size limits,
  gives the optimum;
- general demands (no full-member rule): a knapsack over a's load by dynamic programming.

All candidate pairs are evaluated at once with numpy. Site relocation, swaps between clusters
and reassignment are all special cases of this move.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from geoalloc.solver.instance import Instance

_DP_CELLS = 40_000_000  # pairs x load cells per item step before the candidate list is cut
_BATCH = 6  # pairs per knapsack batch when pairs are taken in order of their LP bound


def _rows_of(pts: NDArray[np.int64], members: NDArray[np.int64]) -> NDArray[np.int64] | slice:
    """Positions of ``members`` in ``pts`` (the search passes each side as a slice of ``pts``)."""
    k = len(members)
    for start in (0, len(pts) - k):
        if np.array_equal(pts[start:start + k], members):
            return slice(start, start + k)
    order = np.argsort(pts, kind="stable")
    return order[np.searchsorted(pts, members, sorter=order)]


def _candidates(costs: NDArray[np.float64], rows: NDArray[np.int64] | slice, t: int) -> NDArray[np.int64]:
    """Columns of the ``t`` candidate sites cheapest for serving the points at ``rows``."""
    tot = costs[rows].sum(axis=0)
    return np.argsort(tot, kind="stable")[:t]


def best_pair(
    inst: Instance,
    pts: NDArray[np.int64],
    side_a: NDArray[np.int64],
    side_b: NDArray[np.int64],
    cands: NDArray[np.int64],
    t: int = 8,
    cutoff: float | None = None,
    table: NDArray[np.float64] | None = None,
) -> tuple[float, int, int, NDArray[np.bool_]] | None:
    """Best (cost, site a, site b, on_a mask over ``pts``) for the two clusters, or None.

    ``pts``: the freed points; ``side_a``/``side_b``: the current members of each cluster
    (used to pick candidate sites near each); ``cands``: the candidate sites allowed.
    ``cutoff``: only splits cheaper than this matter (the current cost); with groups, pairs
    whose LP bound already reaches it skip the knapsack, and None comes back when all do.
    ``table``: every point-to-site cost of the instance (:func:`~geoalloc.solver.table.cost_table`).
    """
    unit = bool((inst.demand[pts] == 1).all())
    if not unit and inst.min_full > 0:
        return None  # groups with the full-member rule: left to the MIP
    # every cost the move needs, once: freed points x candidate sites
    if table is None:
        costs = inst.cost(pts[:, None], cands[None, :])
    else:  # one flat take is cheaper than a 2-D fancy index
        costs = table.take(pts[:, None] * table.shape[1] + cands[None, :])
    ca_list = _candidates(costs, _rows_of(pts, side_a), t)
    cb_list = _candidates(costs, _rows_of(pts, side_b), t)
    ca, cb = np.repeat(ca_list, len(cb_list)), np.tile(cb_list, len(ca_list))
    keep = ca != cb
    ca, cb = ca[keep], cb[keep]
    if len(ca) == 0:
        return None
    pa, pb = cands[ca], cands[cb]
    cost_a = costs[:, ca].T  # (pairs, m)
    cost_b = costs[:, cb].T
    if unit:
        return _unit(inst, pts, pa, pb, cost_a, cost_b)
    return _knapsack(inst, pts, pa, pb, cost_a, cost_b, cutoff)


def _fixed(inst: Instance, pts: NDArray[np.int64], pa: NDArray[np.int64], pb: NDArray[np.int64]):
    """Masks of points pinned to a or b (an open site's own point serves itself)."""
    if not inst.self_serve:
        z = np.zeros((len(pa), len(pts)), dtype=bool)
        return z, z
    return pts[None, :] == pa[:, None], pts[None, :] == pb[:, None]


def _unit(inst, pts, pa, pb, cost_a, cost_b):
    n_pairs, m = cost_a.shape
    on_a_fixed, on_b_fixed = _fixed(inst, pts, pa, pb)
    free = ~(on_a_fixed | on_b_fixed)
    isf = inst.is_full[pts] if inst.min_full > 0 else np.ones(m, dtype=bool)
    diff = np.where(free, cost_a - cost_b, np.inf)
    # everything on b, to start with (a pinned point is an open site's own: it costs nothing)
    base = np.where(free, cost_b, 0.0).sum(axis=1)
    size_a0 = on_a_fixed.sum(axis=1)
    size_b0 = on_b_fixed.sum(axis=1)
    nf, nn = int(isf.sum()), int(m - isf.sum())
    every = bool(nn == 0)  # no full-member rule (or all full): one kind of point
    full_a0 = size_a0 if every else on_a_fixed[:, isf].sum(axis=1)
    full_b0 = size_b0 if every else on_b_fixed[:, isf].sum(axis=1)
    # each kind's diffs sorted (a pinned point's diff is inf, so it sorts last)
    df = np.sort(diff if every else diff[:, isf], axis=1)
    nf_eff = free.sum(axis=1) if every else free[:, isf].sum(axis=1)
    pf = np.zeros((n_pairs, nf + 1))
    np.cumsum(df, axis=1, out=pf[:, 1:])
    kf = np.arange(nf + 1)[None, :]
    nfe = nf_eff[:, None]
    if every:
        # kn is 0: the sizes alone bound kf
        size_a = size_a0[:, None] + kf
        size_b = size_b0[:, None] + (nfe - kf)
        ok = (kf <= nfe) & (size_a >= inst.min_size) & (size_a <= inst.max_size)
        ok &= (size_b >= inst.min_size) & (size_b <= inst.max_size)
        ok &= (size_a >= inst.min_full) & (size_b >= inst.min_full)
        with np.errstate(invalid="ignore"):
            total = base[:, None] + pf
        kn = None
    else:
        dn = np.sort(diff[:, ~isf], axis=1)
        nne = (free.sum(axis=1) - nf_eff)[:, None]
        pn = np.zeros((n_pairs, nn + 1))
        np.cumsum(dn, axis=1, out=pn[:, 1:])
        # for each (pair, kf) the cost is convex in kn (prefix sums of sorted diffs), and the
        # limits leave kn an interval: its first minimum is the number of negative diffs, clipped
        # into it. size_a = size_a0 + kf + kn, size_b = size_b0 + (nfe - kf) + (nne - kn)
        a0 = size_a0[:, None] + kf
        rest_b = size_b0[:, None] + (nfe - kf) + nne
        kn_lo = np.maximum(np.maximum(inst.min_size - a0, rest_b - inst.max_size), 0)
        kn_hi = np.minimum(np.minimum(inst.max_size - a0, rest_b - inst.min_size), nne)
        ok = (kf <= nfe) & (kn_lo <= kn_hi)
        ok &= (full_a0[:, None] + kf >= inst.min_full) & (full_b0[:, None] + (nfe - kf) >= inst.min_full)
        neg = (dn < 0).sum(axis=1)[:, None]
        kn = np.minimum(np.maximum(np.minimum(np.maximum(neg, kn_lo), kn_hi), 0), nn)  # (into pn where not ok)
        with np.errstate(invalid="ignore"):
            total = base[:, None] + pf + pn[np.arange(n_pairs)[:, None], kn]
    total = np.where(ok, total, np.inf)
    flat = int(np.argmin(total))
    best = float(total.ravel()[flat])
    if not np.isfinite(best):
        return None
    p, k1 = np.unravel_index(flat, total.shape)
    k2 = 0 if kn is None else int(kn[p, k1])
    d = diff[p]
    on_a = on_a_fixed[p].copy()
    fidx = np.nonzero(free[p] & isf)[0]
    on_a[fidx[np.argsort(d[fidx], kind="stable")[:k1]]] = True
    if k2:
        nidx = np.nonzero(free[p] & ~isf)[0]
        on_a[nidx[np.argsort(d[nidx], kind="stable")[:k2]]] = True
    return best, int(pa[p]), int(pb[p]), on_a


def lp_split_bound(
    diff: NDArray[np.float64], dem: NDArray[np.int64], free: NDArray[np.bool_], lo: NDArray[np.int64],
    hi: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Per pair, the LP relaxation of the split knapsack: min sum(diff * x) over free points
    with lo <= sum(dem * x) <= hi, 0 <= x <= 1 (inf when no load in range exists).

    Cost as a function of the load is convex and piecewise linear along points sorted by
    diff / demand, so its minimum sits at the load of all points with negative diff, clipped
    into [lo, hi]. A lower bound on the exact split, computed for all pairs at once.
    """
    w = np.where(free, dem[None, :], 0).astype(np.float64)
    d = np.where(free, diff, 0.0)
    r = np.where(free, d / np.maximum(w, 1.0), np.inf)
    order = np.argsort(r, axis=1, kind="stable")
    rs = np.take_along_axis(r, order, axis=1)
    ws = np.take_along_axis(w, order, axis=1)
    ds = np.take_along_axis(d, order, axis=1)
    cw = np.cumsum(ws, axis=1)
    cd = np.cumsum(ds, axis=1)
    total_w = cw[:, -1]
    neg_w = np.where(free & (diff < 0), w, 0.0).sum(axis=1)
    load = np.clip(neg_w, lo, hi).astype(np.float64)
    k = (cw <= load[:, None] + 1e-9).sum(axis=1)  # whole points taken
    rows = np.arange(len(d))
    kk = np.minimum(k, d.shape[1] - 1)
    before_w = np.where(k > 0, cw[rows, np.maximum(k - 1, 0)], 0.0)
    before_d = np.where(k > 0, cd[rows, np.maximum(k - 1, 0)], 0.0)
    rest = load - before_w
    with np.errstate(invalid="ignore"):
        val = before_d + np.where((rest > 1e-9) & (k < d.shape[1]), rest * rs[rows, kk], 0.0)
    bad = (hi < lo) | (lo > total_w + 1e-9) | (hi < 0)
    return np.where(bad, np.inf, val)


def _split_totals(diff, base, load_a0, dem, order, lo, hi):
    """Knapsack DP for a batch of pairs: total cost per pair and free load put on a (inf where
    the load breaks a limit)."""
    w_max = hi
    # best[p, w]: cheapest sum of diffs over free points put on a, with their load w
    best = np.full((len(diff), w_max + 1), np.inf)
    best[:, 0] = 0.0
    for i in order:
        di = int(dem[i])
        if di > w_max:
            continue
        cand = best[:, : w_max + 1 - di] + diff[:, i : i + 1]
        np.minimum(best[:, di:], cand, out=best[:, di:])
    w = np.arange(w_max + 1)[None, :] + load_a0[:, None]
    ok = (w >= lo) & (w <= hi)
    return np.where(ok, best + base[:, None], np.inf)


def _knapsack(inst, pts, pa, pb, cost_a, cost_b, cutoff=None):
    dem = inst.demand[pts]
    total_d = int(dem.sum())
    on_a_fixed, on_b_fixed = _fixed(inst, pts, pa, pb)
    free = ~(on_a_fixed | on_b_fixed)
    diff = np.where(free, cost_a - cost_b, np.inf)
    base = np.where(free, cost_b, 0.0).sum(axis=1) + np.where(on_a_fixed, cost_a, 0.0).sum(axis=1)
    base += np.where(on_b_fixed, cost_b, 0.0).sum(axis=1)
    load_a0 = (on_a_fixed * dem[None, :]).sum(axis=1)
    # a's load must leave b within limits too
    lo = max(inst.min_size, total_d - inst.max_size)
    hi = min(inst.max_size, total_d - inst.min_size)
    if lo > hi:
        return None
    w_max = hi
    order = np.argsort(-dem, kind="stable")
    if cutoff is not None:  # branch and bound over pairs: the exact split is never below its LP bound
        lp = base + lp_split_bound(diff, dem, free, lo - load_a0, hi - load_a0)
        limit = cutoff + 1e-6 * max(1.0, abs(cutoff))
        val, p, wbest = np.inf, -1, -1
        by_lp = np.argsort(lp, kind="stable")
        for start in range(0, len(by_lp), _BATCH):
            sel = by_lp[start : start + _BATCH]
            sel = sel[lp[sel] < min(limit, val)]
            if len(sel) == 0:
                break
            total = _split_totals(diff[sel], base[sel], load_a0[sel], dem, order, lo, hi)
            flat = int(np.argmin(total))
            if total.ravel()[flat] < val:
                k, wbest = np.unravel_index(flat, total.shape)
                val, p = float(total.ravel()[flat]), int(sel[k])
        if p < 0 or val >= cutoff - 1e-9 * max(1.0, abs(cutoff)):
            return None  # no split beats the current one (the caller's own acceptance test)
    else:
        keep = max(1, _DP_CELLS // (w_max + 1))
        if len(pa) > keep:  # bound the work: keep the pairs whose unconstrained split is cheapest
            rough = base + np.minimum(diff, 0).sum(axis=1)
            sel = np.argsort(rough, kind="stable")[:keep]
            pa, pb, diff, base, load_a0 = pa[sel], pb[sel], diff[sel], base[sel], load_a0[sel]
            on_a_fixed, free = on_a_fixed[sel], free[sel]
        total = _split_totals(diff, base, load_a0, dem, order, lo, hi)
        flat = int(np.argmin(total))
        val = float(total.ravel()[flat])
        if not np.isfinite(val):
            return None
        p, wbest = np.unravel_index(flat, total.shape)
    # rebuild the chosen set for the winning pair, keeping the choices this time
    d = diff[p]
    take = np.zeros((len(order), w_max + 1), dtype=bool)
    row = np.full(w_max + 1, np.inf)
    row[0] = 0.0
    for step, i in enumerate(order):
        di = int(dem[i])
        if di > w_max or not np.isfinite(d[i]):
            continue
        cand = row[: w_max + 1 - di] + d[i]
        better = cand < row[di:]
        take[step, di:] = better
        row[di:] = np.where(better, cand, row[di:])
    on_a = on_a_fixed[p].copy()
    w_left = int(wbest)
    for step in range(len(order) - 1, -1, -1):
        if w_left > 0 and take[step, w_left]:
            i = order[step]
            on_a[i] = True
            w_left -= int(dem[i])
    return val, int(pa[p]), int(pb[p]), on_a
