"""geoalloc side by side with its peers on the same CPMP instances, in the same run.

    python -m benchmarks.peers FILE [FILE ...] [--time-limit 10] [--spopt-limit 300]
                               [--spopt-max-n 100] [--no-spopt] [--roster [--roster-policy default|fewest|both] [--districts]]

Peers:
- k-means-constrained (cluster sizes bounded by counts, not demand): for weighted instances
  its size cap is scaled to Q * n / total demand and the demand capacity is checked afterwards;
  each cluster is scored with its best member as the median (same distance convention);
- spopt's capacitated p-median (PuLP + CBC) with a ``--spopt-limit`` seconds cap, on instances
  up to ``--spopt-max-n`` points (it builds an n x n model). Costs are divided by demand so
  its demand-weighted objective equals the unweighted CPMP objective.
A peer's plan counts as feasible only if it passes the same independent check as geoalloc's.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
from numpy.typing import NDArray

from benchmarks.cpmp import BEST_KNOWN, CpmpInstance, check, distances, read_instance, run, shenzhen_problem


def best_member_medians(inst: CpmpInstance, labels: NDArray[np.int64]) -> NDArray[np.int64]:
    """Assignment (median point per point) using each cluster's best member as its median."""
    out = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        mem = np.nonzero(labels == c)[0]
        tot = np.zeros(len(mem))
        for lo in range(0, len(mem), 256):
            cj = mem[lo : lo + 256]
            tot[lo : lo + 256] = distances(inst.xy, np.repeat(mem, len(cj)), np.tile(cj, len(mem)), inst.dist).reshape(len(mem), len(cj)).sum(axis=0)
        out[mem] = mem[int(np.argmin(tot))]
    return out


def run_kmeans_constrained(inst: CpmpInstance, seed: int = 0) -> dict[str, object]:
    from k_means_constrained import KMeansConstrained

    n = len(inst.xy)
    unit = bool((inst.demand == 1).all())
    size_max = inst.capacity if unit else max(1, int(inst.capacity * n / inst.demand.sum()))
    size_max = max(size_max, math.ceil(n / inst.p))
    t0 = time.perf_counter()
    try:
        km = KMeansConstrained(n_clusters=inst.p, size_max=size_max, random_state=seed, n_init=3)
        labels = km.fit_predict(inst.xy)
    except Exception as err:  # noqa: BLE001 - a peer failing is a result, not a crash
        return {"feasible": False, "objective": math.nan, "seconds": time.perf_counter() - t0, "error": str(err)[:80]}
    assignment = best_member_medians(inst, np.asarray(labels, dtype=np.int64))
    seconds = time.perf_counter() - t0
    feasible, obj = check(inst, np.unique(assignment), assignment)
    return {"feasible": feasible, "objective": obj, "seconds": seconds}


def run_spopt(inst: CpmpInstance, limit: float) -> dict[str, object]:
    import pulp
    from spopt.locate import PMedian

    n = len(inst.xy)
    idx = np.arange(n)
    d = distances(inst.xy, np.repeat(idx, n), np.tile(idx, n), inst.dist).reshape(n, n)
    weights = inst.demand.astype(float)
    t0 = time.perf_counter()
    try:
        model = PMedian.from_cost_matrix(d / weights[:, None], weights, inst.p,
                                         facility_capacities=np.full(n, float(inst.capacity)))
        model = model.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=limit))
        status = pulp.LpStatus[model.problem.status]
        assignment = np.full(n, -1, dtype=np.int64)
        for j, clients in enumerate(model.fac2cli):
            for i in clients:
                assignment[i] = j
    except Exception as err:  # noqa: BLE001
        return {"feasible": False, "objective": math.nan, "seconds": time.perf_counter() - t0, "error": str(err)[:80]}
    seconds = time.perf_counter() - t0
    if (assignment < 0).any():
        return {"feasible": False, "objective": math.nan, "seconds": seconds, "status": status}
    medians = np.unique(assignment)
    load_ok = bool((np.bincount(assignment, weights=inst.demand, minlength=n) <= inst.capacity).all())
    obj = float(distances(inst.xy, idx, assignment, inst.dist).sum())
    finished = seconds < limit - 1 and status == "Optimal"
    return {"feasible": load_ok and len(medians) == inst.p, "objective": obj, "seconds": seconds,
            "status": status if finished else f"{status} (time cap)"}


def _fmt(res: dict[str, object] | None) -> str:
    if res is None:
        return f"{'-':>12} {'-':>8}"
    obj = res["objective"]
    mark = "" if res["feasible"] else " (infeasible)"
    o = f"{obj:.2f}" if isinstance(obj, float) and math.isfinite(obj) else "n/a"
    return f"{o + mark:>12} {res['seconds']:>8.2f}"  # type: ignore[str-format]


def kmeans_by_region(problem, counts: dict[int, int], seed: int) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """k-means-constrained's total distance in each region with ``counts[region]`` clusters
    (sizes 3..50, each cluster scored with its best member as the meeting point)."""
    from k_means_constrained import KMeansConstrained

    out: dict[int, float] = {}
    for r in range(len(problem.region_names)):
        mem = np.nonzero(problem.region == r)[0]
        k = int(counts.get(r, 0))
        if k == 0 or len(mem) == 0:
            continue
        labels = KMeansConstrained(n_clusters=k, size_min=min(3, len(mem) // k), size_max=50,
                                   random_state=seed, n_init=3).fit_predict(problem.xy[mem]) if k > 1 else np.zeros(len(mem), dtype=int)
        sub = CpmpInstance("d", problem.xy[mem], np.ones(len(mem), dtype=np.int64), 50, k, "euclid")
        a = best_member_medians(sub, np.asarray(labels, dtype=np.int64))
        out[r] = float(distances(sub.xy, np.arange(len(mem)), a, "euclid").sum())
    return out


def _roster_line(rule: str, time_limit: float, seed: int, districts: bool = False) -> bool:
    """The sample roster (true points, 3..50) under a branch-count rule, beside k-means-constrained
    with the same number of branches in each district (its clusters scored with their best member
    as the meeting point). True when geoalloc's plan is the shorter. ``districts``: then a table
    of each district's plan, bound and gap beside k-means-constrained's distance there."""
    from geoalloc.rules import Policy
    from geoalloc.solver import form_branches

    problem = shenzhen_problem()
    pol = Policy(min_size=3, max_size=50, time_limit=time_limit, seed=seed,
                 n_branches="fewest" if rule == "fewest" else None)
    t0 = time.perf_counter()
    sol = form_branches(problem, pol)
    gs = time.perf_counter() - t0
    t0 = time.perf_counter()
    km = kmeans_by_region(problem, {r: int((sol.site_region == r).sum()) for r in range(len(problem.region_names))}, seed)
    total = sum(km.values())
    ks = time.perf_counter() - t0
    verdict = "beats k-means-c" if sol.objective < total else "LOSES to k-means-c"
    print(f"{'shenzhen-' + rule:<12} {problem.n:>6} {sol.n_branches:>4} {'-':>11} | {sol.objective:>12.0f} {gs:>8.2f} "
          f"{sol.lower_bound:>11.0f} | {total:>12.0f} {ks:>8.2f} | {'-':>12} {'-':>8} | {verdict}: "
          f"x{sol.objective / total:.4f} of its distance (bound x{sol.lower_bound / total:.4f}: no plan can do better), "
          f"gap {sol.gap:.2%}, x{gs / ks:.2f} of its time (k-means-c ignores the full-member rule; joint-district "
          f"notes: {len(sol.notes)})", flush=True)
    if districts:
        _district_table(problem, sol, km)
    return sol.objective < total


def _district_table(problem, sol, km: dict[int, float]) -> None:  # type: ignore[no-untyped-def]
    """Each unit's members, branches, plan, bound and gap (as the report has them), and
    k-means-constrained's distance where the unit is one district."""
    index = {name: r for r, name in enumerate(problem.region_names)}
    head = (f"  {'district':<10} {'members':>7} {'branches':>8} {'plan':>10} {'bound':>10} {'gap':>7} "
            f"{'k-means-c':>10} {'x k-means':>9}")
    print(head)
    for u in sol.stats["units"]:
        obj, lb = float(u["objective"]), min(float(u["lower_bound"]), float(u["objective"]))
        k = km.get(index[u["name"]]) if u["name"] in index else None
        ks = f"{k:>10.0f} {obj / k:>9.4f}" if k else f"{'-':>10} {'-':>9}"
        gap = (obj - lb) / obj if obj > 0 else 0.0
        print(f"  {u['name']:<10} {u['n']:>7} {u['branches']:>8} {obj:>10.0f} {lb:>10.0f} {gap:>7.2%} {ks}")
    print(f"  {'total':<10} {problem.n:>7} {sol.n_branches:>8} {sol.objective:>10.0f} {sol.lower_bound:>10.0f} "
          f"{sol.gap:>7.2%} {sum(km.values()):>10.0f} {sol.objective / sum(km.values()):>9.4f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--time-limit", type=float, default=10.0, help="geoalloc time limit per instance")
    ap.add_argument("--spopt-limit", type=float, default=300.0)
    ap.add_argument("--spopt-max-n", type=int, default=100)
    ap.add_argument("--no-spopt", action="store_true")
    ap.add_argument("--roster", action="store_true", help="also the Shenzhen roster (geoalloc vs k-means-constrained)")
    ap.add_argument("--roster-policy", choices=["default", "fewest", "both"], default="both",
                    help="branch-count rule for the roster: the default (mean 80%% of max) or the fewest allowed")
    ap.add_argument("--districts", action="store_true",
                    help="with --roster: a table per district (members, branches, plan, bound, gap, k-means-c)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    head = (f"{'instance':<12} {'n':>6} {'p':>4} {'best_known':>11} | {'geoalloc':>12} {'s':>8} {'bound':>11} | "
            f"{'k-means-c':>12} {'s':>8} | {'spopt+CBC':>12} {'s':>8} | verdict")
    print(head)
    print("-" * len(head))
    ok_all = True
    for f in args.files:
        inst = read_instance(f)
        g = run(inst, args.time_limit, args.seed)
        km = run_kmeans_constrained(inst, args.seed)
        sp = None
        if not args.no_spopt and len(inst.xy) <= args.spopt_max_n:
            sp = run_spopt(inst, args.spopt_limit)
        verdict = []
        if km["feasible"]:
            go, ko = float(g["objective"]), float(km["objective"])  # type: ignore[arg-type]
            better = go <= ko + 1e-9
            verdict.append("beats k-means-c" if go < ko - 1e-9 else ("ties k-means-c" if better else "LOSES to k-means-c"))
            ok_all &= better
        if sp is not None and sp["feasible"] and "time cap" not in str(sp.get("status", "")):
            faster = g["seconds"] < sp["seconds"]  # type: ignore[operator]
            verdict.append("faster than spopt" if faster else "SLOWER than spopt")
            ok_all &= faster
        best = BEST_KNOWN.get(inst.name)
        gres = {"objective": g["objective"], "seconds": g["seconds"], "feasible": g["feasible"]}
        print(f"{inst.name:<12} {len(inst.xy):>6} {inst.p:>4} {best if best else '-':>11} | {_fmt(gres)} "
              f"{g['lower_bound']:>11} | {_fmt(km)} | {_fmt(sp)} | {', '.join(verdict)}", flush=True)
    for rule in (["default", "fewest"] if args.roster_policy == "both" else [args.roster_policy]) if args.roster else []:
        ok_all &= _roster_line(rule, args.time_limit, args.seed, args.districts)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
