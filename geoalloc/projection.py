"""Projection between WGS-84 lon/lat and metres (UTM zone 49N, EPSG:32649) for Shenzhen."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer

WGS84 = "EPSG:4326"
METRIC_CRS = "EPSG:32649"


@lru_cache(maxsize=2)
def _transformer(inverse: bool) -> Transformer:
    src, dst = (METRIC_CRS, WGS84) if inverse else (WGS84, METRIC_CRS)
    return Transformer.from_crs(src, dst, always_xy=True)


def to_metres(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.float64]:
    """(n, 2) array of UTM 49N x/y in metres."""
    x, y = _transformer(False).transform(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])


def point_to_metres(lon: float, lat: float) -> tuple[float, float]:
    """One point's UTM 49N x/y in metres: :func:`to_metres` without the array round trip, which
    costs several times the projection itself for a single relocation."""
    x, y = _transformer(False).transform(float(lon), float(lat))
    return float(x), float(y)


def to_lonlat(x: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
    """(n, 2) array of WGS-84 lon/lat from UTM 49N metres."""
    lon, lat = _transformer(True).transform(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return np.column_stack([np.atleast_1d(lon), np.atleast_1d(lat)])
