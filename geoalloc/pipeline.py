"""The main job, roster to plan: place members, build the solver problem, form branches,
and turn the solution back into tables a planner (and the map, and the API) can use.

Each step takes and returns plain data. Files are read and written only by
:func:`write_plan_dir` / :func:`read_plan_dir`, so the API can call :func:`allocate` on
frames it loaded from its database.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geoalloc.geocode.frame import place_members as place_members  # re-exported: the public name
from geoalloc.geocode.frame import placement_counts
from geoalloc.plan_diff import distance_stats
from geoalloc.policies import attach_roles, role_summary
from geoalloc.projection import SHENZHEN_ZONE, to_lonlat, to_metres, zones_of
from geoalloc.rules import (
    CITY_REGION,
    Policy,
    full_counts,
    plan_members,
    region_district as district_of_region,
    region_city as city_of_region,
    region_groups,
    region_keys,
    theme_fallbacks,
    themes_off_note,
    unassigned_reasons,
    unit_keys,
    validated,
    weights,
)
from geoalloc.sites import attach_sites, label_branches
from geoalloc.solver import form_branches
from geoalloc.solver.problem import Problem, Solution
from geoalloc.tables import ASSIGNMENT_COLUMNS, BRANCH_COLUMNS

Progress = Callable[[str, float], None]


@dataclass
class AllocationResult:
    """A plan as tables: one row per roster member, one row per branch, and the report."""

    assignments: pd.DataFrame
    branches: pd.DataFrame
    report: dict[str, Any]
    solution: Solution | None = None
    members: pd.DataFrame = field(default_factory=pd.DataFrame)


def build_problem(active: pd.DataFrame, policy: Policy) -> tuple[Problem, pd.DataFrame]:
    """Collapse the units that must stay together (families, see :func:`geoalloc.rules.unit_keys`)
    into single points and build the solver input.

    Regions are the independent sub-problems: one per district (one for the whole city with
    ``cross_district``), split by theme where themed branches are on (:func:`geoalloc.rules.region_keys`).
    Returns the problem and a frame mapping each active member to its point index.
    """
    active = active.copy()
    member_region, names = region_keys(active, policy)
    active["_region"] = member_region
    active["_point"] = unit_keys(active)
    active["_weight"] = weights(active)
    active["_full_count"] = full_counts(active)
    points = active.groupby("_point", sort=False).agg(
        lon=("lon", "mean"), lat=("lat", "mean"), demand=("_weight", "sum"),
        full=("_full_count", "sum"), region=("_region", "first"),
    )
    region = points["region"].to_numpy(dtype=np.int64)
    zones = region_zones(active, member_region, names)
    xy = to_metres(points["lon"].to_numpy(), points["lat"].to_numpy(), zones[region] if len(region) else SHENZHEN_ZONE)
    problem = Problem(xy=xy, demand=points["demand"].to_numpy(), full=points["full"].to_numpy(),
                      region=region, region_names=names, region_group=region_groups(active, member_region, names),
                      region_zone=zones)
    point_index = pd.Series(np.arange(len(points)), index=points.index)
    active["_point_index"] = active["_point"].map(point_index).to_numpy(dtype=np.int64)
    return problem, active


def region_zones(members: pd.DataFrame, member_region: NDArray[np.int64], names: list[str]) -> NDArray[np.int64]:
    """The UTM zone of each region: its city's (:func:`geoalloc.projection.city_zone`); 49N for
    every region of a roster without ``city_zh``."""
    zones = np.full(len(names), SHENZHEN_ZONE, dtype=np.int64)
    if "city_zh" not in members.columns or not len(members):
        return zones
    zones[np.asarray(member_region)] = zones_of(members["city_zh"].to_numpy(),
                                                pd.to_numeric(members["lon"], errors="coerce").to_numpy(float))
    return zones


def allocate(members: pd.DataFrame, policy: Policy | None = None, *, progress: Progress | None = None,
             parent_plan_id: str | None = None, engine: Any = None, checkpoints: str | Path | None = None,
             ) -> AllocationResult:
    """Form branches for the active, located members; list everyone else as unassigned.

    ``members`` must already be placed (:func:`place_members`): columns member_id, lon, lat,
    district_zh, full_member, status, weight (and ``city_zh`` for a roster of several cities).
    ``engine`` and ``checkpoints`` are passed to :func:`~geoalloc.solver.form_branches` (where the
    districts are solved; a folder of finished districts for a restart). Raises
    :class:`~geoalloc.solver.InfeasibleError` when the rules cannot all be met.
    """
    policy = policy or Policy()
    started = time.perf_counter()
    members = plan_members(members)
    reasons = unassigned_reasons(members, cross_district=policy.cross_district)
    allocated = reasons == ""
    active = members[allocated]

    if progress:
        progress("solve", 0.0)
    problem, active = build_problem(active, policy)
    attach_sites(problem, policy)  # given service centres are the only meeting places
    solution = (form_branches(problem, policy, engine=engine, checkpoints=checkpoints)
                if problem.n else _empty_solution())
    if progress:
        progress("solve", 1.0)

    branch_ids, site_lonlat, site_region = _name_branches(problem, solution)
    point_branch = solution.branch_of
    member_branch = point_branch[active["_point_index"].to_numpy()]
    member_zone = problem.region_zone[active["_region"].to_numpy()] if problem.region_zone is not None else SHENZHEN_ZONE
    member_xy = to_metres(active["lon"].to_numpy(), active["lat"].to_numpy(), member_zone)
    site_xy = solution.site_xy[member_branch]
    dist = np.hypot(*(member_xy - site_xy).T)

    assignments = members[["member_id", "district_zh", "lon", "lat", "full_member", "status", "weight",
                           "group_id"]].copy()
    assignments["geo_precision"] = members.get("geo_precision", pd.Series("exact", index=members.index))
    assignments["branch_id"] = ""
    assignments["distance_m"] = np.nan
    assignments.loc[active.index, "branch_id"] = np.asarray(branch_ids, dtype=object)[member_branch]
    assignments.loc[active.index, "distance_m"] = np.round(dist, 1)
    assignments = assignments[ASSIGNMENT_COLUMNS]
    if "city_zh" in members.columns:  # a roster of several cities: say which city each row is in
        assignments.insert(3, "city_zh", members["city_zh"].fillna("").astype(str))

    branches = branch_table(assignments, branch_ids, site_lonlat, site_region,
                            joint=getattr(solution, "joint", None))
    branches = attach_roles(assignments, branches, members, policy)
    branches = label_branches(branches, policy)
    if "city_zh" in members.columns:
        branches.insert(3, "city_zh", [city_of_region(r) for r in branches["region"]])
    unassigned = [
        {"member_id": str(m), "status": str(s), "reason": str(r)}
        for m, s, r in zip(members.loc[~allocated, "member_id"], members.loc[~allocated, "status"], reasons[~allocated])
    ]
    notes = themes_off_note(members, policy)
    report = build_report(
        assignments, branches, policy, solution, unassigned,
        seconds=time.perf_counter() - started, parent_plan_id=parent_plan_id,
        violations=validated(members, assignments, branches, policy, "allocate", strict=True),
        extra={"roles": role_summary(branches), "theme_fallbacks": theme_fallbacks(members[allocated], policy),
               "placement": placement_counts(assignments, members),
               "engine": solution.stats.get("engine", {"name": "none"})},
    )
    report["notes"].extend(notes)
    return AllocationResult(assignments, branches, report, solution, members)


def _empty_solution() -> Solution:
    """The plan for a roster with nobody to allocate: no branches, nothing to bound."""
    empty = np.zeros(0, dtype=np.int64)
    return Solution(branch_of=empty, site_xy=np.zeros((0, 2)), site_member=empty, site_region=empty,
                    objective=0.0, lower_bound=0.0, seconds=0.0, status="optimal",
                    notes=["no active member could be placed: nothing to allocate"])


def _name_branches(problem: Problem, solution: Solution) -> tuple[list[str], np.ndarray, list[str]]:
    """Stable, readable branch ids ("南山区-007", "南山区·IT-002"): numbered north to south, then
    west to east, per region. Returns ids, site lon/lat and each branch's region name."""
    zone = problem.region_zone[solution.site_region] if problem.region_zone is not None else SHENZHEN_ZONE
    site_lonlat = to_lonlat(solution.site_xy[:, 0], solution.site_xy[:, 1], zone) if solution.n_branches else np.zeros((0, 2))
    site_region = [problem.region_names[r] for r in solution.site_region]
    if policy_is_citywide(problem.region_names) and len(site_region):
        # cross-district: a branch belongs to the district its site lies in
        from geoalloc.districts import locate_districts

        where = locate_districts(site_lonlat[:, 0], site_lonlat[:, 1])
        site_region = [r.replace(CITY_REGION, w or CITY_REGION, 1) for r, w in zip(site_region, where)]
    order = sorted(range(len(site_region)), key=lambda k: (site_region[k], -site_lonlat[k, 1], site_lonlat[k, 0]))
    ids = [""] * len(order)
    counters: dict[str, int] = {}
    for k in order:
        counters[site_region[k]] = counters.get(site_region[k], 0) + 1
        ids[k] = f"{site_region[k]}-{counters[site_region[k]]:03d}"
    return ids, site_lonlat, site_region


def policy_is_citywide(region_names: list[str]) -> bool:
    """True when the regions are the whole city (cross-district), not districts."""
    return all(district_of_region(r) == CITY_REGION for r in region_names)


def branch_table(assignments: pd.DataFrame, branch_ids: list[str], site_lonlat: np.ndarray,
                 site_region: list[str], *, joint: np.ndarray | None = None) -> pd.DataFrame:
    """One row per branch: site, district, region (district or district·theme), size (members,
    weights counted), full members, distance statistics."""
    a = assignments[assignments["branch_id"] != ""].copy()
    a["_w"] = weights(a)
    a["_full"] = full_counts(a)
    stats = a.groupby("branch_id").agg(
        size=("_w", "sum"), n_full=("_full", "sum"),
        mean_distance_m=("distance_m", "mean"), max_distance_m=("distance_m", "max"),
    )
    out = pd.DataFrame({
        "branch_id": branch_ids,
        "lon": np.round(site_lonlat[:, 0], 6) if len(branch_ids) else [],
        "lat": np.round(site_lonlat[:, 1], 6) if len(branch_ids) else [],
        "district_zh": [district_of_region(r) for r in site_region],
        "region": site_region,
        "joint": (np.asarray(joint, dtype=int) if joint is not None else np.zeros(len(branch_ids), dtype=int)),
    }).set_index("branch_id")
    out = out.join(stats).fillna({"size": 0, "n_full": 0})
    out["size"] = out["size"].astype(int)
    out["n_full"] = out["n_full"].astype(int)
    out["mean_distance_m"] = out["mean_distance_m"].round(1)
    out["max_distance_m"] = out["max_distance_m"].round(1)
    return out.reset_index().sort_values("branch_id").reset_index(drop=True)[BRANCH_COLUMNS]


def build_report(assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy, solution: Solution | None,
                 unassigned: list[dict[str, str]], *, seconds: float, violations: dict[str, Any],
                 parent_plan_id: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan's report.json: quality (objective, bound, gap), counts, limits and what to look at."""
    assigned = assignments[assignments["branch_id"] != ""]
    dist = assigned["distance_m"].to_numpy(dtype=float)
    sizes = branches["size"].to_numpy()
    objective = float((dist * weights(assigned)).sum())  # every member a row stands for
    lower = float(solution.lower_bound) if solution is not None else float("nan")
    report: dict[str, Any] = {
        "plan_id": uuid.uuid4().hex,
        "parent_plan_id": parent_plan_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "policy": policy.to_dict(),
        "objective_m": round(objective, 1),
        "lower_bound_m": round(lower, 1),
        "gap": round((objective - lower) / objective, 6) if objective > 0 else 0.0,
        "solver_status": solution.status if solution is not None else None,
        "n_members": len(assignments),
        "n_assigned": len(assigned),
        "n_assigned_members": int(weights(assigned).sum()),
        "n_unassigned": int(len(assignments) - len(assigned)),
        "n_branches": len(branches),
        "min_size": policy.min_size,
        "max_size": policy.max_size,
        "min_full": policy.min_full,
        "seconds": round(seconds, 3),
        "distance_m": distance_stats(assignments),
        "branch_size": {
            "min": int(sizes.min()) if len(sizes) else 0,
            "mean": round(float(sizes.mean()), 1) if len(sizes) else 0.0,
            "max": int(sizes.max()) if len(sizes) else 0,
        },
        "violations": violations,
        "by_district": _by_district(assigned, branches),
        "quality_by_unit": _quality_by_unit(solution),
        "branch_rule": solution.stats.get("branch_rule") if solution is not None else None,
        "unassigned": unassigned,
        "unassigned_by_reason": pd.Series([u["reason"] for u in unassigned], dtype=object).value_counts().to_dict(),
        "joint_branches": branches.loc[branches["joint"] == 1, "branch_id"].tolist(),
        "notes": list(solution.notes) if solution is not None else [],
    }
    if extra:
        report.update(extra)
    return report


def _quality_by_unit(solution: Solution | None) -> list[dict[str, Any]]:
    """Plan, bound and gap of each independent problem (a district, or districts joined): where
    the overall gap sits, and how tight each one is (the size every branch there must reach)."""
    if solution is None:
        return []
    out = []
    units: list[dict[str, Any]] = list(solution.stats.get("units", []))  # type: ignore[call-overload]
    for u in units:
        obj, lb = float(u["objective"]), float(u["lower_bound"])
        out.append({
            "unit": str(u["name"]), "members": int(u["n"]), "branches": int(u["branches"]),
            "objective_m": round(obj, 1), "lower_bound_m": round(lb, 1),
            "gap": round((obj - lb) / obj, 6) if obj > 0 else 0.0,
            "forced_min_branch_size": int(u.get("forced_min_size", 0)),
            "more_time_helps": bool(u.get("more_time_helps", True)),
        })
    return out


def _by_district(assigned: pd.DataFrame, branches: pd.DataFrame) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d, grp in branches.groupby("district_zh"):
        members = assigned[assigned["branch_id"].isin(grp["branch_id"])]
        out[str(d)] = {
            "branches": len(grp),
            "members": int(grp["size"].sum()),
            "mean_distance_m": round(float(members["distance_m"].mean()), 1) if len(members) else 0.0,
        }
    return out


def write_plan_dir(result: AllocationResult, out_dir: str | Path, **options: Any) -> dict[str, Path]:
    """Write the plan directory: CSVs, report.json and the planner's files (the map is written by the
    caller). ``options``: ``formats``, ``moves``, ``lang``, ``snap_m``, ``names`` of
    :func:`geoalloc.outputs.write_plan_dir`, where the writers live."""
    from geoalloc.outputs import write_plan_dir as _write

    return _write(result, out_dir, **options)


def read_plan_dir(plan_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], pd.DataFrame | None]:
    """Read a plan directory back: assignments, branches, report, and moves (None when absent)."""
    from geoalloc.outputs import read_plan_dir as _read

    return _read(plan_dir)
