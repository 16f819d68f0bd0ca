"""The bundled Shenzhen gazetteer: districts, subdistricts, communities.

Loaded once and cached; every table is read-only for callers. Coordinates are
WGS-84 (EPSG:4326). The subdistrict zones are approximate Voronoi cells and must
never be presented as official boundaries.
"""

from __future__ import annotations

from functools import lru_cache

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike
from shapely.geometry.base import BaseGeometry
from shapely.prepared import PreparedGeometry, prep

from geoalloc.paths import districts_dir


@lru_cache(maxsize=1)
def districts() -> gpd.GeoDataFrame:
    """The 10 district polygons (9 official districts + 大鹏新区), indexed by ``name_zh``."""
    gdf = gpd.read_file(districts_dir() / "districts_wgs84.geojson")
    return gdf.set_index("name_zh", drop=False)


@lru_cache(maxsize=1)
def city() -> BaseGeometry:
    """The outline of 深圳市."""
    return gpd.read_file(districts_dir() / "city_wgs84.geojson").geometry.union_all()


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
    """APPROXIMATE subdistrict zones (Voronoi cells of the seeds). Not official boundaries."""
    return gpd.read_file(districts_dir() / "subdistricts_approx_voronoi_wgs84.geojson")


def district_names() -> list[str]:
    """District names in the bundled order (9 districts + 大鹏新区)."""
    return list(districts()["name_zh"])


@lru_cache(maxsize=1)
def _prepared_districts() -> tuple[list[str], list[BaseGeometry], np.ndarray]:
    """District names, prepared polygons and bounding boxes, for point tests in microseconds."""
    gdf = districts()
    geoms = list(gdf.geometry)
    for geom in geoms:
        shapely.prepare(geom)
    return list(gdf["name_zh"]), geoms, np.array([g.bounds for g in geoms])


def district_at(lon: float, lat: float) -> str | None:
    """The district containing one point (None outside Shenzhen): the fast path for a single
    relocation (bounding box first, then the prepared polygon)."""
    names, geoms, boxes = _prepared_districts()
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
