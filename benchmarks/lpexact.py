"""The exact LP relaxation of each district of the sample roster, beside the product's bound,
its plan and k-means-constrained, in one run: the ceiling of any Lagrangian bound of this model,
and a floor under every plan.

    .venv/bin/python -m benchmarks.lpexact [--roster-policy default|fewest|both] [--time-limit 30]
        [--seed 0] [--start-k 12] [--no-kmeans] [--cap]

The model is the strong one of ``benchmarks/certificate.py`` with every rule a district's plan
must meet: each member in one branch, ``p`` branches, ``x_ij <= y_j``, capacity ``max_size``,
the implied least size ``L`` (:func:`geoalloc.solver.bounds.forced_size`, at least
``min_size``), at least ``min_full`` full members, each open site serving its own point, demands
and weights as the instance has them. Every valid plan is a point of it, so no plan totals less
than the LP, and no Lagrangian relaxation of the assignment rows that keeps these per-branch
rules can bound higher (its sub-problems are integral for unit demands). The product's bound
with size cuts (tight districts) can: the cuts are not in this model.

Unit demands (the sample): the LP as its Lagrangian dual over clusters (:func:`dw_lp`: a master
over clusters, priced exactly by sorting, the master's duals boxed around the best multipliers);
it ends when the master's value and a Lagrangian value meet, so the printed ``lp`` is a valid
bound and, within 1e-6, the LP's value. Other demands: arc generation (:func:`exact_lp`). The
plans and bounds are the product's own unit solves (:func:`geoalloc.solver.form.solve_unit`,
the same plans as ``form_branches`` on any engine); k-means-constrained is
``benchmarks.peers``' runner with the same branch count in each district. Minutes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

import highspy
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from geoalloc.solver.bounds import forced_size
from geoalloc.solver.highs import _highs
from geoalloc.solver.instance import Instance

INF = highspy.kHighsInf
ADD_PER_POINT = 8  # most negative arcs added per member and round
_VERBOSE = bool(os.environ.get("LPEXACT_VERBOSE"))
PRICE_TOL = 1e-7  # relative to the largest cost: reduced costs above -this count as non-negative


@dataclass
class LpResult:
    """An LP optimum: its value, arcs used at the end, pricing rounds, seconds."""

    value: float
    arcs: int
    rounds: int
    seconds: float


class _Master:
    """The restricted LP: y_j for every site, x_ij for the arcs added so far (each with its
    ``x_ij - y_j <= 0`` row; the own arcs of self-serving sites as ``x_jj - y_j = 0``)."""

    def __init__(self, inst: Instance, rules: bool) -> None:
        n, m = inst.n, inst.m
        self.inst, self.n, self.m = inst, n, m
        self.d = inst.demand.astype(np.float64)
        self.f = inst.full_part.astype(np.float64)
        low = float(forced_size(inst)) if rules else 0.0
        full = float(inst.min_full) if rules else 0.0
        self.h = _highs()
        self.h.setOptionValue("threads", 1)
        self.h.setOptionValue("random_seed", 0)
        h = self.h
        h.addVars(m, np.zeros(m), np.ones(m))
        h.changeColsCost(m, np.arange(m, dtype=np.int32), np.zeros(m))
        # rows: assignment (n), count (1), capacity (m), least size (m), full members (m)
        h.addRows(n, np.ones(n), np.ones(n), 0, np.zeros(n, dtype=np.int32), np.zeros(0, dtype=np.int32),
                  np.zeros(0))
        h.addRow(float(inst.p), float(inst.p), m, np.arange(m, dtype=np.int32), np.ones(m))
        self.cap0, self.low0, self.full0 = n + 1, n + 1 + m, n + 1 + 2 * m
        sites = np.arange(m, dtype=np.int32)
        for lo_mult, hi_mult, coef in ((-INF, None, -float(inst.max_size)), (0.0, INF, -low), (0.0, INF, -full)):
            lo = np.full(m, lo_mult)
            hi = np.zeros(m) if hi_mult is None else np.full(m, hi_mult)
            h.addRows(m, lo, hi, m, np.arange(m, dtype=np.int32), sites, np.full(m, coef))
        self.has = np.zeros((n, m), dtype=bool)
        self.arcs: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        self.n_cols = m

    def add(self, ai: NDArray[np.int64], aj: NDArray[np.int64]) -> int:
        """Add the arcs not yet in (with their link rows); how many were new."""
        new = ~self.has[ai, aj]
        ai, aj = ai[new], aj[new]
        key = np.unique(ai * self.m + aj)
        ai, aj = key // self.m, key % self.m
        k = len(ai)
        if k == 0:
            return 0
        self.has[ai, aj] = True
        inst, h = self.inst, self.h
        cost = inst.cost(ai, aj).astype(np.float64)
        # each x_ij: assignment row i, capacity / least size rows of j (d_i), full row of j (f_i)
        rows = np.stack([ai, self.cap0 + aj, self.low0 + aj, self.full0 + aj], axis=1)
        vals = np.stack([np.ones(k), self.d[ai], self.d[ai], self.f[ai]], axis=1)
        keep = vals != 0
        counts = keep.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        h.addCols(k, cost, np.zeros(k), np.ones(k), int(counts.sum()), starts, rows[keep].astype(np.int32),
                  vals[keep])
        cols = np.arange(self.n_cols, self.n_cols + k, dtype=np.int32)
        self.n_cols += k
        own = (ai == aj) if inst.self_serve else np.zeros(k, dtype=bool)
        lo = np.where(own, 0.0, -INF)
        r_idx = np.stack([cols, aj.astype(np.int32)], axis=1).ravel()
        r_val = np.tile([1.0, -1.0], k)
        h.addRows(k, lo, np.zeros(k), 2 * k, np.arange(0, 2 * k, 2, dtype=np.int32), r_idx, r_val)
        self.arcs.append((ai, aj))
        return k

    def solve(self) -> tuple[bool, float]:
        self.h.run()
        ok = self.h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return ok, float(self.h.getInfo().objective_function_value) if ok else math.nan

    def duals(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per member its assignment row's dual; per site the worth of one more unit of demand
        (capacity + least size rows) and of one more full member, as (u, a, b) packed in two."""
        rd = np.asarray(self.h.getSolution().row_dual)
        n, m = self.n, self.m
        u = rd[:n]
        a = rd[self.cap0:self.cap0 + m] + rd[self.low0:self.low0 + m]
        b = rd[self.full0:self.full0 + m]
        return u, np.stack([a, b])


def exact_lp(inst: Instance, *, plan: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None,
             start_k: int = 12, rules: bool = True, chunk: int = 512) -> LpResult:
    """The instance's LP optimum by arc generation (see the module docstring). ``plan``:
    (sites, branch of each point) of a valid plan, whose arcs make the first LP feasible.
    ``rules=False``: capacity only (no least size, no full-member minimum): the relaxation the
    plain Lagrangian bound dualizes."""
    t0 = time.perf_counter()
    n, m = inst.n, inst.m
    master = _Master(inst, rules)
    k = min(m, start_k)
    _, nb = cKDTree(inst.sites_xy).query(inst.xy, k=k)
    nb = np.asarray(nb, dtype=np.int64).reshape(n, k)
    master.add(np.repeat(np.arange(n), k), nb.ravel())
    if inst.self_serve:
        master.add(np.arange(n), np.arange(n))
    if plan is not None:
        master.add(np.arange(n), np.asarray(plan[0])[np.asarray(plan[1])])
    tol = PRICE_TOL * max(1.0, float(inst.cost(np.arange(n), nb[:, -1]).max()))
    rounds = 0
    while True:
        rounds += 1
        ok, value = master.solve()
        if not ok:  # too few arcs for a feasible LP (no plan given): widen every member's list
            k = min(m, 2 * k)
            _, nb = cKDTree(inst.sites_xy).query(inst.xy, k=k)
            master.add(np.repeat(np.arange(n), k), np.asarray(nb, dtype=np.int64).ravel())
            if k == m and rounds > 64:
                raise RuntimeError("the LP is infeasible")
            continue
        u, ab = master.duals()
        if _VERBOSE:
            print(f"  round {rounds}: value {value:.1f}, {int(master.has.sum())} arcs, {time.perf_counter() - t0:.1f} s",
                  flush=True)
        add_i, add_j = [], []
        for lo in range(0, n, chunk):
            ii = np.arange(lo, min(n, lo + chunk))
            rc = inst.cost(ii[:, None], np.arange(m)[None, :]) - u[ii, None] \
                - master.d[ii, None] * ab[0][None, :] - master.f[ii, None] * ab[1][None, :]
            rc[master.has[ii]] = np.inf
            neg = rc < -tol
            if not neg.any():
                continue
            take = min(ADD_PER_POINT, m)
            part = np.argpartition(rc, take - 1, axis=1)[:, :take] if take < m else np.broadcast_to(np.arange(m), rc.shape)
            sel = neg[np.arange(len(ii))[:, None], part]
            add_i.append(np.broadcast_to(ii[:, None], part.shape)[sel])
            add_j.append(part[sel])
        if not add_i or master.add(np.concatenate(add_i), np.concatenate(add_j)) == 0:
            return LpResult(value, int(master.has.sum()), rounds, time.perf_counter() - t0)


def lp_value(inst: Instance, plan: tuple[NDArray[np.int64], NDArray[np.int64]], start_k: int = 12,
             rules: bool = True) -> LpResult:
    """The LP's optimum: over clusters (:func:`dw_lp`) for unit demands, else by arc generation
    (:func:`exact_lp`). Raises when the cluster LP did not finish."""
    if (inst.demand == 1).all():
        got = dw_lp(inst, plan, rules=rules)
        if not math.isfinite(got.upper):
            raise RuntimeError("the cluster LP did not finish")
        return LpResult(got.lower, got.columns, got.rounds, got.seconds)
    return exact_lp(inst, plan=plan, start_k=start_k, rules=rules)


def _units(rule: str, time_limit: float, seed: int):  # type: ignore[no-untyped-def]
    """The sample's units as the product cuts them, each solved by the product's own unit solve."""
    from benchmarks.cpmp import shenzhen_problem
    from geoalloc.rules import Policy
    from geoalloc.solver import form

    problem = shenzhen_problem()
    pol = Policy(min_size=3, max_size=50, time_limit=time_limit, seed=seed,
                 n_branches="fewest" if rule == "fewest" else None)
    units = form.build_units(problem, pol)
    counts = form.branch_counts(problem, units, pol)
    out = []
    for u, p in zip(units, counts):
        inst, _ = form._instance(problem, u, p, pol)
        res = form.solve_unit(form.unit_task(u.name, inst, pol))
        if res is None:
            raise RuntimeError(f"{u.name}: no plan")
        out.append((u, inst, res))
    return problem, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lpexact", description=__doc__.split("\n\n")[0])
    ap.add_argument("--roster-policy", choices=["default", "fewest", "both"], default="both")
    ap.add_argument("--time-limit", type=float, default=30.0, help="the product's time limit (its plans and bounds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start-k", type=int, default=12)
    ap.add_argument("--no-kmeans", action="store_true")
    ap.add_argument("--cap", action="store_true",
                    help="also the LP with capacities only (what the plain bound dualizes; as long again)")
    args = ap.parse_args(argv)
    from benchmarks.peers import kmeans_by_region

    for rule in ["default", "fewest"] if args.roster_policy == "both" else [args.roster_policy]:
        problem, units = _units(rule, args.time_limit, args.seed)
        km = {} if args.no_kmeans else kmeans_by_region(problem, {
            r: sum(int(i.p) for u, i, _ in units if u.regions == [r]) for r in range(len(problem.region_names))}, args.seed)
        print(f"policy {rule}: LP = the exact LP with every rule (lp_cap: capacity only, what the plain bound dualizes)")
        head = (f"{'district':<8} {'n':>5} {'p':>3} {'L':>3} | {'plan':>10} {'bound':>10} {'lp_cap':>10} {'lp':>10} | "
                f"{'gap':>6} {'lp_gap':>6} | {'k-means-c':>10} | {'cols':>7} {'rounds':>6} {'lp_s':>6}")
        print(head)
        print("-" * len(head))
        tot = dict.fromkeys(["plan", "bound", "lp_cap", "lp", "km"], 0.0)
        km_all = not args.no_kmeans
        for u, inst, res in units:
            plan = (res.sites, res.branch_of)
            if inst.p == 1:  # one branch: the plan is exact
                lp = LpResult(res.objective, inst.n, 0, 0.0)
                lp_cap = lp if args.cap else None
            else:
                lp = lp_value(inst, plan, args.start_k)
                lp_cap = lp_value(inst, plan, args.start_k, rules=False) if args.cap else None
            k = km.get(u.regions[0]) if len(u.regions) == 1 else None
            km_all &= k is not None
            for key, v in (("plan", res.objective), ("bound", min(res.lower_bound, res.objective)),
                           ("lp_cap", lp_cap.value if lp_cap else math.nan), ("lp", lp.value), ("km", k or 0.0)):
                tot[key] += v
            ks = f"{k:>10.0f}" if k is not None else f"{'-':>10}"
            print(f"{u.name:<8} {inst.n:>5} {inst.p:>3} {forced_size(inst):>3} | {res.objective:>10.0f} "
                  f"{min(res.lower_bound, res.objective):>10.0f} {lp_cap.value if lp_cap else math.nan:>10.0f} {lp.value:>10.0f} | "
                  f"{(res.objective - res.lower_bound) / res.objective:>6.2%} {(res.objective - lp.value) / res.objective:>6.2%} | "
                  f"{ks} | {lp.arcs:>7} {lp.rounds:>6} {lp.seconds + (lp_cap.seconds if lp_cap else 0.0):>6.1f}", flush=True)
        print(f"{'total':<8} {problem.n:>5} {sum(int(i.p) for _, i, _ in units):>3} {'':>3} | {tot['plan']:>10.0f} "
              f"{tot['bound']:>10.0f} {tot['lp_cap']:>10.0f} {tot['lp']:>10.0f} | "
              f"{(tot['plan'] - tot['bound']) / tot['plan']:>6.2%} {(tot['plan'] - tot['lp']) / tot['plan']:>6.2%} | "
              f"{tot['km'] if km_all else math.nan:>10.0f} |")
        if km_all and tot["km"] > 0:
            print(f"LP total = x{tot['lp'] / tot['km']:.4f} of k-means-constrained's total ({tot['lp']:,.0f} / "
                  f"{tot['km']:,.0f} m; plan x{tot['plan'] / tot['km']:.4f}): no plan meeting every rule with these "
                  f"branch counts totals less than the LP, so x{tot['lp'] / tot['km']:.4f} is the least any can reach. "
                  f"Least gap any bound of this relaxation can certify for this plan: "
                  f"{(tot['plan'] - tot['lp']) / tot['plan']:.2%}", flush=True)
    return 0



def cluster_prices(cost_rows: NDArray[np.float64], sites: NDArray[np.int64], u: NDArray[np.float64],
                   full: NDArray[np.bool_], low: int, high: int, min_full: int, self_serve: bool,
                   members: bool = False) -> tuple[NDArray[np.float64], list[NDArray[np.int64]] | None]:
    """Each site's least reduced cost of a cluster (``cost_rows[s, i] - u[i]`` summed) of between
    ``low`` and ``high`` points with at least ``min_full`` full ones, its own point in it when
    ``self_serve`` (counted, at ``-u[own]``); inf where none exists. With ``members``, also each
    cluster's points. Exact: the cheapest full points the minimum needs, then the cheapest of the
    rest up to ``low``, then every negative one up to ``high`` (sums of sorted values are convex)."""
    k_sites, n = cost_rows.shape
    red = cost_rows - u[None, :]
    own_full = np.zeros(k_sites, dtype=np.int64)
    if self_serve:
        red[np.arange(k_sites), sites] = np.inf
        own_full = full[sites].astype(np.int64)
    own = 1 if self_serve else 0
    lo, hi = max(low - own, 0), high - own
    need = np.maximum(min_full - own_full, 0)  # full points each site still needs
    parts, idxs = [], []
    for mask in (full, ~full):
        cols = np.nonzero(mask)[0]
        sub = red[:, cols]
        k = min(hi, len(cols))
        if k <= 0:
            continue
        pi = np.argpartition(sub, k - 1, axis=1)[:, :k] if k < len(cols) else np.broadcast_to(np.arange(len(cols)), sub.shape)
        pv = np.take_along_axis(sub, pi, axis=1)
        o = np.argsort(pv, axis=1, kind="stable")
        parts.append(np.take_along_axis(pv, o, axis=1))
        idxs.append(cols[np.take_along_axis(pi, o, axis=1)])
        if mask is full:
            forced = np.arange(k)[None, :] < need[:, None]
    if not parts:
        v = np.where(need == 0 & (lo == 0), 0.0, np.inf) - (u[sites] if self_serve else 0.0)
        return v, ([np.array([s]) if self_serve else np.empty(0, dtype=np.int64) for s in sites] if members else None)
    vals = np.concatenate(parts, axis=1)
    ids = np.concatenate(idxs, axis=1)
    nf = parts[0].shape[1] if full.any() and hi > 0 and len(idxs) else 0
    is_forced = np.zeros(vals.shape, dtype=bool)
    if full.any() and nf:
        is_forced[:, :nf] = forced
    key = np.where(is_forced, -np.inf, vals)
    o = np.argsort(key, axis=1, kind="stable")
    vals, ids, is_forced = (np.take_along_axis(a, o, axis=1) for a in (vals, ids, is_forced))
    want = np.maximum(lo, need)
    takeable = (is_forced | (vals < 0)) & np.isfinite(vals)
    t = np.minimum(np.maximum(want, takeable.cumprod(axis=1).sum(axis=1)), hi)
    take = np.arange(vals.shape[1])[None, :] < t[:, None]
    with np.errstate(invalid="ignore"):
        v = np.where(take, vals, 0.0).sum(axis=1)
    ok = (t >= want) & (np.isfinite(np.where(take, vals, 0.0)).all(axis=1)) & (need <= full.sum()) & (t <= vals.shape[1])
    if self_serve:
        v = v - u[sites]
    v = np.where(ok, v, np.inf)
    out = None
    if members:
        out = [np.concatenate([[s] if self_serve else [], ids[r, : t[r]]]).astype(np.int64) for r, s in enumerate(sites)]
    return v, out


@dataclass
class DwResult:
    """The LP by column generation over clusters: ``lower`` the best Lagrangian value seen (a valid
    bound at every round), ``upper`` the master's optimum when it finished (the LP's value then,
    equal to ``lower`` within the tolerance; inf when it stopped at ``max_rounds``)."""

    lower: float
    upper: float
    rounds: int
    columns: int
    seconds: float

    @property
    def value(self) -> float:
        return self.lower


def dw_lp(inst: Instance, plan: tuple[NDArray[np.int64], NDArray[np.int64]], *, rules: bool = True,
          tol: float = 1e-6, max_rounds: int = 3000, chunk: int = 256, start_u: NDArray[np.float64] | None = None,
          per_round: int | None = None, box: float = 0.05, warm: int = 100) -> DwResult:
    """The LP of a unit-demand instance as its Lagrangian dual, solved exactly: a master LP over
    clusters (one column per cluster: each member once, ``p`` clusters), started from the plan's
    clusters, priced by :func:`cluster_prices`. The master's duals are kept in a box around the
    best multipliers so far (box-step stabilisation: the set-partitioning master is so degenerate
    that unboxed duals jump far from the optimum and the columns they price are useless); the
    box re-centres on every better Lagrangian value. Done when the master's duals price no
    negative column from inside the box: then its value is the LP's. The Lagrangian value at any
    multipliers is a valid bound, so ``lower`` is one at every round."""
    t0 = time.perf_counter()
    n, m, p = inst.n, inst.m, inst.p
    assert (inst.demand == 1).all(), "cluster columns need unit demands"
    full = inst.is_full
    low = forced_size(inst) if rules else (1 if inst.self_serve else 0)
    min_full = int(inst.min_full) if rules else 0
    sites_all = np.arange(m)
    h = _highs()
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("solver", "simplex")
    h.setOptionValue("simplex_strategy", 4)  # primal: new columns and costs leave the basis primal feasible
    h.setOptionValue("presolve", "off")  # presolve would discard the basis every round
    h.addRows(n, np.ones(n), np.ones(n), 0, np.zeros(n, dtype=np.int32), np.zeros(0, dtype=np.int32), np.zeros(0))
    h.addRow(float(p), float(p), 0, np.zeros(0, dtype=np.int32), np.zeros(0))
    # the box: s+_i (+1 in row i, cost c_i + delta) and s-_i (-1, cost -(c_i - delta)) keep each dual
    # within delta of the centre c
    h.addCols(2 * n, np.zeros(2 * n), np.zeros(2 * n), np.full(2 * n, INF), 2 * n,
              np.arange(2 * n, dtype=np.int32), np.tile(np.arange(n, dtype=np.int32), 2),
              np.concatenate([np.ones(n), -np.ones(n)]))
    box_cols = np.arange(2 * n, dtype=np.int32)
    seen: set[bytes] = set()
    n_cols = 0

    def add(cols: list[tuple[int, NDArray[np.int64]]]) -> int:
        nonlocal n_cols
        new = []
        for j, mem in cols:
            mem = np.sort(mem)
            key = mem.tobytes() + int(j).to_bytes(8, "little")
            if key not in seen:
                seen.add(key)
                new.append((j, mem))
        if not new:
            return 0
        costs = np.array([float(inst.cost(mem, np.full(len(mem), j)).sum()) for j, mem in new])
        idx = np.concatenate([np.concatenate([mem, [n]]) for _, mem in new]).astype(np.int32)
        lens = np.array([len(mem) + 1 for _, mem in new])
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int32)
        h.addCols(len(new), costs, np.zeros(len(new)), np.full(len(new), INF), len(idx), starts, idx, np.ones(len(idx)))
        n_cols += len(new)
        return len(new)

    table = inst.cost(np.arange(n)[None, :], sites_all[:, None])  # site x point

    def price(u: NDArray[np.float64]) -> tuple[NDArray[np.float64], list[NDArray[np.int64]], float]:
        vs, mems = [], []
        for a in range(0, m, chunk):
            js = sites_all[a:a + chunk]
            v, mem = cluster_prices(table[js], js, u, full, low, int(inst.max_size), min_full, inst.self_serve, True)
            vs.append(v)
            mems.extend(mem or [])
        v = np.concatenate(vs)
        return v, mems, float(u.sum() + np.sort(v)[:p].sum())

    sites, branch = plan
    add([(int(s), np.nonzero(branch == b)[0]) for b, s in enumerate(sites)])
    centre = np.asarray(start_u, dtype=np.float64).copy() if start_u is not None else \
        inst.cost(np.arange(n), np.asarray(sites)[np.asarray(branch)])
    v, mems, best = price(centre)
    add([(j, mems[j]) for j in np.argsort(v, kind="stable")[:2 * p] if np.isfinite(v[j])])
    # a short deflected subgradient search first: the box then starts near the optimum, and the
    # clusters it prices on the way seed the master
    u, last, mu = centre.copy(), np.zeros(n), 1.0
    upper_plan = float(inst.objective(np.asarray(sites), np.asarray(branch)))
    for _ in range(warm):
        order = np.argsort(v, kind="stable")[:p]
        g = np.ones(n)
        for j in order:
            g[mems[j]] -= 1.0
        d = g + 0.7 * last
        last = d
        norm = float(d @ d)
        if norm < 1e-12:
            break
        u = u + mu * max(0.5 * (upper_plan - best), 1e-9) / norm * d
        v, mems, lag = price(u)
        add([(int(j), mems[j]) for j in order])
        if lag > best:
            best, centre = lag, u.copy()
        else:
            mu *= 0.97
    delta = box * max(float(np.abs(centre).mean()), 1.0)
    keep = per_round or 2 * p
    upper, rounds = np.inf, 0

    def recentre() -> None:
        h.changeColsCost(2 * n, box_cols, np.concatenate([centre + delta, -(centre - delta)]))

    recentre()
    while rounds < max_rounds:
        rounds += 1
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError("the master LP is not optimal")
        value = float(h.getInfo().objective_function_value)
        rd = np.asarray(h.getSolution().row_dual)
        u, sigma = rd[:n], float(rd[n])
        v, mems, lag = price(u)
        if _VERBOSE and rounds % 20 == 1:
            print(f"  dw round {rounds}: master {value:.1f}, best {best:.1f}, {n_cols} columns, "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
        rc = v - sigma
        neg = np.nonzero(rc < -tol * max(1.0, abs(value)) / max(p, 1))[0]
        neg = neg[np.argsort(rc[neg], kind="stable")[:keep]]
        in_box = float(np.asarray(h.getSolution().col_value)[:2 * n].sum()) <= 1e-9
        if lag > best + 1e-9 * max(1.0, abs(best)):
            best, centre = lag, u.copy()
            recentre()
        added = add([(int(j), mems[j]) for j in neg])
        if not added:
            if in_box:  # no improving column and the box does not bind: the LP's optimum
                upper = value
                break
            delta *= 2.0  # the box binds though nothing prices out: widen it
            recentre()
    return DwResult(best, upper, rounds, n_cols, time.perf_counter() - t0)


if __name__ == "__main__":
    sys.exit(main())
