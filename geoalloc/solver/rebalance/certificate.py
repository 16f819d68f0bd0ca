"""How far a rebalanced plan can at most be from the best from-scratch plan with its branch counts."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from geoalloc.rules import Policy
from geoalloc.solver.rebalance.centres import unit_candidates
from geoalloc.solver.rebalance.prepare import Prepared


def nn_lower_bound(prep: Prepared, branches: pd.DataFrame, policy: Policy | None = None) -> float:
    """A valid (weak) bound on the from-scratch distance with the same branch count per region.

    Sites are members' homes, so every unit but the p sites pays at least its demand times the
    distance to its nearest other unit in its region; with service centres, every unit pays at
    least the distance to the nearest centre it may use.
    """
    total = 0.0
    counts = branches.groupby("region").size() if len(branches) else pd.Series(dtype=int)
    for r, name in enumerate(prep.region_names):
        mem = np.flatnonzero(prep.region == r)
        p = int(counts.get(name, 0))
        cand = unit_candidates(policy, prep.region_names, [r], prep.joined, max(p, 1),
                                       prep.zone(name)) if policy is not None else None
        if cand is not None:  # branches meet at centres: everyone pays at least the nearest one
            if len(mem) and len(cand):
                total += float((cKDTree(cand).query(prep.xy[mem])[0] * prep.demand[mem]).sum())
            continue
        if len(mem) <= max(p, 1):
            continue
        d, _ = cKDTree(prep.xy[mem]).query(prep.xy[mem], k=2)
        nn = np.sort(np.asarray(d)[:, 1] * prep.demand[mem])
        total += float(nn[: len(mem) - p].sum())
    return total


def lower_bound(prep: Prepared, assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy,
                objective: float) -> tuple[float, str]:
    """The solver's Lagrangian bound for the same units and branch counts (time-boxed to half of
    ``policy.time_limit``, or ``policy.extra["bound_seconds"]``), else the weak nearest-neighbour bound."""
    try:
        from geoalloc.solver.bounds import lagrangian_bound
        from geoalloc.solver.form import build_units
        from geoalloc.solver.instance import Instance
        from geoalloc.solver.problem import Problem

        problem = Problem(xy=prep.xy, demand=prep.demand, full=prep.full, region=prep.region,
                          region_names=prep.region_names)
        units = build_units(problem, policy)
        per_region = branches.groupby("region").size() if len(branches) else pd.Series(dtype=int)
        dist_row = pd.to_numeric(assignments["distance_m"], errors="coerce").fillna(0).to_numpy(float)
        has = prep.row_unit >= 0
        weight = pd.to_numeric(assignments.get("weight", 1), errors="coerce").fillna(1).to_numpy(float)
        dist = np.bincount(prep.row_unit[has], weights=(dist_row * weight)[has], minlength=len(prep.demand))
        seconds = float(policy.extra.get("bound_seconds", 0.5 * policy.time_limit))
        total = 0.0
        n_all = max(1, len(prep.demand))
        for u in units:
            p = int(sum(per_region.get(prep.region_names[r], 0) for r in u.regions))
            if p <= 0:
                raise ValueError(f"no branch in {u.name}")
            idx = u.members
            inst = Instance(
                xy=problem.xy[idx], demand=prep.demand[idx], full=prep.full[idx],
                weight=np.ones(len(idx)), p=p, max_size=policy.max_size, min_size=policy.min_size,
                min_full=policy.min_full,
                cand_xy=unit_candidates(policy, prep.region_names, list(u.regions), prep.joined, p,
                                        prep.zone(prep.region_names[u.regions[0]])),
            )
            here = float(dist[idx].sum())
            share = seconds * len(idx) / n_all
            total += min(lagrangian_bound(inst, here, deadline=time.perf_counter() + share), here)
        return min(total, objective), "Lagrangian bound (geoalloc.solver.bounds) for the same members and branch counts"
    except Exception as exc:  # the bound is a certificate, not a reason to fail a rebalance
        return min(nn_lower_bound(prep, branches, policy), objective), f"nearest-neighbour bound (weak; solver bound unavailable: {exc})"
