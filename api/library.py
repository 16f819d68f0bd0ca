"""The library calls the service composes, in one place: the API re-implements none of them.

Imports are lazy so that the app starts (and ``/readyz`` can say what is missing) even when an
optional part is absent; each function is a thin, typed pass-through to the geoalloc call.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd

from geoalloc.rules import Policy

Progress = Callable[[str, float], None]


def read_roster(data: bytes, filename: str) -> Any:
    """geoalloc.roster.read_roster: validated members plus rejects (row, member_id, field, reason)."""
    from geoalloc.roster import read_roster as _read

    return _read(data, filename)


def place_members(members: pd.DataFrame) -> pd.DataFrame:
    """geoalloc.pipeline.place_members: offline geocoding of rows without coordinates."""
    from geoalloc.pipeline import place_members as _place

    return _place(members, geocoder=geocoder())


_geocoder_lock = threading.Lock()


@functools.cache
def _make_geocoder() -> Any:
    from geoalloc.geocode import OfflineGeocoder

    return OfflineGeocoder()


def geocoder() -> Any:
    """One shared offline geocoder (its gazetteer index is built once)."""
    with _geocoder_lock:
        return _make_geocoder()


def geocode_address(address: str, member_id: str) -> Any:
    """OfflineGeocoder.geocode -> GeocodeResult(lon, lat, precision, status, district_zh, ..., reason)."""
    return geocoder().geocode(address, member_id)


def to_wgs84(lon: float, lat: float, datum: str) -> tuple[float, float]:
    """geoalloc.geocode.datum.to_wgs84 for one point (WGS-84 itself passes straight through: the
    library's array conversion would cost more than the rest of locating the point)."""
    if datum == "wgs84":
        return float(lon), float(lat)
    from geoalloc.geocode.datum import to_wgs84 as _conv

    x, y = _conv(lon, lat, datum)
    return float(x), float(y)


def district_of(lon: float, lat: float) -> str | None:
    """The district containing one point (None outside Shenzhen), in microseconds."""
    from geoalloc.districts import district_at

    return district_at(lon, lat)


def warm_up() -> None:
    """Build what the first relocation would otherwise build on the request path (the district
    grid, the projection): at start-up, not in some caller's latency."""
    from geoalloc.projection import point_to_metres

    district_of(114.05, 22.55)
    point_to_metres(114.05, 22.55)


def allocate(members: pd.DataFrame, policy: Policy, progress: Progress | None) -> Any:
    """geoalloc.pipeline.allocate -> AllocationResult(assignments, branches, report)."""
    from geoalloc.pipeline import allocate as _allocate

    return _allocate(members, policy, progress=progress)


def rebalance(members: pd.DataFrame, current: pd.DataFrame, branches: pd.DataFrame, policy: Policy,
              max_moves: int | None, move_penalty_m: float | None, progress: Progress | None) -> Any:
    """geoalloc.solver.rebalance.rebalance -> RebalanceResult(assignments, branches, moves, report)."""
    from geoalloc.solver.rebalance import rebalance as _rebalance

    return _rebalance(members, current, policy, max_moves=max_moves, move_penalty_m=move_penalty_m,
                      progress=progress, current_branches=branches)


def plan_state(assignments: pd.DataFrame, branches: pd.DataFrame, policy: Policy) -> Any:
    """geoalloc.solver.relocate.PlanState.from_frames: the in-memory plan single relocations work on."""
    from geoalloc.solver.relocate import PlanState

    return PlanState.from_frames(assignments, branches, policy)


def diff_plans(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """geoalloc.plan_diff.diff_plans: members whose branch differs (member_id, from_branch, to_branch, ...)."""
    from geoalloc.plan_diff import diff_plans as _diff

    return _diff(old, new)


def plan_map_html(assignments: pd.DataFrame, branches: pd.DataFrame, report: dict[str, Any],
                  policy: Policy, title: str) -> str:
    """geoalloc.maps.plan_map rendered by geoalloc.maps.render_html (private defaults: no names, snapped points).

    Self-contained (``cdn=False``, the maps' default, named here because the service relies on it):
    Leaflet and its plugins are inlined, so the page loads no third-party script.
    """
    from geoalloc import maps

    m = maps.plan_map(assignments, branches, report, min_size=policy.min_size, max_size=policy.max_size,
                      min_full=policy.min_full, show_names=False, title=title, cdn=False)
    return str(maps.render_html(m))


def available() -> dict[str, str]:
    """Which library parts import (for /readyz): name -> "ok" or the import error."""
    parts = {"roster": "geoalloc.roster", "geocode": "geoalloc.geocode", "pipeline": "geoalloc.pipeline",
             "rebalance": "geoalloc.solver.rebalance", "relocate": "geoalloc.solver.relocate",
             "maps": "geoalloc.maps", "plan_diff": "geoalloc.plan_diff"}
    out = {}
    import importlib

    for name, mod in parts.items():
        try:
            importlib.import_module(mod)
            out[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, do not crash: readiness is the place to say it
            out[name] = f"unavailable: {type(exc).__name__}: {exc}"
    return out
