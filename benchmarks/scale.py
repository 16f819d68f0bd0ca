"""Scale: a national roster's districts on the local engine and on Ray, at 1, 2, ... workers.

    .venv/bin/python -m benchmarks.scale [--members 200000] [--seed 0] [--time-limit 1]
                                         [--engines local,ray] [--workers 1,2,4,...] [--no-kill] [--json]

Builds the synthetic national roster (:mod:`geoalloc.national`) and its solver problem once, then
forms the branches with every engine at every worker count (default: 1, 2, 4, ... up to the
machine's CPUs) and prints, per run:

- wall time of the districts' fan-out (roster preparation and output tables excluded; printed once);
- the ideal wall time ``max(largest unit, total unit time / workers)`` from that run's own unit
  times, the speed-up over the same engine's run on one worker, and efficiency = ideal / wall;
- overhead per task: ``(wall * workers - total unit time) / units``, the time a worker slot spent
  on anything but solving (start-up, shipping the unit, scheduling, idling at the end);
- peak memory: the driver process tree's resident set (driver, pool workers, Ray's processes),
  sampled from /proc every 0.2 s;
- whether the plan is the plan of the first run: the assignment's hash, and how many units have
  the same plan. A unit cut short by its time budget (``clock_cut``) may differ between runs; the
  others may not;
- unless ``--no-kill``: the same run again with one worker process killed once 30% of the
  undisturbed run's wall time has passed, and how much later it finished. The local pool loses every unit under way
  when one process dies (the pool is rebuilt and they run again); Ray re-runs only that task.

Then the time per unit against its size (from the first run) and the memory of single units
solved alone in a fresh process (the basis of the memory each Ray task declares).

The machine this was written on has 2 cores shared with other jobs: there the speed-up figures
are only indicative. The script needs nothing else to run unchanged on a many-core machine or
against a Ray cluster (``RAY_ADDRESS``), where the ideal line says what linear scaling would give.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from geoalloc.engines import get_engine, task_memory
from geoalloc.national import generate_national
from geoalloc.pipeline import build_problem
from geoalloc.rules import Policy
from geoalloc.solver.form import build_units, form_branches, unit_budget
from geoalloc.solver.problem import Problem, Solution

KILL_AT = 0.3  # a worker is killed once this share of the undisturbed run's wall time has passed


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(_children(p))
    return seen


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class MemorySampler:
    """Peak resident memory of this process and all its descendants (Linux /proc)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(os.getpid())))
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _solver_workers(engine: str) -> list[int]:
    """Processes under this driver that solve units: pool children, or Ray's task workers."""
    me = os.getpid()
    if engine == "local":
        return [p.pid for p in mp.active_children() if p.pid is not None]
    return [p for p in _tree(me) if p != me and "ray::" in _cmdline(p) and "IDLE" not in _cmdline(p)]


def problem_for(members: int, seed: int, policy: Policy) -> tuple[Problem, float]:
    t0 = time.perf_counter()
    roster = generate_national(members, seed=seed)
    active = roster[roster["status"] == "active"].copy()
    active["_full_count"] = active["weight"] * active["full_member"]
    problem = build_problem(active, policy)[0]
    return problem, time.perf_counter() - t0


def plan_hash(sol: Solution) -> str:
    return hashlib.sha256(np.ascontiguousarray(sol.branch_of).tobytes()).hexdigest()[:16]


def run_once(problem: Problem, policy: Policy, engine_name: str, workers: int, kill_after: float | None,
             progress: bool = False) -> dict[str, Any]:
    """One fan-out; with ``kill_after`` (seconds), one solving worker process is killed then;
    ``progress``: the share of units done, with the time and memory so far, on stderr (how far a
    run got that the machine cannot finish)."""
    engine = get_engine(engine_name, workers)
    shown = [0.0]
    killed: list[int] = []
    t_kill = [0.0]

    def kill() -> None:
        busy = _solver_workers(engine_name)
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            killed.append(busy[0])
            t_kill[0] = time.perf_counter()

    timer = threading.Timer(kill_after, kill) if kill_after is not None else None
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        if timer is not None:
            timer.start()
        def report(done: float) -> None:
            if progress and done >= shown[0] + 0.05:
                shown[0] = done
                print(f"  {engine_name} x{workers}: {done:.0%} of the units after {time.perf_counter() - t0:.0f} s, "
                      f"memory {mem.peak / 2**20:.0f} MB so far", file=sys.stderr, flush=True)

        sol = form_branches(problem, policy, engine=engine, progress=report)
        wall = time.perf_counter() - t0
        end = time.perf_counter()
    if timer is not None:
        timer.cancel()
    units = sol.stats["units"]
    secs = np.array([float(u["seconds"]) for u in units])
    ideal = max(float(secs.max()), float(secs.sum()) / workers)
    # what --time-limit promises: the searched units' budgets over the workers (one-branch units are exact)
    budget = sum(unit_budget(int(u["n"]), policy) for u in units if "work" in u) / workers
    run = sol.stats["engine"]
    return {
        "engine": engine_name, "workers": workers, "killed": bool(killed), "wall_s": round(wall, 2),
        "killed_at_s": round(t_kill[0] - t0, 2) if killed else None,
        "after_kill_s": round(end - t_kill[0], 2) if killed else None,
        "budget_s": round(budget, 2), "ideal_s": round(ideal, 2), "efficiency": round(ideal / wall, 3), "unit_total_s": round(float(secs.sum()), 2),
        "largest_unit_s": round(float(secs.max()), 2), "units": len(units),
        "overhead_per_task_ms": round(1000 * (wall * workers - float(secs.sum())) / len(units), 1),
        "peak_memory_mb": round(mem.peak / 2**20), "clock_cut": run.get("clock_cut", 0), "retried": run["retried"],
        "hash": plan_hash(sol), "_solution": sol,
    }


def same_units(problem: Problem, policy: Policy, a: Solution, b: Solution) -> tuple[int, int, int, int]:
    """(units with the same plan, units, units cut by the clock in either run, units that differ
    although neither run cut them: the engine's fault, and expected to be 0)."""
    units = build_units(problem, policy)
    cut = {u["name"] for s in (a, b) for u in s.stats["units"] if u.get("clock_cut")}
    same = [bool(np.array_equal(a.branch_of[u.members], b.branch_of[u.members])) for u in units]
    wrong = sum(1 for u, ok in zip(units, same) if not ok and u.name not in cut)
    return sum(same), len(units), len(cut), wrong


def _unit_memory(args: tuple[Any, float]) -> tuple[int, int, float]:
    """Resident memory a unit's solve adds in a fresh process (peak minus the imported baseline)."""
    import resource

    from geoalloc.solver.form import solve_unit

    task, _ = args
    base = _rss(os.getpid())
    t0 = time.perf_counter()
    solve_unit(task)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return task.inst.n, max(0, peak - base), time.perf_counter() - t0


def unit_memory_table(problem: Problem, policy: Policy, sizes: tuple[int, ...] = (100, 500, 1000, 2000, 4000)) -> list[dict[str, Any]]:
    from geoalloc.solver.form import _instance, branch_counts, unit_task

    units = build_units(problem, policy)
    counts = branch_counts(problem, units, policy)
    n = np.array([len(u.members) for u in units])
    rows = []
    ctx = mp.get_context("spawn")
    for want in sizes:
        i = int(np.argmin(np.abs(n - want)))
        if rows and rows[-1]["points"] == int(n[i]):
            continue
        inst = _instance(problem, units[i], counts[i], policy)[0]
        task = unit_task(units[i].name, inst, policy)
        with ctx.Pool(1) as pool:
            points, extra, secs = pool.apply(_unit_memory, ((task, 0.0),))
        rows.append({"unit": units[i].name, "points": points, "solve_mb": round(extra / 2**20, 1),
                     "declared_mb": round(task_memory(points) / 2**20), "seconds": round(secs, 2)})
    return rows


def size_table(sol: Solution) -> list[dict[str, Any]]:
    units = sol.stats["units"]
    n = np.array([int(u["n"]) for u in units])
    s = np.array([float(u["seconds"]) for u in units])
    edges = [0, 25, 50, 100, 200, 400, 800, 1600, 3200, 10**9]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        k = (n >= lo) & (n < hi)
        if k.any():
            out.append({"points": f"{lo}-{hi - 1}" if hi < 10**9 else f">={lo}", "units": int(k.sum()),
                        "mean_s": round(float(s[k].mean()), 3), "max_s": round(float(s[k].max()), 3),
                        "ms_per_point": round(1000 * float(s[k].sum() / n[k].sum()), 2)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=1.0, help="the policy's time limit (a unit's ceiling)")
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--workers", default=None, help="comma-separated worker counts (default 1, 2, 4, ... CPUs)")
    ap.add_argument("--no-kill", action="store_true", help="skip the runs with a worker killed")
    ap.add_argument("--no-memory", action="store_true", help="skip the single-unit memory table")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--progress", action="store_true", help="print the share of units done as a run goes (stderr)")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    workers = [int(w) for w in args.workers.split(",")] if args.workers else sorted({1, *[2**k for k in range(1, 16) if 2**k < cpus], cpus})
    policy = Policy(time_limit=args.time_limit, seed=args.seed)
    problem, prep = problem_for(args.members, args.seed, policy)
    print(f"national roster: {args.members} members, {problem.n} points to allocate, "
          f"{len(problem.region_names)} districts; roster and problem built in {prep:.1f} s; "
          f"time limit {args.time_limit} s; {cpus} CPUs", flush=True)
    rows: list[dict[str, Any]] = []
    first: dict[str, Any] | None = None
    one_worker: dict[str, float] = {}
    for engine in args.engines.split(","):
        for w in workers:
            plain = 0.0
            for kill in ([False] if args.no_kill or (w < 2 and engine == "local") else [False, True]):
                r = run_once(problem, policy, engine, w, KILL_AT * plain if kill else None, args.progress)
                sol = r.pop("_solution")
                if first is None:
                    first = {"sol": sol, "hash": r["hash"]}
                same, total, cut, wrong = same_units(problem, policy, first["sol"], sol)
                r["same_plan"] = r["hash"] == first["hash"]
                r["same_units"] = f"{same}/{total} ({cut} cut by the clock in either run; {wrong} uncut units differ)"
                if kill:
                    r["kill_cost_s"] = round(r["wall_s"] - plain, 2)
                else:
                    plain = r["wall_s"]
                    if w == 1:
                        one_worker[engine] = plain
                    r["speed_up"] = round(one_worker[engine] / plain, 2) if engine in one_worker else None
                rows.append(r)
                print(json.dumps(r, ensure_ascii=False) if args.json else _line(r), flush=True)
            if engine == "ray":
                import ray

                ray.shutdown()  # the next worker count starts a local instance of its own size
    assert first is not None
    import resource

    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(f"largest resident set of the driver or one child process: {rss / 2**10:.0f} MB", flush=True)
    print("\ntime per unit against its size (first run):")
    for t in size_table(first["sol"]):
        print("  " + ("  ".join(f"{k}={v}" for k, v in t.items())))
    if not args.no_memory:
        print("\nmemory of one unit solved alone in a fresh process (what a Ray task declares beside it):")
        for t in unit_memory_table(problem, policy):
            print("  " + ("  ".join(f"{k}={v}" for k, v in t.items())), flush=True)


def _line(r: dict[str, Any]) -> str:
    kill = (f" KILLED one worker at {r['killed_at_s']} s: finished {r['after_kill_s']} s later, "
            f"{r['kill_cost_s']:+} s against the undisturbed run;" if r["killed"] else "")
    return (f"{r['engine']:5} workers={r['workers']:<3} wall={r['wall_s']:8.2f} s  budgets/workers={r['budget_s']:8.2f} s  "
            f"ideal={r['ideal_s']:8.2f} s  "
            f"efficiency={r['efficiency']:.2f}  speed-up={r.get('speed_up')}  overhead/task={r['overhead_per_task_ms']} ms  "
            f"units={r['units']} largest={r['largest_unit_s']} s total={r['unit_total_s']} s  peak={r['peak_memory_mb']} MB  "
            f"retried={r['retried']}{kill}  same plan={r['same_plan']} units same={r['same_units']}")


if __name__ == "__main__":
    main()
