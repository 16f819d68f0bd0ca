"""geoalloc: geospatial branch allocation for Shenzhen member organisations.

The curated public API. Names are loaded on first use (PEP 562), so ``import geoalloc``
and the command line start fast without pulling in geopandas or OR-Tools until needed::

    import geoalloc as ga

    roster = ga.read_roster("members.csv")
    placed = ga.place_members(roster.members)
    plan = ga.allocate(placed, ga.Policy(max_size=50))
    ga.write_plan_dir(plan, "out/")
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # domain model
    "Policy": "geoalloc.rules",
    "MemberStatus": "geoalloc.model",
    "Datum": "geoalloc.model",
    "GeoPrecision": "geoalloc.model",
    "GeoStatus": "geoalloc.model",
    "MoveReason": "geoalloc.model",
    # rosters
    "read_roster": "geoalloc.roster",
    "validate_roster": "geoalloc.roster",
    "RosterResult": "geoalloc.roster",
    "RosterError": "geoalloc.roster",
    "RowError": "geoalloc.roster",
    "generate_roster": "geoalloc.samples",
    # geocoding
    "OfflineGeocoder": "geoalloc.geocode",
    "GeocodeResult": "geoalloc.geocode",
    "geocode_frame": "geoalloc.geocode",
    "load_landmarks": "geoalloc.geocode",
    "to_wgs84": "geoalloc.geocode.datum",
    "from_wgs84": "geoalloc.geocode.datum",
    # forming branches
    "Problem": "geoalloc.solver.problem",
    "Solution": "geoalloc.solver.problem",
    "InfeasibleError": "geoalloc.solver.problem",
    "Conflict": "geoalloc.solver.problem",
    "form_branches": "geoalloc.solver",
    # the main job
    "place_members": "geoalloc.pipeline",
    "allocate": "geoalloc.pipeline",
    "AllocationResult": "geoalloc.pipeline",
    "write_plan_dir": "geoalloc.pipeline",
    "read_plan_dir": "geoalloc.pipeline",
    # rebalancing and relocation
    "rebalance": "geoalloc.solver.rebalance",
    "RebalanceResult": "geoalloc.solver.rebalance",
    "PlanState": "geoalloc.solver.relocate",
    "Relocation": "geoalloc.solver.relocate",
    "trade_off_curve": "geoalloc.curve",
    "write_curve": "geoalloc.curve",
    "diff_plans": "geoalloc.plan_diff",
    "plan_report": "geoalloc.plan_diff",
    # maps
    "plan_map": "geoalloc.maps",
    "compare_map": "geoalloc.maps",
    "save_map": "geoalloc.maps",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from geoalloc.geocode import GeocodeResult, OfflineGeocoder, geocode_frame, load_landmarks
    from geoalloc.geocode.datum import from_wgs84, to_wgs84
    from geoalloc.maps import compare_map, plan_map, save_map
    from geoalloc.model import Datum, GeoPrecision, GeoStatus, MemberStatus, MoveReason
    from geoalloc.rules import Policy
    from geoalloc.pipeline import AllocationResult, allocate, place_members, read_plan_dir, write_plan_dir
    from geoalloc.roster import RosterError, RosterResult, RowError, read_roster, validate_roster
    from geoalloc.samples import generate_roster
    from geoalloc.solver import form_branches
    from geoalloc.solver.problem import Conflict, InfeasibleError, Problem, Solution
    from geoalloc.curve import trade_off_curve, write_curve
    from geoalloc.plan_diff import diff_plans, plan_report
    from geoalloc.solver.rebalance import RebalanceResult, rebalance
    from geoalloc.solver.relocate import PlanState, Relocation


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'geoalloc' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
