"""Datum conversion between WGS-84, GCJ-02 ("Mars" coordinates) and BD-09 (Baidu).

geoalloc stores every point in WGS-84, but Chinese sources hand out GCJ-02 (AMap, Tencent)
or BD-09 (Baidu). The forward formulas are the public ones; the inverses are solved
*exactly* by fixed-point iteration (the common one-step inverse leaves 1-2 m of error in
Shenzhen, which would move members across branch boundaries on dense streets).

All functions are vectorised: they take scalars or array-likes and return the same shape
(floats for scalar input, numpy arrays otherwise). Points outside China are returned
unchanged by the GCJ-02 functions, as the official obfuscation does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geoalloc.model import Datum

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "parse_datum",
    "to_wgs84",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

# Iteration controls for the exact inverses: 1e-11 degrees is about 1 micrometre.
_TOL_DEG = 1e-11
_MAX_ITER = 50

Pair = tuple[Any, Any]


def _as_arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    """Broadcast inputs to float arrays and remember whether both were scalars."""
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return np.array(x, dtype=float), np.array(y, dtype=float), scalar


def _ret(x: NDArray[np.float64], y: NDArray[np.float64], scalar: bool) -> Pair:
    """Return floats for scalar input, arrays otherwise."""
    if scalar:
        return float(x), float(y)
    return x, y


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """The rough bounding box outside which GCJ-02 equals WGS-84 (the usual convention)."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    return (x < 72.004) | (x > 137.8347) | (y < 0.8293) | (y > 55.8271)


def _gcj_delta(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The GCJ-02 offset (degrees) to add to a WGS-84 point; zero outside China."""
    x = lon - 105.0
    y = lat - 35.0
    sx = np.sqrt(np.abs(x))
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx
    dlat += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx
    dlon += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def _wgs_to_gcj(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def _gcj_to_bd(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _invert(
    forward: Callable[[NDArray[np.float64], NDArray[np.float64]], tuple[NDArray[np.float64], NDArray[np.float64]]],
    tx: NDArray[np.float64],
    ty: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Solve forward(x, y) = (tx, ty) by fixed-point iteration x <- x - (f(x) - t).

    Converges because both transforms are the identity plus a slowly varying offset; starts
    from the one-step approximation so two or three rounds usually suffice.
    """
    fx, fy = forward(tx, ty)
    x = 2.0 * tx - fx
    y = 2.0 * ty - fy
    for _ in range(_MAX_ITER):
        fx, fy = forward(x, y)
        ex = fx - tx
        ey = fy - ty
        x = x - ex
        y = y - ey
        with np.errstate(invalid="ignore"):
            if not np.any((np.abs(ex) > _TOL_DEG) | (np.abs(ey) > _TOL_DEG)):
                break
    return x, y


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """WGS-84 -> GCJ-02 (the public offset formula)."""
    x, y, s = _as_arrays(lon, lat)
    return _ret(*_wgs_to_gcj(x, y), s)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """GCJ-02 -> WGS-84, exact (iterated to ~1e-11 degrees, far below 0.01 m)."""
    x, y, s = _as_arrays(lon, lat)
    return _ret(*_invert(_wgs_to_gcj, x, y), s)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """GCJ-02 -> BD-09 (Baidu's public formula)."""
    x, y, s = _as_arrays(lon, lat)
    return _ret(*_gcj_to_bd(x, y), s)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """BD-09 -> GCJ-02, exact iterative inverse of :func:`gcj02_to_bd09`."""
    x, y, s = _as_arrays(lon, lat)
    return _ret(*_invert(_gcj_to_bd, x, y), s)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """WGS-84 -> BD-09 (through GCJ-02)."""
    x, y, s = _as_arrays(lon, lat)
    return _ret(*_gcj_to_bd(*_wgs_to_gcj(x, y)), s)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> Pair:
    """BD-09 -> WGS-84 (exact inverses through GCJ-02)."""
    x, y, s = _as_arrays(lon, lat)
    gx, gy = _invert(_gcj_to_bd, x, y)
    return _ret(*_invert(_wgs_to_gcj, gx, gy), s)


def parse_datum(datum: str | Datum | None) -> Datum:
    """Read a datum name leniently (``"WGS-84"``, ``"gcj-02"``, ``"BD09"``, empty = WGS-84)."""
    if isinstance(datum, Datum):
        return datum
    if datum is None:
        return Datum.WGS84
    key = str(datum).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key in ("", "nan", "none"):
        return Datum.WGS84
    aliases = {"wgs84": Datum.WGS84, "wgs": Datum.WGS84, "epsg4326": Datum.WGS84,
               "gcj02": Datum.GCJ02, "gcj": Datum.GCJ02, "mars": Datum.GCJ02, "amap": Datum.GCJ02,
               "bd09": Datum.BD09, "bd09ll": Datum.BD09, "baidu": Datum.BD09}
    try:
        return aliases[key]
    except KeyError:
        raise ValueError(f"unknown datum {datum!r}: expected one of wgs84, gcj02, bd09") from None


def to_wgs84(lon: ArrayLike, lat: ArrayLike, datum: str | Datum) -> Pair:
    """Convert points given in ``datum`` to WGS-84."""
    d = parse_datum(datum)
    if d is Datum.GCJ02:
        return gcj02_to_wgs84(lon, lat)
    if d is Datum.BD09:
        return bd09_to_wgs84(lon, lat)
    x, y, s = _as_arrays(lon, lat)
    return _ret(x, y, s)


def from_wgs84(lon: ArrayLike, lat: ArrayLike, datum: str | Datum) -> Pair:
    """Convert WGS-84 points to ``datum``."""
    d = parse_datum(datum)
    if d is Datum.GCJ02:
        return wgs84_to_gcj02(lon, lat)
    if d is Datum.BD09:
        return wgs84_to_bd09(lon, lat)
    x, y, s = _as_arrays(lon, lat)
    return _ret(x, y, s)
