"""The bundled Shenzhen gazetteer: districts, subdistricts, communities.

Loaded once and cached; every table is read-only for callers. Coordinates are
WGS-84 (EPSG:4326). The subdistrict zones are approximate Voronoi cells and must
never be presented as official boundaries.
"""

from __future__ import annotations

from functools import lru_cache

import geopandas as gpd
import pandas as pd
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


def locate_districts(lon: "pd.Series | list[float]", lat: "pd.Series | list[float]") -> pd.Series:
    """The district (``name_zh``) containing each point, or None outside the city.

    Vectorised with a spatial join, so it is cheap for whole rosters.
    """
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    joined = gpd.sjoin(pts, districts()[["name_zh", "geometry"]].reset_index(drop=True), how="left", predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    out = joined["name_zh"].reindex(pts.index)
    return out.astype(object).where(out.notna(), None).reset_index(drop=True)
