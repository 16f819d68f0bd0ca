"""Keep the maps from showing more than the data knows, or anything that could run.

Two guards live here. ``blur_points`` snaps member points whose precision is a street
address or better onto a coarse grid (a map is never more precise than the planner needs,
and a home must not be findable from it); points already placed at a community, subdistrict
or district centroid are gazetteer points, not homes, and stay where they are.
``js_json`` embeds data in a ``<script>`` so that no roster text can close the element or
become markup: the browser side then only ever inserts text through ``esc()``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from geoalloc.model import GeoPrecision

# Precisions that may pin a home: snapped to the grid unless the caller opts into exact points.
_FINE = {GeoPrecision.EXACT.value, GeoPrecision.LANDMARK.value}
_KNOWN = {p.value for p in GeoPrecision}

DEFAULT_SNAP_M = 200.0
_M_PER_DEG_LAT = 111_320.0


def normalise_precision(values: pd.Series) -> pd.Series:
    """Precision labels in lower case; missing or unknown ones count as exact (the safe side)."""
    out = values.astype("string").str.strip().str.lower()
    out = out.where(out.isin(_KNOWN), GeoPrecision.EXACT.value)
    return out.fillna(GeoPrecision.EXACT.value).astype(object)


def blur_points(
    lon: NDArray[np.float64], lat: NDArray[np.float64], precision: pd.Series, snap_m: float = DEFAULT_SNAP_M
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Snap fine points to a ``snap_m`` grid (cell centres); ``snap_m <= 0`` keeps them exact.

    Each row of cells takes the longitude step of its own latitude, so a cell is ``snap_m`` wide
    from Hainan to Heilongjiang, and a point's cell depends on that point alone: never on the
    other points of the file, whose change could otherwise move it to a neighbouring cell and
    narrow down where the member lives."""
    lon = np.asarray(lon, dtype=float).copy()
    lat = np.asarray(lat, dtype=float).copy()
    if snap_m <= 0 or len(lon) == 0:
        return lon, lat
    fine = normalise_precision(precision).isin(_FINE).to_numpy()
    dlat = snap_m / _M_PER_DEG_LAT
    lat[fine] = (np.floor(lat[fine] / dlat) + 0.5) * dlat
    dlon = snap_m / (_M_PER_DEG_LAT * np.maximum(np.cos(np.radians(lat[fine])), 0.1))
    lon[fine] = (np.floor(lon[fine] / dlon) + 0.5) * dlon
    return lon, lat


def snap_point(lon: float, lat: float, snap_m: float = DEFAULT_SNAP_M) -> tuple[float, float]:
    """One point snapped as an exact member point would be (used for branch sites)."""
    x, y = blur_points(np.array([lon]), np.array([lat]), pd.Series([GeoPrecision.EXACT.value]), snap_m)
    return float(x[0]), float(y[0])


def js_json(value: Any) -> str:
    """JSON that is safe inside ``<script>``: ``<``, ``>``, ``&`` and line separators escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
