"""A hard move budget: the least-penalised plan that moves at most ``max_moves`` members.

A ladder of settings is searched by bisection: raise the move penalty, then charge relocated
members too (letting those who moved district stay when moving would save them less than that
charge), then let violations go; in the last resort the current assignment (new members placed,
leavers removed) is returned: zero moves, with the unfixed violations listed in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geoalloc.rules import Policy
from geoalloc.solver.rebalance.flow import V_HARD
from geoalloc.solver.rebalance.frames import move_reasons, plan_frames
from geoalloc.solver.rebalance.prepare import Prepared, region_problems
from geoalloc.solver.rebalance.region import Region, RegionPlan, RegionSolver

MAX_PENALTY_M = 10_000_000.0
Progress = Callable[[str, float], None]


def solve_all(
    regions: list[Region], policy: Policy, penalty: float, V: int, reloc_penalty: float, progress: Progress | None,
    label: str, engine: Any = None,
) -> list[RegionPlan]:
    """Every region at one setting of the ladder, in order; on ``engine`` (:mod:`geoalloc.engines`)
    when given, else here. A region's plan depends only on the region and the settings, so the
    engine changes nothing."""
    plans: list[RegionPlan | None] = [None] * len(regions)
    if engine is None:
        done: Any = ((i, solve_region((reg, penalty, V, reloc_penalty))) for i, reg in enumerate(regions))
    else:
        done = engine.run(solve_region, [(reg, penalty, V, reloc_penalty) for reg in regions],
                          [len(reg.xy) for reg in regions])
    for k, (i, plan) in enumerate(done):
        plans[i] = plan
        if progress:
            progress(f"{label}: {regions[i].name}", (k + 1) / max(1, len(regions)))
    return [p for p in plans if p is not None]


def solve_region(args: tuple[Region, float, int, float]) -> RegionPlan:
    """One region's plan (a unit of work for an engine)."""
    reg, penalty, V, reloc_penalty = args
    return RegionSolver(reg, penalty, V, reloc_penalty).solve()


LadderStep = tuple[float, int, float, float | None]  # (move penalty, violation cost, relocated penalty, keep threshold)


def budget_ladder(penalty: float) -> list[LadderStep]:
    """Settings from least to most conservative: raise the move penalty, then penalise the
    relocated too (letting members who moved district stay), then let violations go."""
    ladder: list[LadderStep] = []
    lam = max(penalty, 1.0)
    while lam < MAX_PENALTY_M:
        ladder.append((lam, V_HARD, 0.0, None))
        lam *= 3.0
    ladder.append((MAX_PENALTY_M, V_HARD, 0.0, None))
    for reloc in (250.0, 500.0, 1_000.0, 1_500.0, 2_000.0, 3_000.0, 4_000.0, 6_000.0, 8_000.0, 12_000.0, 16_000.0, 25_000.0, 50_000.0, MAX_PENALTY_M):
        ladder.append((MAX_PENALTY_M, V_HARD, reloc, reloc))
    for V in (2 * int(MAX_PENALTY_M), int(MAX_PENALTY_M), int(MAX_PENALTY_M) // 2, int(MAX_PENALTY_M) // 5):
        ladder.append((MAX_PENALTY_M, V, MAX_PENALTY_M, MAX_PENALTY_M))
    return ladder


def within_budget(
    prep: Prepared,
    policy: Policy,
    penalty: float,
    max_moves: int,
    progress: Progress | None,
    info: dict[str, Any],
    cache: dict[Any, Any],
    before_b: pd.DataFrame,
    engine: Any = None,
) -> tuple[list[RegionPlan] | None, list[Region], list[NDArray[np.int64]], str]:
    """The least-penalised plan that moves at most ``max_moves`` members (hard).

    Returns (plans or None for the zero-move plan, regions, member index, note). ``cache``
    keeps solved ladder steps, so a sweep of budgets (the curve) solves each step once.
    A step's moves are counted on the plan it really produces (the same count ``moves.csv``
    gets), so the budget holds whatever the regions' own bookkeeping says.
    """
    ladder = budget_ladder(penalty)

    def run(i: int) -> tuple[list[RegionPlan], list[Region], list[NDArray[np.int64]]]:
        key = ("step", ladder[i])
        if key not in cache:
            lam, V, reloc, keep = ladder[i]
            rkey = ("regions", keep)
            if rkey not in cache:
                cache[rkey] = region_problems(prep, policy, keep_threshold=keep)
            regions, index = cache[rkey]
            plans = solve_all(regions, policy, lam, V, reloc, progress, f"budget step {i + 1}/{len(ladder)}", engine)
            cache[key] = (plans, regions, index)
        return cache[key]

    def moves(i: int) -> int:
        key = ("moves", ladder[i])
        if key not in cache:
            plans, regions, index = run(i)
            after_a, _ = plan_frames(prep, regions, index, plans)
            cache[key] = len(move_reasons(prep, before_b, after_a, policy)[0])
        return int(cache[key])

    if moves(0) <= max_moves:
        info["penalty_m"] = ladder[0][0]
        plans, regions, index = run(0)
        return plans, regions, index, f"move budget {max_moves} not binding"
    lo, hi = 0, len(ladder)  # moves(lo) > budget; hi: first step known within budget (len: zero-move plan)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if moves(mid) <= max_moves:
            hi = mid
        else:
            lo = mid
    # any cheaper solved step within budget is at least as good
    solved = sorted(i for i in range(len(ladder)) if ("step", ladder[i]) in cache and moves(i) <= max_moves)
    if solved:
        i = solved[0]
        lam, V, reloc, keep = ladder[i]
        info.update({"penalty_m": lam, "violation_cost": V, "relocated_penalty_m": reloc, "keep_across_districts_below_m": keep})
        plans, regions, index = run(i)
        return plans, regions, index, f"move budget {max_moves}: move penalty {lam:.0f} m, relocated members' penalty {reloc:.0f} m"
    info.update({"penalty_m": None, "fallback": "zero moves"})
    regions, index = region_problems(prep, policy)
    return None, regions, index, f"move budget {max_moves}: even the smallest fix needs more moves; no one moved"
