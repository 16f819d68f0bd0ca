"""Rebalancing an existing plan with as few member moves as possible.

Branches are communities, so the current plan is the starting point and every move has a price.
Per region (district, or district·theme) the units (members, weighted rows, families; see
:mod:`geoalloc.rules`) are re-assigned exactly by min-cost flow (:mod:`.flow`) around a local
search over the sites (:mod:`.region`); a hard move budget walks a ladder of settings
(:mod:`.budget`). Members whose address changed and new members carry no move penalty: placing
them is the point of the exercise. Every plan passes :func:`geoalloc.rules.check_plan`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from geoalloc.plan_diff import new_plan_id, plan_report, violations
from geoalloc.rules import Policy, plan_members, region_district, themes_off_note, validated
from geoalloc.sites import label_branches
from geoalloc.solver.rebalance.budget import MAX_PENALTY_M, budget_ladder, solve_all, within_budget
from geoalloc.solver.rebalance.centres import off_centre
from geoalloc.solver.rebalance.certificate import lower_bound, nn_lower_bound
from geoalloc.solver.rebalance.flow import V_HARD, assign_min_cost
from geoalloc.solver.rebalance.frames import before_frames, move_reasons, naive_violations, plan_frames, zero_move_frames
from geoalloc.solver.rebalance.prepare import branch_targets, prepare, region_problems
from geoalloc.solver.rebalance.region import RegionPlan

__all__ = ["RebalanceResult", "rebalance", "assign_min_cost", "budget_ladder", "V_HARD", "MAX_PENALTY_M"]

Progress = Callable[[str, float], None]


@dataclass
class RebalanceResult:
    """A rebalanced plan in plan-directory frames, the moves, and the report.json fields."""

    assignments: pd.DataFrame
    branches: pd.DataFrame
    moves: pd.DataFrame
    report: dict[str, Any]
    placements: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["member_id", "to_branch"]))


def rebalance(
    members: pd.DataFrame,
    current: pd.DataFrame,
    policy: Policy,
    *,
    max_moves: int | None = None,
    move_penalty_m: float | None = None,
    frozen_branches: set[str] | frozenset[str] = frozenset(),
    progress: Progress | None = None,
    current_branches: pd.DataFrame | None = None,
    parent_plan_id: str | None = None,
    certify: bool = True,
    ladder_cache: dict[Any, Any] | None = None,
    engine: Any = None,
) -> RebalanceResult:
    """Fix the current plan for today's roster, moving as few members as the settings allow.

    ``max_moves`` is a hard budget on members of the current plan who change branch
    (placing new members and removing leavers are not moves). ``move_penalty_m`` is what a
    move must save, in metres (default :attr:`Policy.move_penalty_m`).
    ``current_branches`` (a previous branches.csv) keeps the meeting points exactly;
    without it a branch's site is the medoid of its members who did not move house.
    ``progress(stage, fraction)`` is called as regions are solved. ``certify=False`` skips
    the (time-boxed) Lagrangian bound and reports the weak nearest-neighbour bound instead.
    ``ladder_cache``: a dict shared by calls on the same inputs with different budgets (the
    trade-off curve), so each penalty setting is solved once. ``engine``: where the regions are
    solved (:func:`geoalloc.engines.get_engine`; default one after the other in this process).
    """
    t0 = time.perf_counter()
    if max_moves is not None and max_moves < 0:
        raise ValueError(f"max_moves must be at least 0 (got {max_moves})")
    if move_penalty_m is not None and move_penalty_m < 0:
        raise ValueError(f"move_penalty_m must be at least 0 (got {move_penalty_m})")
    members = plan_members(members)
    prep = prepare(members, current, policy, frozen_branches, current_branches,
                   float(policy.extra.get("relocated_min_m", 200.0)))
    before_a, before_b = before_frames(prep)
    regions, index = region_problems(prep, policy)
    penalty = float(move_penalty_m if move_penalty_m is not None else policy.move_penalty_m)
    notes = list(prep.notes) + themes_off_note(members, policy)
    budget_info: dict[str, Any] = {"max_moves": max_moves, "budget_met_all_fixes": True}

    nothing_changed = (
        not prep.relocated.any()
        and not prep.new.any()
        and violations(before_b, policy)["total"] == 0
        and move_penalty_m is None
        and not (prep.active & (before_a["branch_id"] == "").to_numpy()).any()
        and _families_whole(before_a)
        and not _off_centre(prep, policy)
        and _count_on_target(prep, policy)
    )
    left = int(prep.removed.sum())
    plans: list[RegionPlan] | None
    if nothing_changed and left == 0:
        plans = None
        notes.append("unchanged roster: current plan kept")
    elif max_moves is None:
        plans = solve_all(regions, policy, penalty, V_HARD, 0.0, progress, "rebalance", engine)
    else:
        plans, regions, index, label = within_budget(
            prep, policy, penalty, max_moves, progress, budget_info, ladder_cache if ladder_cache is not None else {},
            before_b, engine,
        )
        notes.append(label)
    if plans is None:
        after_a, after_b = zero_move_frames(prep, policy)
    else:
        after_a, after_b = plan_frames(prep, regions, index, plans)
    moves, placements = move_reasons(prep, before_b, after_a, policy)
    if max_moves is not None and len(moves) > max_moves:  # cannot happen; kept as a guard
        raise AssertionError(f"rebalance exceeded the move budget ({len(moves)} > {max_moves})")
    report = plan_report((before_a, before_b), (after_a, after_b), moves, policy)
    after_b = label_branches(after_b, policy)
    resited = [b for b in _off_centre(prep, policy) if b in set(after_b["branch_id"])]
    notes.extend(_centre_notes(resited, after_b, policy))
    report["violations_without_rebalance"] = naive_violations(prep, before_b, policy)
    report["violations"] = validated(members, after_a, after_b, policy, "rebalance", prep.frozen_branches)
    va = report["violations_after"]
    if va["total"] and max_moves is not None:
        budget_info["budget_met_all_fixes"] = False
        notes.append(f"the move budget ({max_moves}) could not fix every limit violation: {va['total']} branches remain outside limits")
    elif va["total"]:
        notes.append(f"{va['total']} branches remain outside limits (the rules cannot all be met in their region)")
    objective = float(np.nansum(after_a["distance_m"].to_numpy(float) * after_a["weight"].to_numpy(float)))
    if objective <= 0:
        lb, lb_kind = 0.0, "empty plan"
    elif certify:
        lb, lb_kind = lower_bound(prep, after_a, after_b, policy, objective)
    else:
        lb, lb_kind = min(nn_lower_bound(prep, after_b, policy), objective), "nearest-neighbour bound (weak, valid)"
    removed = int(prep.removed.sum())
    report.update(
        {
            "plan_id": new_plan_id(),
            "parent_plan_id": parent_plan_id,
            "kind": "rebalance",
            "objective_m": round(objective, 1),
            "lower_bound_m": round(lb, 1),
            "lower_bound_kind": lb_kind,
            "gap": round((objective - lb) / objective, 4) if objective > 0 else 0.0,
            "n_members": int(len(prep.ids)),
            "n_assigned": int((after_a["branch_id"] != "").sum()),
            "n_unassigned": int((after_a["branch_id"] == "").sum()),
            "n_branches": int(len(after_b)),
            "min_size": policy.min_size,
            "max_size": policy.max_size,
            "min_full": policy.min_full,
            "unassigned": [
                {"member_id": str(m), "status": str(s), "reason": str(r)}
                for m, s, r in zip(prep.ids[~prep.active], after_a["status"].to_numpy()[~prep.active],
                                   prep.reasons[~prep.active])
            ],
            "distance_m": report["distance_after"],
            "branch_size": {
                "min": int(after_b["size"].min()) if len(after_b) else 0,
                "mean": round(float(after_b["size"].mean()), 1) if len(after_b) else 0.0,
                "max": int(after_b["size"].max()) if len(after_b) else 0,
            },
            "relocated": int(prep.relocated[prep.row_unit[prep.active]].sum()),
            "joined": int(len(placements)),
            "removed": removed,
            "frozen_members": int(prep.frozen.sum()),
            "frozen_branches": sorted(prep.frozen_branches),
            "move_penalty_m": penalty if max_moves is None else budget_info.get("penalty_m"),
            "budget": budget_info,
            "seconds": round(time.perf_counter() - t0, 2),
            "branch_rule": _branch_rule(policy),
            "resited_branches": resited,
            "engine": ({"name": engine.name, "workers": engine.workers, "retried": engine.retried}
                       if engine is not None else {"name": "inline", "workers": 1}),
            "notes": notes,
        }
    )
    return RebalanceResult(after_a, after_b, moves, report, placements)


def _branch_rule(policy: Policy) -> str:
    """How the rebalance treated the branch count, in words (report.json's ``branch_rule``)."""
    if policy.n_branches is None and policy.target_size is None:
        return ("default: a region with fewer branches than a fresh plan would give "
                "(a mean of 80% of max_size) opens new ones; healthy branches are not merged")
    from geoalloc.solver.form import branch_rule

    return branch_rule(policy) + "; branches opened or merged to meet it where the moves are worth it"


def _count_on_target(prep: Any, policy: Policy) -> bool:
    """Every region has the planner's branch count already (True without one)."""
    targets = branch_targets(prep, policy)
    if not targets:
        return True
    have: dict[int, int] = {}
    for b, r in prep.branch_region.items():
        if b not in prep.frozen_branches:
            have[r] = have.get(r, 0) + 1
    return all(have.get(r, 0) == n for r, n in targets.items())


def _off_centre(prep: Any, policy: Policy) -> list[str]:
    """Current branches (not frozen) that do not meet at a given service centre of their district."""
    live = {b: prep.site_xy[b] for b in prep.branch_region if b not in prep.frozen_branches}
    district = {b: region_district(prep.region_names[r]) for b, r in prep.branch_region.items()}
    zone = {b: prep.zone(prep.region_names[r]) for b, r in prep.branch_region.items()}
    return off_centre(live, district, policy, zone)


def _centre_notes(moved: list[str], after_b: pd.DataFrame, policy: Policy) -> list[str]:
    """What the rebalance did about service centres (``moved``: branches re-sited), for the notes."""
    if not policy.sites:
        return []
    notes = []
    if moved:
        notes.append(f"{len(moved)} branches did not meet at a given service centre and now meet at one "
                     f"(members kept): {', '.join(moved[:10])}{' ...' if len(moved) > 10 else ''}")
    off = after_b.loc[after_b["site_id"] == "", "branch_id"].tolist() if len(after_b) else []
    if off:
        notes.append(f"{len(off)} branches still meet away from the service centres (frozen, or no place left): "
                     f"{', '.join(off[:10])}")
    return notes


def _families_whole(assignments: pd.DataFrame) -> bool:
    """No family of the current plan sits in two branches."""
    a = assignments[(assignments["branch_id"] != "") & (assignments["group_id"] != "")]
    return bool((a.groupby("group_id")["branch_id"].nunique() <= 1).all()) if len(a) else True
