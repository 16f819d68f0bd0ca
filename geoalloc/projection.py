"""Projection between WGS-84 lon/lat and metres: UTM zone 49N (EPSG:32649) for Shenzhen, and
for a national roster each city in the UTM zone of its own centre.

One zone for the whole country stretches distances far from its central meridian (about 5%
in the far west under 49N); a city is at most a few hundred kilometres across, so in its own
zone the error stays below about 0.1%. Branches never cross a city, so every distance the
solver and the outputs take is between two points projected in the same zone.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer

if TYPE_CHECKING:
    import pandas as pd

WGS84 = "EPSG:4326"
SHENZHEN_ZONE = 49  # every roster without a city, and Shenzhen's own rows, as before
METRIC_CRS = f"EPSG:{32600 + SHENZHEN_ZONE}"
SHENZHEN_CITY = "深圳市"


@lru_cache(maxsize=16)
def _transformer(inverse: bool, zone: int = SHENZHEN_ZONE) -> Transformer:
    crs = f"EPSG:{32600 + zone}"  # northern hemisphere: all of China
    src, dst = (crs, WGS84) if inverse else (WGS84, crs)
    return Transformer.from_crs(src, dst, always_xy=True)


def utm_zone(lon: float) -> int:
    """The UTM zone whose 6-degree band holds ``lon``."""
    return int((float(lon) + 180.0) // 6.0) % 60 + 1


@cache
def _city_centres() -> dict[str, float]:
    from geoalloc.national import counties

    table = counties()
    return {str(c): float(v) for c, v in table.groupby("city_zh")["lon"].mean().items()}


def city_zone(city: str, lon: ArrayLike | None = None) -> int:
    """The zone a city's points are projected in: 49 for Shenzhen (and a roster without cities),
    else the zone of the city's centre (the bundled district table's, or the median of ``lon``,
    the city's own points, for a city not in it)."""
    if not city or city.removesuffix("市") == SHENZHEN_CITY.removesuffix("市"):
        return SHENZHEN_ZONE
    centre = _city_centres().get(city)
    if centre is None:
        pts = np.asarray(lon if lon is not None else [], dtype=float)
        pts = pts[np.isfinite(pts)]
        if not len(pts):
            return SHENZHEN_ZONE
        centre = float(np.median(pts))
    return utm_zone(centre)


def zones_of(city: ArrayLike, lon: ArrayLike) -> NDArray[np.int64]:
    """Each row's zone: its city's (:func:`city_zone`, a city outside the bundled table judged by
    its own rows' ``lon``); 49 for a row without a city. What every path that projects a roster
    (allocate, rebalance, relocations) calls, so that a member's distances agree between them."""
    c = np.asarray(city, dtype=object)
    c = np.array(["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in c], dtype=object)
    x = np.asarray(lon, dtype=float)
    out = np.full(len(c), SHENZHEN_ZONE, dtype=np.int64)
    for name in np.unique(c):
        if name:
            m = c == name
            out[m] = city_zone(str(name), x[m])
    return out


def zone_of_region(region: str, city_zones: dict[str, int]) -> int:
    """A region name's zone (``"广州市/天河区"``, ``"南山区·IT"``) given the zones of the roster's
    cities (``{city_zh: zone}`` from :func:`zones_of`); a cross-district region is named by its
    city alone, a Shenzhen one has no city (49N)."""
    from geoalloc.rules import region_city, region_district

    city = region_city(region)
    if city:
        return city_zones.get(city) or city_zone(city)
    return city_zones.get(region_district(region), SHENZHEN_ZONE)


def _project(a: ArrayLike, b: ArrayLike, zone: int | ArrayLike, inverse: bool) -> NDArray[np.float64]:
    """(n, 2) array: lon/lat to UTM metres in ``zone`` (one for all points, or one per point), or
    back (``inverse``)."""
    a_, b_ = np.atleast_1d(np.asarray(a, dtype=float)), np.atleast_1d(np.asarray(b, dtype=float))
    if np.ndim(zone) == 0:
        x, y = _transformer(inverse, int(zone)).transform(a_, b_)  # type: ignore[arg-type]
        return np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])
    zones = np.broadcast_to(np.asarray(zone, dtype=np.int64), a_.shape)
    out = np.empty((len(a_), 2))
    for z in np.unique(zones):
        m = zones == z
        out[m, 0], out[m, 1] = _transformer(inverse, int(z)).transform(a_[m], b_[m])
    return out


def to_metres(lon: ArrayLike, lat: ArrayLike, zone: int | ArrayLike = SHENZHEN_ZONE) -> NDArray[np.float64]:
    """(n, 2) array of UTM x/y in metres, in ``zone`` (one for all points, or one per point)."""
    return _project(lon, lat, zone, False)


def point_to_metres(lon: float, lat: float, zone: int = SHENZHEN_ZONE) -> tuple[float, float]:
    """One point's UTM x/y in metres in ``zone``: :func:`to_metres` without the array round trip,
    which costs several times the projection itself for a single relocation."""
    x, y = _transformer(False, int(zone)).transform(float(lon), float(lat))
    return float(x), float(y)


def to_lonlat(x: ArrayLike, y: ArrayLike, zone: int | ArrayLike = SHENZHEN_ZONE) -> NDArray[np.float64]:
    """(n, 2) array of WGS-84 lon/lat from UTM metres in ``zone`` (one, or one per point)."""
    return _project(x, y, zone, True)


EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


def to_sphere(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.float64]:
    """(n, 3) points on a sphere of the Earth's mean radius, in metres. The straight line between
    two of them is their great-circle distance within 0.001% up to 100 km, and that is within
    0.5% of the WGS-84 geodesic anywhere: the same metric in every city at once, for matches that
    may pair points of different cities (people to branches of a national plan), where no one
    UTM zone is right for both."""
    lo, la = np.radians(np.asarray(lon, dtype=float)), np.radians(np.asarray(lat, dtype=float))
    c = np.cos(la)
    return EARTH_RADIUS_M * np.column_stack([np.atleast_1d(c * np.cos(lo)), np.atleast_1d(c * np.sin(lo)),
                                             np.atleast_1d(np.sin(la))])


def row_zones(frame: pd.DataFrame) -> NDArray[np.int64]:
    """The zone of each row of a table with ``lon`` (and, for a national roster, ``city_zh``):
    :func:`zones_of`, or 49 for every row of a table without a city."""
    if "city_zh" not in frame.columns:
        return np.full(len(frame), SHENZHEN_ZONE, dtype=np.int64)
    import pandas as pd

    return zones_of(frame["city_zh"].to_numpy(object), pd.to_numeric(frame["lon"], errors="coerce").to_numpy(float))
