"""The bundled Shenzhen gazetteer: districts, subdistricts, communities, named places.

Loaded once and cached; every table is read-only for callers. Coordinates are
WGS-84 (EPSG:4326). Subdistrict (街道) and community (社区) polygons come from
OpenStreetMap (ODbL 1.0, see ``data/districts/README.md``): whatever shows them or data
derived from them carries :data:`OSM_ATTRIBUTION`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

from geoalloc.paths import districts_dir

if TYPE_CHECKING:
    import geopandas as gpd

#: The attribution the ODbL requires wherever results derived from the OSM files are shown.
OSM_ATTRIBUTION = "© OpenStreetMap contributors, ODbL 1.0, https://www.openstreetmap.org/copyright"


@lru_cache(maxsize=1)
def districts() -> gpd.GeoDataFrame:
    """The 10 district polygons (9 official districts + 大鹏新区), indexed by ``name_zh``."""
    gdf = _read_file("districts_wgs84.geojson")
    return gdf.set_index("name_zh", drop=False)


def _read_file(name: str) -> gpd.GeoDataFrame:
    """A bundled polygon layer. geopandas is imported here, not with the module: the geocode
    command's district lookups use the cached shapes (:func:`_district_shapes`) and never need it."""
    import geopandas as gpd

    return gpd.read_file(districts_dir() / name)


@lru_cache(maxsize=1)
def city() -> BaseGeometry:
    """The outline of 深圳市."""
    return _read_file("city_wgs84.geojson").geometry.union_all()


@lru_cache(maxsize=1)
def city_prepared() -> PreparedGeometry:
    """A prepared city outline for fast point-in-city tests."""
    return prep(city())


@lru_cache(maxsize=1)
def subdistricts() -> pd.DataFrame:
    """The 74 subdistricts (街道) with their district and seed point."""
    return pd.read_csv(districts_dir() / "subdistricts.csv", dtype={"mca_code": str, "district_code": str})


@lru_cache(maxsize=1)
def communities() -> pd.DataFrame:
    """The 809 communities (社区) with their district and subdistrict (names only)."""
    return pd.read_csv(districts_dir() / "communities.csv", dtype={"subdistrict_mca_code": str})


@lru_cache(maxsize=1)
def subdistrict_zones() -> gpd.GeoDataFrame:
    """The 74 subdistrict (街道) polygons from OpenStreetMap (ODbL), with ``name_zh``, ``district_zh``
    and a representative point inside each (``label_lon``, ``label_lat``)."""
    return _read_file("subdistricts_osm_wgs84.geojson")


@lru_cache(maxsize=1)
def community_zones() -> gpd.GeoDataFrame:
    """The 241 community (社区) polygons OpenStreetMap has (南山, 福田, 罗湖, parts of 宝安 and 龙华), ODbL."""
    return _read_file("communities_osm_wgs84.geojson")


@lru_cache(maxsize=1)
def named_places() -> pd.DataFrame:
    """``gazetteer.csv``: estates, parks, stations, communities, subdistricts with district (and points where known)."""
    return pd.read_csv(districts_dir() / "gazetteer.csv", dtype=str, keep_default_na=False)


@lru_cache(maxsize=1)
def roads() -> pd.DataFrame:
    """Road names with the districts they occur in (``districts_zh``, ``;``-separated). Names only, no geometry."""
    return pd.read_csv(districts_dir() / "roads.csv", dtype=str, keep_default_na=False)


@lru_cache(maxsize=1)
def market_areas() -> pd.DataFrame:
    """Market-area (板块) names as listings and residents write them, with district and subdistrict."""
    return pd.read_csv(districts_dir() / "market_areas.csv", dtype=str, keep_default_na=False)


@lru_cache(maxsize=1)
def china_divisions() -> pd.DataFrame:
    """Every province, prefecture-level city and county-level unit of China (from jionlp's table)."""
    return pd.read_csv(districts_dir() / "china_divisions.csv", dtype=str, keep_default_na=False)


def district_names() -> list[str]:
    """District names in the bundled order (9 districts + 大鹏新区)."""
    return list(_district_shapes()[0])


@lru_cache(maxsize=1)
def _district_shapes() -> tuple[list[str], list[BaseGeometry]]:
    """District names and polygons in the bundled order, kept in the build cache (no GeoJSON read)."""
    from geoalloc.geocode.buildcache import cached_build, input_key

    path = districts_dir() / "districts_wgs84.geojson"
    key = input_key([path, Path(__file__)], packages=("shapely",))

    def build() -> tuple[list[str], list[BaseGeometry]]:
        gdf = districts()
        return list(gdf["name_zh"]), list(gdf.geometry)

    return cached_build("district-shapes", key, build, tuple)


@lru_cache(maxsize=1)
def _prepared_districts() -> tuple[list[str], list[BaseGeometry], np.ndarray]:
    """District names, prepared polygons and bounding boxes, for point tests in microseconds."""
    names, geoms = _district_shapes()
    for geom in geoms:
        shapely.prepare(geom)
    return list(names), geoms, np.array([g.bounds for g in geoms])


#: Cell size of the district lookup grid, in degrees (about 1 km).
GRID_DEG = 0.01
_BOUNDARY = -2  # a grid cell that a district line crosses: test the polygons
_OUTSIDE = -1


@dataclass(frozen=True)
class _Grid:
    """A lon/lat grid over the city: per cell, the one district wholly containing it, ``_OUTSIDE``
    when no district touches it, or ``_BOUNDARY``."""

    x0: float
    y0: float
    nx: int
    ny: int
    owner: list[int]


@lru_cache(maxsize=1)
def _district_grid() -> _Grid:
    """Built once (tens of milliseconds): most points of a relocation then need no polygon test,
    which was a tenth of a relocation's cost in the service."""
    _, geoms, boxes = _prepared_districts()
    x0, y0 = float(boxes[:, 0].min()), float(boxes[:, 1].min())
    nx = int(np.ceil((boxes[:, 2].max() - x0) / GRID_DEG)) + 1
    ny = int(np.ceil((boxes[:, 3].max() - y0) / GRID_DEG)) + 1
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny))
    cx, cy = x0 + gx.ravel() * GRID_DEG, y0 + gy.ravel() * GRID_DEG
    cells = shapely.box(cx, cy, cx + GRID_DEG, cy + GRID_DEG)
    owner = np.full(len(cells), _OUTSIDE, dtype=np.int64)
    for k, geom in enumerate(geoms):
        touched = shapely.intersects(geom, cells)
        inside = shapely.contains_properly(geom, cells)  # every point of the cell is interior
        owner[touched & (owner != _OUTSIDE)] = _BOUNDARY  # two districts touch it
        owner[touched & (owner == _OUTSIDE)] = np.where(inside[touched & (owner == _OUTSIDE)], k, _BOUNDARY)
    return _Grid(x0, y0, nx, ny, owner.tolist())


def district_at(lon: float, lat: float) -> str | None:
    """The district containing one point (None outside Shenzhen): the fast path for a single
    relocation (a grid cell inside one district answers at once; near a line, the prepared
    polygons decide, exactly as :func:`locate_districts` does)."""
    names, geoms, boxes = _prepared_districts()
    grid = _district_grid()
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    ix, iy = math.floor((lon - grid.x0) / GRID_DEG), math.floor((lat - grid.y0) / GRID_DEG)
    if not (0 <= ix < grid.nx and 0 <= iy < grid.ny):
        return None
    k = grid.owner[iy * grid.nx + ix]
    if k != _BOUNDARY:
        return None if k == _OUTSIDE else names[k]
    for name, geom, (x0, y0, x1, y1) in zip(names, geoms, boxes):
        if x0 <= lon <= x1 and y0 <= lat <= y1 and shapely.contains_xy(geom, lon, lat):
            return name
    return None


def locate_districts(lon: ArrayLike, lat: ArrayLike) -> pd.Series:
    """The district (``name_zh``) containing each point, or None outside the city.

    Vectorised over the points for each of the ten prepared polygons, so it is cheap for a
    whole roster and for one point alike.
    """
    x = np.asarray(lon, dtype=float).ravel()
    y = np.asarray(lat, dtype=float).ravel()
    out = np.full(len(x), None, dtype=object)
    names, geoms, boxes = _prepared_districts()
    todo = np.isfinite(x) & np.isfinite(y)
    for name, geom, (x0, y0, x1, y1) in zip(names, geoms, boxes):
        cand = todo & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        if cand.any():
            idx = np.flatnonzero(cand)
            hit = idx[shapely.contains_xy(geom, x[idx], y[idx])]
            out[hit] = name
            todo[hit] = False
    return pd.Series(out, dtype=object)
