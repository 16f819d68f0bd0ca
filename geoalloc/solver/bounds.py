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

On tight instances (every branch nearly full) the relaxation keeps each branch's size between
the forced minimum and the maximum, and, once its multipliers settle, also dualizes rounded size
cuts (:mod:`geoalloc.solver.sizecuts`): that is what lifts the bound above the LP relaxation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.solver.instance import Instance
from geoalloc.solver.sizecuts import SizeCuts
from geoalloc.solver.textbook import REFINE_MIN_N

_MAX_ARCS = 3_000_000
MIN_ITERS = 40  # subgradient steps a small instance takes even past the deadline (a few ms)
MIN_ITERS_MAX_N = 600
_PAD_CELLS = 8_000_000  # the padded per-site layout of the unit-demand bound up to this size
# from this many points the weighted-demand knapsacks are compiled (geoalloc.solver.knapsack): the
# refinement's threshold, so numba is imported only where districts are large
COMPILED_MIN_N = REFINE_MIN_N


def lagrangian_bound(
    inst: Instance,
    upper: float,
    *,
    iters: int = 250,
    deadline: float | None = None,
    patience: int = 10,
    start: NDArray[np.float64] | None = None,
    mu0: float = 2.0,
    size_cuts: bool = True,
) -> float:
    """A valid lower bound on the instance's optimum; ``upper`` is a known plan's objective.

    ``start``: initial multipliers (for example each point's cost in a good plan, which is
    close to the dual optimum and saves most of the iterations). ``size_cuts``: on tight
    instances, go on with the rounded size cuts (:mod:`geoalloc.solver.sizecuts`) once the
    plain multipliers have settled; stronger, and slower.
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
    tight = (inst.demand == 1).all() and (inst.weight == 1).all() and p < m \
        and 2 * forced_size(inst) >= inst.max_size
    nearly_full = forced_size(inst) >= _NEARLY_FULL * inst.max_size and n <= _FORCED_FIRST_FULL_N and (
        deadline is None or deadline - time.perf_counter() >= _FORCED_FIRST_FULL_SECONDS)
    if tight and (n <= _FORCED_FIRST_N or nearly_full):
        # small tight instances: the bound with forced cluster sizes (see _forced_unit_bound)
        got = _forced_unit_bound(inst, upper, max(iters, 400), deadline, max(patience, 15), start, mu0,
                                 width=_FORCED_WIDTH * int(inst.max_size), size_cuts=size_cuts)
        if got is not None:
            return _finish(inst, got[0], upper)
    if (inst.demand == 1).all():
        fast = _unit_bound(inst, ai, aj, ac, cap_lam, room_j, upper, iters, deadline, patience, start, mu0)
        if fast is not None:
            value, lam_plain, least_take = fast
            own = 1 if inst.self_serve else 0
            if tight and least_take < forced_size(inst) - own and (deadline is None or time.perf_counter() < deadline):
                # larger tight instances: continue with forced sizes from the plain multipliers,
                # and keep whichever valuation is higher (both are valid bounds). Only where the
                # forced size binds there: otherwise the forced relaxation values those
                # multipliers as the plain one does, its search starts below them (its capped
                # multipliers) and, on the sample's fewest-branch districts, spent 1-2.5 s each
                # to end at most 0.014% above them (benchmarks/README.md, "Bound settings")
                got = _forced_unit_bound(inst, upper, max(iters, 400), deadline, max(patience, 15),
                                         lam_plain, mu0, width=_FORCED_WIDTH * int(inst.max_size),
                                         size_cuts=size_cuts)
                if got is not None:
                    value = max(value, got[0])
            return _finish(inst, value, upper)
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
    rows = _knapsack_rows(ai, aj, ac, m) if n >= COMPILED_MIN_N else None
    if rows is not None:
        from geoalloc.solver.knapsack import site_knapsacks, taken_shares  # numba: only on large instances

        frac_arc, neg_arc = np.zeros(len(ai)), np.zeros(len(ai), dtype=bool)
        room_f = np.asarray(room_j, dtype=np.float64)
    for it in range(iters):
        if rows is not None:
            v = site_knapsacks(*rows, lam, d, room_f, frac_arc, neg_arc)
        else:
            rc = ac - lam[ai]
            idx = np.nonzero(rc < 0)[0]
            j, r, ii = aj[idx], rc[idx], ai[idx]
            v, frac = _site_knapsacks(j, r, d[ii], room_j, m)
        if inst.self_serve:
            v = v - lam
        v = np.where(can_open, v, np.inf)
        chosen = np.argpartition(v, p - 1)[:p] if p < m else np.arange(m)
        value = float(lam.sum() + v[chosen].sum())
        _, best, stall, mu, stop = _track(value, best, stall, mu, patience)
        if stop:
            break
        is_chosen = np.zeros(m, dtype=bool)
        is_chosen[chosen] = True
        if rows is not None:
            taken = taken_shares(ai, aj, neg_arc, frac_arc, is_chosen, n)
        else:
            sel = is_chosen[j]
            taken = np.bincount(ii[sel], weights=frac[sel], minlength=n).astype(np.float64)
        g = 1.0 - taken
        if inst.self_serve:
            g[chosen] -= 1.0
        norm = float(g @ g)
        if norm < 1e-12:
            break
        gapv = (target - value) if target is not None else abs(value) * 0.05 + 1.0
        step = mu * max(gapv, 1e-4 * abs(value) + 1e-9) / norm
        lam = np.minimum(lam + step * g, cap_lam)
        if _out_of_time(deadline, it, inst.n):
            break
    return _finish(inst, best, upper) if math.isfinite(best) else 0.0


def _site_knapsacks(j: NDArray[np.int64], r: NDArray[np.float64], dd: NDArray[np.float64],
                    room_j: NDArray[np.float64], m: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each site's value from its negative arcs (site ``j``, reduced cost ``r``, demand ``dd``, in
    arc order), and the share of each arc's point it takes: all of them, or where their demand
    overflows the room, the greedy ratio rule (most negative cost per unit of demand first)."""
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
    return np.bincount(j, weights=r * frac, minlength=m).astype(np.float64), frac


def _knapsack_rows(ai: NDArray[np.int64], aj: NDArray[np.int64], ac: NDArray[np.float64], m: int
                   ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]] | None:
    """The arcs as one row per site, in arc order (cost, point, arc index, and each row's length),
    for :func:`geoalloc.solver.knapsack.site_knapsacks`; None when the rows would be too large."""
    order = np.argsort(aj, kind="stable")
    counts = np.bincount(aj, minlength=m)
    width = int(counts.max()) if len(counts) else 0
    if width == 0 or m * width > _PAD_CELLS:
        return None
    col = np.arange(len(aj)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[aj[order]]
    pad_c = np.full((m, width), np.inf)
    pad_i = np.zeros((m, width), dtype=np.int64)
    pad_a = np.zeros((m, width), dtype=np.int64)
    pad_c[aj[order], col] = ac[order]
    pad_i[aj[order], col] = ai[order]
    pad_a[aj[order], col] = order
    return pad_c, pad_i, pad_a, counts.astype(np.int64)


def _unit_bound(inst, ai, aj, ac, cap_lam, room_j, upper, iters, deadline, patience, start, mu0):
    """Unit demands: each site's knapsack is "its cheapest room_j points", done row-wise.
    Returns (bound, its multipliers, the fewest points a chosen site takes there), or None when
    the padded layout would be too large.

    Arcs are laid out as one padded row per site, so an iteration is a few whole-array
    operations plus a partial sort of the rows that overflow. Each step keeps UNIT_DEFLECT of
    the last direction and aims UNIT_TARGET of the way from the best value to the plan: plain
    steps aimed at the plan zigzag. Every iteration's value is a valid bound; the best is kept.
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
    best, best_lam, mu, stall = -np.inf, lam[:n].copy(), mu0, 0
    least_take = 0  # the fewest points a chosen site takes at the best multipliers
    rows = np.arange(m)
    last_step: list[NDArray[np.float64]] = []
    room0 = int(room[can_open].max()) if can_open.any() else 0
    uniform_room = bool((room[can_open] == room0).all())
    for it in range(iters):
        red = np.minimum(pad_c - lam[pad_i], 0.0)
        cnt = (red < 0).sum(axis=1)
        v = red.sum(axis=1)
        over = np.nonzero(cnt > room)[0]
        if len(over):
            if uniform_room:  # one room for all: a partition finds each row's room cheapest
                v[over] = np.partition(red[over], room0 - 1, axis=1)[:, :room0].sum(axis=1) if room0 > 0 else 0.0
            else:
                srt = np.sort(red[over], axis=1)
                csum = np.cumsum(srt, axis=1)
                v[over] = np.where(room[over] > 0, csum[np.arange(len(over)), np.maximum(room[over] - 1, 0)], 0.0)
        if inst.self_serve:
            v = v - lam[:n]
        v = np.where(can_open, v, np.inf)
        chosen = np.argpartition(v, p - 1)[:p] if p < m else rows
        value = float(lam[:n].sum() + v[chosen].sum())
        improved, best, stall, mu, stop = _track(value, best, stall, mu, patience)
        if improved:
            best_lam = lam[:n].copy()
            least_take = int(np.minimum(cnt[chosen], room[chosen]).min()) if len(chosen) else 0
        if stop:
            break
        # which points the chosen sites take: their negative arcs, cut to the room
        sub = red[chosen]
        take = sub < 0
        ov = cnt[chosen] > room[chosen]
        if ov.any():
            k_rank = np.argsort(np.argsort(sub[ov], axis=1, kind="stable"), axis=1, kind="stable")
            take[ov] &= k_rank < room[chosen][ov][:, None]
        if not _subgradient_step(inst, lam, n, pad_i, chosen, take, value, upper, mu, cap_lam,
                                 last_step=last_step, deflect=UNIT_DEFLECT, aim=UNIT_TARGET, best=best):
            break
        if _out_of_time(deadline, it, inst.n):
            break
    if not math.isfinite(best):
        return 0.0, best_lam, least_take
    return float(best), best_lam, least_take


def _out_of_time(deadline: float | None, it: int, n: int) -> bool:
    """Past the deadline; small instances first take MIN_ITERS steps, which cost them a few
    milliseconds: on a busy machine a search cut after a handful of steps leaves a bound far
    below the plan."""
    if deadline is None or (n <= MIN_ITERS_MAX_N and it < MIN_ITERS):
        return False
    return time.perf_counter() > deadline


def _finish(inst: Instance, value: float, upper: float) -> float:
    """A bound as reported: rounded up when the objective is integral, never above the plan."""
    value = max(value, 0.0)  # costs are never negative; a search cut short can value lower
    if inst.floor and np.all(inst.weight == np.rint(inst.weight)):
        value = float(math.ceil(value - 1e-6))  # integral objective
    return float(min(value, upper)) if math.isfinite(upper) else float(value)


def forced_size(inst: Instance) -> int:
    """Least demand every open cluster must hold: its own minimum, and what the other p - 1
    clusters cannot take even when full (``total - (p - 1) * max_size``). When the branch count
    is the fewest the limits allow, that second term is close to ``max_size`` and it is what
    makes the bound strong."""
    total = int(inst.demand.sum())
    return max(int(inst.min_size), total - (inst.p - 1) * int(inst.max_size), 0)


# the size cuts' phase: a deflected subgradient (each step keeps this share of the last
# direction) with more patience (measurements: benchmarks/README.md, "Bound settings")
DEFLECT = 0.7
CUT_PATIENCE = 50
# the unit-demand bound's steps: the same deflection, and the Polyak step aimed this share of the
# way from the best value to the plan (benchmarks/README.md, "Bound settings")
UNIT_DEFLECT = 0.7
UNIT_TARGET = 0.5
PLAIN_SETTLED = 0.1
_FORCED_FIRST_N = 600  # tight instances up to this size start with the forced bound outright
# ... and so do nearly full ones (every branch at least 80% full) up to this size, which leaves
# the size cuts time to work, given at least _FORCED_FIRST_FULL_SECONDS (with less, the forced
# bound has not recovered from its start when time runs out; benchmarks/README.md, "Bound settings")
_NEARLY_FULL = 0.8
_FORCED_FIRST_FULL_N = 2_000
_FORCED_FIRST_FULL_SECONDS = 0.6
_FORCED_WIDTH = 4  # the forced search lists each site's 4 x max_size nearest points
_DENSE_MAX = 6_000  # exact (all-pairs) evaluation of the forced bound up to this many points


def _site_values(red: NDArray[np.float64], f: int, u: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each row's least sum of between f and u entries, and its u smallest entries sorted."""
    if u < red.shape[1]:
        part = np.partition(red, u - 1, axis=1)[:, :u] if u > 0 else red[:, :0]
    else:
        part = red
    srt = np.sort(part, axis=1)
    v = srt[:, :f].sum(axis=1) + np.minimum(srt[:, f:u], 0.0).sum(axis=1)
    return v, srt


def _forced_value(inst: Instance, lam: NDArray[np.float64], f: int, u: int, chunk: int = 256,
                  cuts: SizeCuts | None = None, cut_mu: NDArray[np.float64] | None = None) -> float:
    """The forced relaxation's exact value at ``lam`` (and the size cuts' ``cut_mu``), over all
    point-site pairs (valid)."""
    n, m, p = inst.n, inst.m, inst.p
    v = np.empty(m)
    pts = np.arange(n)
    extra = 0.0
    if cuts is not None and cut_mu is not None:
        extra = float(cut_mu @ cuts.rhs)
    for a in range(0, m, chunk):
        js = np.arange(a, min(m, a + chunk))
        red = inst.cost(pts[None, :], js[:, None]) - lam[None, :n]
        if cuts is not None and cut_mu is not None:
            ii, jj = np.broadcast_arrays(pts[None, :], js[:, None])
            red = red - cuts.discounts(cut_mu, ii, jj, cuts.prepare(ii, jj))
        if inst.self_serve:
            red[np.arange(len(js)), js] = np.inf
        v[js], _ = _site_values(red, f, u)
    if inst.self_serve:
        v = v - lam[:n]
    v = np.where(np.isfinite(v), v, np.inf)
    chosen = np.argpartition(v, p - 1)[:p] if p < m else np.arange(m)
    return float(lam[:n].sum() + v[chosen].sum() + extra)


@dataclass
class _ForcedRows:
    """What the forced search looks at: each site's nearest points as one padded row
    (``pad_i``; padding is point n at infinite cost), the caps on each member's multiplier,
    and how many of a row's points a chosen site takes (between ``ff`` and ``uu``)."""

    pad_i: NDArray[np.int64]
    pad_c: NDArray[np.float64]
    cap_lam: NDArray[np.float64]
    ff: int
    uu: int


def _forced_rows(inst: Instance, f: int, u: int, width: int | None) -> _ForcedRows:
    """Each site's ``width`` nearest points, and each member's cap on lambda: the cost of the
    nearest site whose list lacks it. Then no unlisted pair has a negative reduced cost, and the
    search sees what the exact valuation will see."""
    n, m, q = inst.n, inst.m, int(inst.max_size)
    own = 1 if inst.self_serve else 0
    w = int(min(n - own, width if width is not None else 2 * q + 20))
    kq = min(n, w + own)
    _, nb = cKDTree(inst.xy).query(inst.sites_xy, k=kq)
    pad_i = np.asarray(nb, dtype=np.int64).reshape(m, kq)
    if inst.self_serve:
        pad_i = np.where(pad_i == np.arange(m)[:, None], n, pad_i)
    pad_c = np.where(pad_i < n, inst.cost(np.minimum(pad_i, n - 1), np.arange(m)[:, None]), np.inf)
    kp = int(min(m, 3 * q + 20))
    _, pn = cKDTree(inst.sites_xy).query(inst.xy, k=kp)
    pn = np.asarray(pn, dtype=np.int64).reshape(n, kp)
    listed_keys = np.unique((np.arange(m)[:, None] * (n + 1) + pad_i).ravel())
    pi = np.broadcast_to(np.arange(n)[:, None], pn.shape)
    missing = ~np.isin(pn * (n + 1) + pi, listed_keys)
    if inst.self_serve:
        missing &= pn != pi
    has = missing.any(axis=1)
    first_missing = np.where(has, np.argmax(missing, axis=1), kp - 1)
    cap_lam = inst.cost(np.arange(n), pn[np.arange(n), first_missing])
    uu = min(u, w)  # every row lists at least w finite points
    return _ForcedRows(pad_i, pad_c, cap_lam, min(f, uu), uu)


def _proves(upper: float) -> float:
    """A bound at least this high proves the plan of objective ``upper`` optimal."""
    return upper - 1e-9 * max(1.0, abs(upper)) if math.isfinite(upper) else np.inf


@dataclass
class _Best:
    """The best Lagrangian value seen, and the multipliers (members', cuts') that gave it."""

    value: float
    lam: NDArray[np.float64]
    mu: NDArray[np.float64] | None = None


def _forced_phase(
    inst: Instance, rows: _ForcedRows, lam: NDArray[np.float64], best: _Best, upper: float, iters: int,
    deadline: float | None, patience: int, mu0: float, cuts: SizeCuts | None = None, settle: bool = False,
) -> bool:
    """Subgradient steps from ``lam`` (and, with ``cuts``, from ``best.mu``), recording every
    improvement on ``best`` in place. ``settle``: stop once the step factor falls below
    PLAIN_SETTLED, which is when the cuts may join. False when fewer than p sites can take a
    cluster (no bound)."""
    n, m, p = inst.n, inst.m, inst.p
    pad_i, pad_c, ff, uu = rows.pad_i, rows.pad_c, rows.ff, rows.uu
    all_rows = np.arange(m)
    met = _proves(upper)
    mu, stall = mu0, 0
    if cuts is not None:
        assert best.mu is not None
        cut_mu = best.mu.copy()
        arc_i, arc_j = np.minimum(pad_i, n - 1), np.broadcast_to(all_rows[:, None], pad_i.shape)
        prepared = cuts.prepare(arc_i, arc_j)  # the padding's arcs cost inf whatever their discount
        last_step: list[NDArray[np.float64]] = []
    for it in range(iters):
        red = pad_c - lam[pad_i]
        if cuts is not None:
            red = red - cuts.discounts(cut_mu, arc_i, arc_j, prepared)
        v, srt = _site_values(red, ff, uu)
        if inst.self_serve:
            v = v - lam[:n]
        v = np.where(np.isfinite(v), v, np.inf)
        if np.isinf(v).sum() > m - p:
            return False
        chosen = np.argpartition(v, p - 1)[:p] if p < m else all_rows
        value = float(lam[:n].sum() + v[chosen].sum())
        if cuts is not None:
            value += float(cut_mu @ cuts.rhs)
        improved, best.value, stall, mu, stop = _track(value, best.value, stall, mu, patience)
        if improved:
            best.lam = lam.copy()
            if cuts is not None:
                best.mu = cut_mu.copy()
        if stop or best.value >= met or (settle and mu < PLAIN_SETTLED):
            break
        # the points each chosen site takes: its ff cheapest, then negatives up to uu
        sub = red[chosen]
        cut_f = srt[chosen, ff - 1][:, None] if ff > 0 else np.full((len(chosen), 1), -np.inf)
        cut_u = srt[chosen, uu - 1][:, None] if uu > 0 else np.full((len(chosen), 1), -np.inf)
        take = ((sub <= cut_f) | (sub < 0)) & (sub <= cut_u) & np.isfinite(sub)
        if cuts is not None:
            ti, tj = pad_i[chosen][take], np.broadcast_to(chosen[:, None], take.shape)[take]
            g_cut = cuts.rhs - cuts.crossings(ti, tj, [lca[chosen][take] for lca in prepared])
            g_cut = np.where((cut_mu > 0) | (g_cut > 0), g_cut, 0.0)  # projected onto mu >= 0
            if not _subgradient_step(inst, lam, n, pad_i, chosen, take, value, upper, mu, rows.cap_lam,
                                     cut_mu, g_cut, last_step):
                break
        elif not _subgradient_step(inst, lam, n, pad_i, chosen, take, value, upper, mu, rows.cap_lam):
            break
        if _out_of_time(deadline, it, inst.n):
            break
    return True


def _forced_unit_bound(
    inst: Instance, upper: float, iters: int, deadline: float | None, patience: int,
    start: NDArray[np.float64] | None, mu0: float, width: int | None = None, size_cuts: bool = True,
):
    """Unit demands, unit weights: Lagrangian bound with each site's cluster size in [L, Q].

    Relaxing "each point exactly once" leaves, per site, "pick between L and Q points at the
    least total reduced cost" (a sort), and the p best sites. The lower size L (see
    :func:`forced_size`) is what the plain relaxation misses: without it a site may take only
    its few cheapest points, and tight districts show gaps several times larger.
    The subgradient search looks only at each site's ``width`` nearest points (fast, but not a
    bound by itself); the multipliers it ends with are then valued exactly over all pairs,
    which is the bound returned (also at ``start``, the higher kept), with the search's best
    multipliers. With ``size_cuts``, a second phase dualizes the rounded size cuts once the
    plain multipliers have settled. Returns (bound, multipliers), or None when the instance is
    too large for the exact valuation.
    """
    n, m, p, q = inst.n, inst.m, inst.p, int(inst.max_size)
    if n > _DENSE_MAX or m > _DENSE_MAX:
        return None
    low = forced_size(inst)
    own = 1 if inst.self_serve else 0
    f, u = max(low - own, 0), min(q - own, n - own)
    if u < 0 or f > u:
        return None
    rows = _forced_rows(inst, f, u, width)
    lam = np.zeros(n + 1)
    if start is not None:
        lam[:n] = start
    else:
        first = np.full(n + 1, np.inf)
        np.minimum.at(first, rows.pad_i.ravel(), rows.pad_c.ravel())
        lam[:n] = np.where(np.isfinite(first[:n]), first[:n], 0.0)
    lam[:n] = np.minimum(lam[:n], rows.cap_lam)
    cuts = SizeCuts.build(inst.xy, p, low, q) if inst.self_serve and size_cuts else None
    best = _Best(-np.inf, lam.copy(), np.zeros(cuts.size) if cuts is not None else None)
    if not _forced_phase(inst, rows, lam, best, upper, iters, deadline, patience, mu0, settle=cuts is not None):
        return None
    # the cuts join once the plain multipliers have settled (their step factor has fallen to
    # PLAIN_SETTLED): from the start, the cuts' large subgradients swamp the members' and the
    # search wanders off
    plain_lam = None
    if cuts is not None and best.value < _proves(upper) and not _out_of_time(deadline, MIN_ITERS, inst.n):
        plain_lam = best.lam.copy()
        if not _forced_phase(inst, rows, best.lam.copy(), best, upper, iters, deadline,
                             max(patience, CUT_PATIENCE), mu0, cuts=cuts):
            return None
    if not math.isfinite(best.value):
        return None
    value = _forced_value(inst, best.lam, f, u, cuts=cuts if plain_lam is not None else None, cut_mu=best.mu)
    if plain_lam is not None:  # the cuts' search valued over all pairs may fall below the plain one
        value = max(value, _forced_value(inst, plain_lam, f, u))
    if start is not None:  # the starting multipliers may value higher than the search's best
        value = max(value, _forced_value(inst, np.asarray(start, dtype=np.float64), f, u))
    return value, best.lam


def _subgradient_step(inst: Instance, lam: NDArray[np.float64], n: int, pad_i: NDArray[np.int64],
                      chosen: NDArray[np.int64], take: NDArray[np.bool_], value: float, upper: float,
                      mu: float, cap_lam: float | NDArray[np.float64],
                      cut_mu: NDArray[np.float64] | None = None, g_cut: NDArray[np.float64] | None = None,
                      last_step: list[NDArray[np.float64]] | None = None, deflect: float = DEFLECT,
                      aim: float = 1.0, best: float = -math.inf) -> bool:
    """One Polyak-style step on the multipliers from the points the chosen sites take.

    The subgradient of each member's multiplier is 1 minus the times it is taken; the step
    length uses the gap to the best known plan, or to a target ``aim`` of the way from the
    ``best`` value to it. With ``last_step`` the direction keeps ``deflect`` of the previous one
    (updated in place). With size cuts, their multipliers ``cut_mu`` move along ``g_cut`` in the
    same step. False when the subgradient vanishes (the relaxed solution assigns every member
    exactly once and meets every cut: the bound is tight).
    """
    g = 1.0 - np.bincount(pad_i[chosen][take], minlength=n + 1)[:n]
    if inst.self_serve:
        g[chosen] -= 1.0
    if g_cut is not None and last_step is not None:
        if last_step:
            g, g_cut = g + deflect * last_step[0], g_cut + deflect * last_step[1]
        last_step[:] = [np.asarray(g, dtype=np.float64), np.asarray(g_cut, dtype=np.float64)]
    elif last_step is not None:
        if float(g @ g) < 1e-12:
            return False  # the relaxed solution itself is a plan: nothing left to deflect towards
        if last_step and deflect > 0:
            g = g + deflect * last_step[0]
        last_step[:] = [np.asarray(g, dtype=np.float64)]
    norm = float(g @ g) + (float(g_cut @ g_cut) if g_cut is not None else 0.0)
    if norm < 1e-12:
        return False
    if math.isfinite(upper):
        target = upper if aim >= 1.0 or not math.isfinite(best) else best + aim * (upper - best)
        gapv = target - value
    else:
        gapv = abs(value) * 0.05 + 1.0
    step = mu * max(gapv, 1e-4 * abs(value) + 1e-9) / norm
    lam[:n] = np.minimum(lam[:n] + step * g, cap_lam)
    if cut_mu is not None and g_cut is not None:
        cut_mu[:] = np.maximum(cut_mu + step * g_cut, 0.0)
    return True


def _track(value: float, best: float, stall: int, mu: float, patience: int) -> tuple[bool, float, int, float, bool]:
    """Record one Lagrangian value: (improved, best, stall, mu, stop).

    The step factor ``mu`` halves after ``patience`` steps without improvement; the search
    stops once it falls below 1e-3.
    """
    if not math.isfinite(best) or value > best + 1e-9 * max(1.0, abs(best)):
        return True, value, 0, mu, False
    stall += 1
    if stall < patience:
        return False, best, stall, mu, False
    mu /= 2
    return False, best, 0, mu, mu < 1e-3
