"""Lower bounds: the certificate that tells a planner how far a plan can be from the best one.

Lagrangian relaxation of the "every point is assigned exactly once" constraints with
multipliers lambda. What remains splits by site: opening site j is worth the best knapsack of
points with negative reduced cost c_ij - lambda_i within its capacity (solved by the greedy
ratio rule, exact for unit demands and a valid relaxation otherwise), and the bound is
sum(lambda) plus the p smallest site values. Subgradient steps improve lambda.

Only each point's K cheapest sites are looked at. That stays valid because lambda_i is capped
at the cost of the K-th one: any site not looked at has a non-negative reduced cost and would
never be picked by the relaxation. Minimum size and full-member limits are dropped, which can
only lower the bound.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.solver.instance import Instance

_MAX_ARCS = 3_000_000
_PAD_CELLS = 8_000_000  # the padded per-site layout of the unit-demand bound up to this size
_DEBUG = False


def lagrangian_bound(
    inst: Instance,
    upper: float,
    *,
    iters: int = 250,
    deadline: float | None = None,
    patience: int = 10,
    start: NDArray[np.float64] | None = None,
    mu0: float = 2.0,
) -> float:
    """A valid lower bound on the instance's optimum; ``upper`` is a known plan's objective.

    ``start``: initial multipliers (for example each point's cost in a good plan, which is
    close to the dual optimum and saves most of the iterations).
    """
    n, m, p = inst.n, inst.m, inst.p
    if n == 0 or p <= 0:
        return 0.0
    k = int(min(m, max(40, 2 * math.ceil(inst.max_size / max(1.0, float(inst.demand.mean()))) + 10),
                max(8, _MAX_ARCS // n)))
    if k >= m:
        nb = np.broadcast_to(np.arange(m), (n, m))
    else:
        _, nb = cKDTree(inst.sites_xy).query(inst.xy, k=k)
        nb = nb.reshape(n, k)
    ai = np.repeat(np.arange(n), nb.shape[1])
    aj = nb.ravel().astype(np.int64)
    ac = inst.cost(ai, aj)
    cap_lam = ac.reshape(n, -1).max(axis=1) if k < m else np.full(n, np.inf)
    d = inst.demand.astype(np.float64)
    if inst.self_serve:
        keep = ai != aj
        ai, aj, ac = ai[keep], aj[keep], ac[keep]
        room_j = inst.max_size - d  # a site's own point is already in its cluster
        can_open = room_j >= 0
    else:
        room_j = np.full(m, float(inst.max_size))
        can_open = np.ones(m, dtype=bool)
    if (inst.demand == 1).all():
        fast = _unit_bound(inst, ai, aj, ac, cap_lam, room_j, upper, iters, deadline, patience, start, mu0)
        if fast is not None:
            return fast
    # start: every point pays its cheapest other site
    lam = np.full(n, np.inf)
    np.minimum.at(lam, ai, ac)
    lam = np.where(np.isfinite(lam), lam, 0.0)
    if start is not None:
        lam = np.asarray(start, dtype=np.float64).copy()
    lam = np.minimum(lam, cap_lam)
    best = -np.inf
    mu, stall = mu0, 0
    target = upper if math.isfinite(upper) else None
    for _ in range(iters):
        rc = ac - lam[ai]
        idx = np.nonzero(rc < 0)[0]
        j, r, ii = aj[idx], rc[idx], ai[idx]
        dd = d[ii]
        frac = np.ones(len(j))
        # only sites whose negative points overflow the capacity need the greedy ratio rule
        load = np.bincount(j, weights=dd, minlength=m)
        over = np.nonzero(load > room_j)[0]
        if len(over):
            sel = np.nonzero(np.isin(j, over))[0]
            js, rs, ds = j[sel], r[sel], dd[sel]
            order = np.lexsort((rs / ds, js))
            js, rs, ds = js[order], rs[order], ds[order]
            cum = np.cumsum(ds)
            first = np.r_[True, js[1:] != js[:-1]]
            base = np.maximum.accumulate(np.where(first, cum - ds, 0.0))
            before = cum - ds - base
            frac[sel[order]] = np.clip((room_j[js] - before) / ds, 0.0, 1.0)
        v = np.bincount(j, weights=r * frac, minlength=m)
        if inst.self_serve:
            v = v - lam
        v = np.where(can_open, v, np.inf)
        chosen = np.argpartition(v, p - 1)[:p] if p < m else np.arange(m)
        value = float(lam.sum() + v[chosen].sum())
        if _DEBUG: print(value, mu)
        if not math.isfinite(best) or value > best + 1e-9 * max(1.0, abs(best)):
            best, stall = value, 0
        else:
            stall += 1
            if stall >= patience:
                mu, stall = mu / 2, 0
                if mu < 1e-3:
                    break
        is_chosen = np.zeros(m, dtype=bool)
        is_chosen[chosen] = True
        sel = is_chosen[j]
        g = 1.0 - np.bincount(ii[sel], weights=frac[sel], minlength=n)
        if inst.self_serve:
            g[chosen] -= 1.0
        norm = float(g @ g)
        if norm < 1e-12:
            break
        gapv = (target - value) if target is not None else abs(value) * 0.05 + 1.0
        step = mu * max(gapv, 1e-4 * abs(value) + 1e-9) / norm
        lam = np.minimum(lam + step * g, cap_lam)
        if deadline is not None and time.perf_counter() > deadline:
            break
    if not math.isfinite(best):
        return 0.0
    if inst.floor and np.all(inst.weight == np.rint(inst.weight)):
        best = math.ceil(best - 1e-6)  # integral objective
    return float(min(best, upper)) if math.isfinite(upper) else float(best)


def _unit_bound(inst, ai, aj, ac, cap_lam, room_j, upper, iters, deadline, patience, start, mu0):  # type: ignore[no-untyped-def]
    """Unit demands: each site's knapsack is "its cheapest room_j points", done row-wise.

    Arcs are laid out as one padded row per site, so an iteration is a few whole-array
    operations plus a partial sort of the rows that overflow.
    """
    n, m, p = inst.n, inst.m, inst.p
    order = np.argsort(aj, kind="stable")
    ai, aj, ac = ai[order], aj[order], ac[order]
    counts = np.bincount(aj, minlength=m)
    width = int(counts.max()) if len(counts) else 0
    if width == 0 or m * width > _PAD_CELLS:
        return None
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(len(aj)) - starts[aj]
    pad_i = np.full((m, width), n, dtype=np.int64)  # n: a dummy point with infinite cost
    pad_c = np.full((m, width), np.inf)
    pad_i[aj, col] = ai
    pad_c[aj, col] = ac
    room = np.maximum(room_j, 0).astype(np.int64)
    can_open = room_j >= 0
    lam = np.zeros(n + 1)
    if start is not None:
        lam[:n] = start
    else:
        first = np.full(n, np.inf)
        np.minimum.at(first, ai, ac)
        lam[:n] = np.where(np.isfinite(first), first, 0.0)
    lam[:n] = np.minimum(lam[:n], cap_lam)
    best, mu, stall = -np.inf, mu0, 0
    rows = np.arange(m)
    for _ in range(iters):
        red = np.minimum(pad_c - lam[pad_i], 0.0)
        cnt = (red < 0).sum(axis=1)
        v = red.sum(axis=1)
        over = np.nonzero(cnt > room)[0]
        if len(over):
            srt = np.sort(red[over], axis=1)
            csum = np.cumsum(srt, axis=1)
            v[over] = np.where(room[over] > 0, csum[np.arange(len(over)), np.maximum(room[over] - 1, 0)], 0.0)
        if inst.self_serve:
            v = v - lam[:n]
        v = np.where(can_open, v, np.inf)
        chosen = np.argpartition(v, p - 1)[:p] if p < m else rows
        value = float(lam[:n].sum() + v[chosen].sum())
        if not math.isfinite(best) or value > best + 1e-9 * max(1.0, abs(best)):
            best, stall = value, 0
        else:
            stall += 1
            if stall >= patience:
                mu, stall = mu / 2, 0
                if mu < 1e-3:
                    break
        # which points the chosen sites take: their negative arcs, cut to the room
        sub = red[chosen]
        take = sub < 0
        ov = cnt[chosen] > room[chosen]
        if ov.any():
            k_rank = np.argsort(np.argsort(sub[ov], axis=1, kind="stable"), axis=1, kind="stable")
            take[ov] &= k_rank < room[chosen][ov][:, None]
        g = np.ones(n + 1)
        np.subtract.at(g, pad_i[chosen][take], 1.0)
        g = g[:n]
        if inst.self_serve:
            g[chosen] -= 1.0
        norm = float(g @ g)
        if norm < 1e-12:
            break
        gapv = (upper - value) if math.isfinite(upper) else abs(value) * 0.05 + 1.0
        step = mu * max(gapv, 1e-4 * abs(value) + 1e-9) / norm
        lam[:n] = np.minimum(lam[:n] + step * g, cap_lam)
        if deadline is not None and time.perf_counter() > deadline:
            break
    if not math.isfinite(best):
        return 0.0
    return float(min(best, upper)) if math.isfinite(upper) else float(best)
