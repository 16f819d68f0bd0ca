"""Capacitated p-median benchmark runner (contract in ARCHITECTURE.md).

    python -m benchmarks.cpmp FILE [FILE ...] --time-limit S [--json] [--dist auto|euclid|floor]
    python -m benchmarks.cpmp --roster [--time-limit 5]     # the bundled Shenzhen roster, 3..50
                                                            # (true points, and geocoded as the product sees it)

Prints one line (or one JSON object) per file: instance, n, p, objective, lower_bound,
gap_to_bound, seconds, feasible, plus best_known and gap_to_best where a value is published.
``--json`` also carries "medians" and "assignment" (0-based point indices). Feasibility and
the objective are re-checked here from the raw instance, independently of the solver.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

# published values (../shared/benchmarks/cpmp/README.md); * = proven optimal
BEST_KNOWN: dict[str, float] = {
    **{f"cpmp{i:02d}": v for i, v in enumerate(
        [713, 740, 751, 651, 664, 778, 787, 820, 715, 829, 1006, 966, 1026, 982, 1091, 954, 1034, 1043, 1031, 1005],
        start=1)},
    "SJC1": 17288.99, "SJC2": 33270.94, "SJC3a": 45335.16, "SJC3b": 40635.90, "SJC4a": 61925.51,
    "SJC4b": 52458.02,
    "lin318_005": 180281.20, "lin318_015": 88901.56, "lin318_040": 47988.38, "lin318_070": 32198.64,
    "lin318_100": 22942.69,
    "ali535_005": 9956.77, "ali535_025": 3695.15, "ali535_050": 2460.93, "ali535_100": 1437.62,
    "ali535_150": 1032.28,
    # large/ (best known, not proven except u724_030)
    "p3038_700": 109670.52, "p3038_800": 100060.05, "p3038_900": 92309.52, "p3038_1000": 85854.05,
    "u724_010": 181782.96, "u724_030": 95034.01, "u724_125": 38976.76, "u724_200": 28079.97,
    "rl1304_010": 2146252.17, "rl1304_050": 802283.41, "rl1304_100": 498090.74, "rl1304_200": 276977.60,
    "pr2392_020": 2231212.52, "pr2392_075": 1091982.77, "pr2392_300": 458145.29, "pr2392_500": 316042.97,
    "fnl4461_0020": 1283536.73, "fnl4461_0100": 548909.01, "fnl4461_0500": 224662.49, "fnl4461_1000": 145862.38,
}


@dataclass
class CpmpInstance:
    """One instance as published: points, demands, one capacity, p, distance convention."""

    name: str
    xy: NDArray[np.float64]
    demand: NDArray[np.int64]
    capacity: int
    p: int
    dist: str


def _rows(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [line.split() for line in text.splitlines() if line.strip()]


def read_instance(path: str | Path, dist: str = "auto") -> CpmpInstance:
    """Read either layout: "n p" then n rows "x y capacity demand" (the shared files, spaces or
    tabs, CRLF), or the original OR-Library pmedcap1 layout ("problem best", "n p capacity",
    then n rows "id x y demand")."""
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise ValueError(f"{path}: empty file")
    if len(rows[0]) == 2 and len(rows) > 1 and len(rows[1]) == 3:  # OR-Library layout
        n, p, cap = int(rows[1][0]), int(rows[1][1]), int(float(rows[1][2]))
        body = rows[2 : 2 + n]
        cols = (1, 2, None, 3)
    elif len(rows[0]) >= 2:
        n, p = int(float(rows[0][0])), int(float(rows[0][1]))
        body = rows[1 : 1 + n]
        cols = (0, 1, 2, 3)
        cap = None
    else:
        raise ValueError(f"{path}: line 1 must hold 'n p'")
    if len(body) != n:
        raise ValueError(f"{path}: expected {n} point rows, found {len(body)}")
    xy = np.empty((n, 2))
    demand = np.empty(n, dtype=np.int64)
    caps = set()
    for k, r in enumerate(body):
        try:
            xy[k] = float(r[cols[0]]), float(r[cols[1]])
            demand[k] = int(round(float(r[cols[3]])))
            if cols[2] is not None:
                caps.add(int(round(float(r[cols[2]]))))
        except (IndexError, ValueError) as err:
            raise ValueError(f"{path}: row {k + 2}: expected 'x y capacity demand', got {' '.join(r)!r}") from err
    if cap is None:
        if len(caps) != 1:
            raise ValueError(f"{path}: capacities differ between rows: {sorted(caps)[:5]}")
        cap = caps.pop()
    if dist == "auto":
        dist = "floor" if ("pmedcap" in str(path) or path.stem.lower().startswith("cpmp")) else "euclid"
    return CpmpInstance(path.stem, xy, demand, cap, p, dist)


def distances(xy: NDArray[np.float64], a: NDArray[np.int64], b: NDArray[np.int64], dist: str) -> NDArray[np.float64]:
    d = np.hypot(*(xy[a] - xy[b]).T)
    return np.floor(d) if dist == "floor" else d


def check(inst: CpmpInstance, medians: NDArray[np.int64], assignment: NDArray[np.int64]) -> tuple[bool, float]:
    """Independent check: p distinct medians serving themselves, capacity held; the objective."""
    n = len(inst.xy)
    ok = len(set(medians.tolist())) == inst.p and len(assignment) == n
    ok = ok and bool(np.isin(assignment, medians).all()) and bool((assignment[medians] == medians).all())
    if ok:
        load = np.bincount(assignment, weights=inst.demand, minlength=n)
        ok = bool((load <= inst.capacity).all())
    obj = float(distances(inst.xy, np.arange(n), assignment, inst.dist).sum()) if len(assignment) == n else math.nan
    return ok, obj


def run(inst: CpmpInstance, time_limit: float, seed: int = 0) -> dict[str, object]:
    """Solve with geoalloc and return the contract's fields."""
    from geoalloc.solver import solve_cpmp

    t0 = time.perf_counter()
    sol = solve_cpmp(inst.xy, inst.demand, inst.capacity, inst.p, dist=inst.dist,  # type: ignore[arg-type]
                     time_limit=time_limit, seed=seed)
    seconds = time.perf_counter() - t0
    medians = sol.site_member.astype(np.int64)
    assignment = medians[sol.branch_of]
    feasible, obj = check(inst, medians, assignment)
    out: dict[str, object] = {
        "instance": inst.name, "n": len(inst.xy), "p": inst.p, "objective": round(obj, 4),
        "lower_bound": round(sol.lower_bound, 4),
        "gap_to_bound": round((obj - sol.lower_bound) / obj, 6) if obj > 0 else 0.0,
        "seconds": round(seconds, 3), "feasible": feasible,
    }
    best = BEST_KNOWN.get(inst.name)
    if best is not None:
        out["best_known"] = best
        out["gap_to_best"] = round((obj - best) / best, 6)
    out["medians"] = sorted(medians.tolist())
    out["assignment"] = assignment.tolist()
    return out


def run_roster(time_limit: float, seed: int = 0, *, geocoded: bool = False) -> dict[str, object]:
    """The bundled 7,000-member Shenzhen roster (synthetic, deterministic) with limits 3..50.

    ``geocoded=False``: members at their true generated points. ``geocoded=True``: the product
    path, ``data/sample/members.csv`` read and geocoded as ``geoalloc demo`` does (two thirds of
    the members placed at subdistrict seeds with jitter, which makes many near-coincident points).
    """
    from geoalloc.rules import Policy
    from geoalloc.solver import form_branches

    problem = sample_problem() if geocoded else shenzhen_problem()
    t0 = time.perf_counter()
    sol = form_branches(problem, Policy(min_size=3, max_size=50, time_limit=time_limit, seed=seed))
    seconds = time.perf_counter() - t0
    name = "shenzhen-geocoded" if geocoded else "shenzhen-7000"
    return {"instance": name, "n": problem.n, "p": sol.n_branches, "objective": round(sol.objective, 1),
            "lower_bound": round(sol.lower_bound, 1), "gap_to_bound": round(sol.gap, 6),
            "seconds": round(seconds, 3), "feasible": True, "notes": sol.notes}


def shenzhen_problem():  # type: ignore[no-untyped-def]
    """Active members of the bundled sample roster (all rows with coordinates), one region per district."""
    from geoalloc.projection import to_metres
    from geoalloc.samples import generate_roster
    from geoalloc.solver import Problem

    roster = generate_roster(7000, coordinate_share=1.0)
    roster = roster[roster["status"] == "active"]
    names = sorted(roster["district_zh"].unique())
    region = roster["district_zh"].map({n: i for i, n in enumerate(names)}).to_numpy()
    xy = to_metres(roster["lon"].to_numpy(float), roster["lat"].to_numpy(float))
    full = roster["full_member"].astype(int).to_numpy()
    return Problem(xy=xy, demand=np.ones(len(roster), dtype=np.int64), full=full, region=region, region_names=names)


def sample_problem():  # type: ignore[no-untyped-def]
    """The committed sample roster as the product sees it: validated, geocoded, active members only."""
    from geoalloc.rules import Policy
    from geoalloc.paths import sample_roster_path
    from geoalloc.pipeline import build_problem, place_members
    from geoalloc.roster import read_roster

    placed = place_members(read_roster(sample_roster_path()).members)
    active = placed[(placed["status"] == "active") & placed["lon"].notna() & (placed["district_zh"] != "")].copy()
    active["_full_count"] = active["weight"] * active["full_member"]
    problem, _ = build_problem(active, Policy())
    return problem


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cpmp", description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="instance files")
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--json", action="store_true", help="one JSON object per line, with medians and assignment")
    ap.add_argument("--dist", choices=["auto", "euclid", "floor"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--roster", action="store_true", help="also run the bundled Shenzhen roster (3..50)")
    args = ap.parse_args(argv)
    if not args.files and not args.roster:
        ap.error("give instance files or --roster")
    results = []
    failed = False
    for f in args.files:
        try:
            inst = read_instance(f, args.dist)
        except (OSError, ValueError) as err:
            print(f"{f}: cannot read the instance: {err}", file=sys.stderr)
            failed = True
            continue
        res = run(inst, args.time_limit, args.seed)
        results.append(res)
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            extra = f"  best_known={res['best_known']} gap_to_best={100 * res['gap_to_best']:.3f}%" if "best_known" in res else ""  # type: ignore[operator]
            print(f"{res['instance']:<12} n={res['n']:<6} p={res['p']:<4} objective={res['objective']:<12} "
                  f"lower_bound={res['lower_bound']:<12} gap_to_bound={100 * res['gap_to_bound']:.3f}%  "  # type: ignore[operator]
                  f"seconds={res['seconds']:<8} feasible={res['feasible']}{extra}", flush=True)
    for geocoded in ((False, True) if args.roster else ()):
        res = run_roster(args.time_limit, args.seed, geocoded=geocoded)
        results.append(res)
        if args.json:
            print(json.dumps(res, ensure_ascii=False), flush=True)
        else:
            print(f"{res['instance']:<12} n={res['n']:<6} p={res['p']:<4} objective={res['objective']:<12} "
                  f"lower_bound={res['lower_bound']:<12} gap_to_bound={100 * res['gap_to_bound']:.3f}%  "  # type: ignore[operator]
                  f"seconds={res['seconds']:<8} feasible={res['feasible']}", flush=True)
    return 0 if all(r["feasible"] for r in results) and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
