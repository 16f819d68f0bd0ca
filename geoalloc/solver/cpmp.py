"""The textbook capacitated p-median, for the public benchmarks (``benchmarks/cpmp.py``).

No minimum size, no full-member rule; medians are points and serve themselves; the objective
is the plain sum of point-to-median distances (demand only uses capacity). The portfolio is always
two searches with different seeds in two processes (``_portfolio``), whatever the number of cores,
so a result does not depend on the machine's core count; the product's ``form_branches`` keeps
every core busy with districts instead.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from geoalloc.solver.engine import InstanceResult, SearchConfig, solve_instance
from geoalloc.solver.lns import LnsConfig
from geoalloc.solver.instance import Instance
from geoalloc.solver.problem import Conflict, InfeasibleError, Solution
from geoalloc.solver.search import POLISH_MAX_N, WHOLE_MIP_MAX_ARCS
from geoalloc.solver.textbook import applies

# The measurements behind these settings are in benchmarks/README.md ("Benchmark form: settings").
RESTART_PATIENCE: int | None = None  # kicks without improvement before the search stops (None: run on)
POLISH_SHARE = 0.3  # share of the time limit for the whole-instance MIP polish ...
POLISH_MAX_POINTS = 150  # ... on instances up to this many points (exact MIP when n * n <= 2500)
LIMIT_MARGIN = 0.97  # share of the time limit the search and bound aim for (their last steps run over)
SWAPS = True  # ranked swap moves in the iterated local search (engine.SearchConfig)
REASSIGN_MIP = False  # the exact MIP re-assignment between pair passes (slow for what it finds here)
RECOMBINE = True  # set-partitioning recombination of the clusters seen (geoalloc.solver.pool)
ACCEPT_WORSE = 0.002  # kicks may start from plans this share above the best (engine.SearchConfig)
# (when, share): MIPs over the arcs of the pool's clusters (geoalloc.solver.arcmip), on instances of
# ARC_MIP_MIN_N..ARC_MIP_MAX_N points: below, the whole-instance MIP polish and the early proof do
# that job; above, HiGHS finds no plan in the time
ARC_MIPS: tuple[tuple[float, float], ...] = ((0.6, 0.3),)
ARC_MIP_MIN_N = 151
ARC_MIP_MAX_N = 450
ARC_MIP_SECONDS = 3.0  # ... and at most this long (it finds its plan in seconds or not at all)
# descents between fresh k-means starts: every 20th on up to FRESH_MAX_N points (their variety
# feeds the pool), every 60th above, where a fresh start and its full descent cost a second
FRESH_EVERY = (20, 60)
FRESH_MAX_N = 450
# two searches with different seeds in two processes (see _portfolio), on instances too large to be
# solved whole as one MIP (n * n > 2,500: a second process only delays that proof) and of at most
# PORTFOLIO_MAX_N points (beyond, the two searches slow each other down)
PORTFOLIO = True
PORTFOLIO_MAX_N = 5000
# share of the search time for the large-neighbourhood search (geoalloc.solver.lns), on unit-demand
# instances of at least LNS_MIN_N points only: with weighted demands its sub-MIPs are bin packing,
# slow in HiGHS, and the kicks do better with that time
LNS_SHARE = 0.5
LNS_MIN_N = 600
LNS_UNIT_ONLY = True
LNS = LnsConfig()
# the compiled matheuristic (geoalloc.solver.globalphase) instead of the starts where it applies
GLOBAL_PHASE = True
GLOBAL_SHARE = 1.0  # all of the search time (handing part of it to the starts and kicks did no better)
GREEDY_SEEDS = False  # plain k-means++ starts: more varied for the pool (greedy: SJC4a 0.39% -> 0.95% over 4 runs)
BOUND_SHARE_GLOBAL = 0.05  # time kept for the bound there (the Lagrangian bound took 0.6 s on p3038_700)
BOUND_SHARE_POLISHED = 0.05  # time kept for the bound when the polish runs (it needs ~0.1-0.3 s there)


def _forkable() -> bool:
    return "fork" in mp.get_all_start_methods()


def _second_search(inst: Instance, budget: float, seed: int, kwargs: dict[str, Any], conn: Connection) -> None:
    try:
        conn.send(solve_instance(inst, budget, seed, **kwargs))
    finally:
        conn.close()


def _portfolio(inst: Instance, budget: float, seed: int, kwargs: dict[str, Any]) -> InstanceResult | None:
    """Two independent searches at once, in two processes, the better plan and the higher bound.

    Why: the search is bounded by the clock, and where it ends depends on its seed more than on
    anything else. A second search with another seed turns that into the better of two; a plan
    proved optimal stops the other search at once. Always two, whatever the core count, so the
    same seed means the same two searches on every machine.
    """
    ctx = mp.get_context("fork")
    here, there = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_second_search, args=(inst, budget, seed * 7919 + 1, kwargs, there), daemon=True)
    proc.start()
    there.close()
    res = solve_instance(inst, budget, seed, **kwargs)
    other: InstanceResult | None = None
    proved = res is not None and bool(res.stats.get("proved_early") or res.stats.get("whole_mip_optimal"))
    if not proved and here.poll(budget + 5.0):
        try:
            other = here.recv()
        except EOFError:
            other = None
    proc.terminate()
    proc.join()
    here.close()
    if res is None or other is None:
        return res or other
    best = res if res.objective <= other.objective else other
    best.lower_bound = max(res.lower_bound, other.lower_bound)
    best.stats = {**best.stats, "portfolio_other_objective": round(max(res.objective, other.objective), 6)}
    return best


def solve_cpmp(
    xy: ArrayLike,
    demand: ArrayLike,
    capacity: int,
    p: int,
    *,
    dist: Literal["euclid", "floor"] = "euclid",
    time_limit: float = 10.0,
    seed: int = 0,
) -> Solution:
    """Solve one CPMP instance; ``dist="floor"`` rounds each distance down (OR-Library pmedcap1)."""
    t0 = time.perf_counter()
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    dem = np.asarray(demand, dtype=np.int64)
    if dem.sum() > capacity * p or (dem > capacity).any() or not 1 <= p <= len(xy):
        raise InfeasibleError([Conflict("all", "capacity", f"demand {int(dem.sum())} cannot fit {p} medians of capacity {capacity}")])
    inst = Instance(xy=xy, demand=dem, full=np.zeros_like(dem), weight=np.ones(len(dem)), p=p,
                    max_size=int(capacity), floor=dist == "floor")
    share = POLISH_SHARE if len(xy) <= POLISH_MAX_POINTS else 0.0
    small = len(xy) <= POLISH_MAX_N
    # a margin for the last search step and bound iteration, which may run past their deadlines
    budget = max(0.05, LIMIT_MARGIN * time_limit - (time.perf_counter() - t0))
    config = SearchConfig(
        patience=RESTART_PATIENCE, polish=share if small else 0.0, local_kicks=True, swaps=SWAPS,
        reassign_mip=REASSIGN_MIP, recombine=RECOMBINE, whole_mip_last=True, accept_worse=ACCEPT_WORSE,
        prove_early=True,
        arc_mips=tuple((when, min(part, ARC_MIP_SECONDS / time_limit)) for when, part in ARC_MIPS)
        if ARC_MIP_MIN_N <= len(xy) <= ARC_MIP_MAX_N else (),
        fresh_every=FRESH_EVERY[len(xy) > FRESH_MAX_N],
        lns=LNS if bool((dem == 1).all()) or not LNS_UNIT_ONLY else None, lns_share=LNS_SHARE, lns_min_n=LNS_MIN_N,
        global_phase=GLOBAL_PHASE, global_share=GLOBAL_SHARE, greedy_seeds=GREEDY_SEEDS,
    )
    bound_share = BOUND_SHARE_POLISHED if small else BOUND_SHARE_GLOBAL if GLOBAL_PHASE and applies(inst) else 0.2
    kwargs: dict[str, Any] = {"restarts": 100_000, "config": config, "bound_share": bound_share}
    two = PORTFOLIO and WHOLE_MIP_MAX_ARCS < len(xy) * len(xy) and len(xy) <= PORTFOLIO_MAX_N and _forkable()
    res = _portfolio(inst, budget, seed, kwargs) if two else \
        solve_instance(inst, budget, seed, **kwargs)
    if res is None:
        raise InfeasibleError([Conflict("all", "capacity", "no feasible assignment was found in the time limit")])
    return Solution(
        branch_of=res.branch_of,
        site_xy=xy[res.sites],
        site_member=res.sites,
        site_region=np.zeros(p, dtype=np.int64),
        objective=res.objective,
        lower_bound=res.lower_bound,
        seconds=time.perf_counter() - t0,
        status="optimal" if res.objective - res.lower_bound <= 1e-9 * max(1.0, res.objective) else "feasible",
        notes=["time limit reached"] if res.timed_out else [],
        stats=res.stats,
    )
