"""plan.gpkg and plan.geojson: the plan for a GIS colleague (QGIS, geopandas), WGS-84.

GeoPackage layers: ``branches`` (points: the meeting sites), ``branch_areas`` (each branch's
area, the buffered hull of its members), ``members`` (points at the privacy grid, no names)
and ``districts`` (the official outlines). GeoJSON, one layer per file being the format's
rule, is one FeatureCollection whose features carry their layer in ``layer``. Written with
pyogrio through geopandas.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from geoalloc.districts import districts
from geoalloc.maps.privacy import DEFAULT_SNAP_M
from geoalloc.outputs.tables import branch_areas, branch_points, member_points, unassigned_reasons

__all__ = ["LAYERS", "plan_layers", "write_geojson", "write_gpkg"]

LAYERS = ("branches", "branch_areas", "members", "districts")
_BRANCH_FIELDS = ("branch_id", "district_zh", "site_id", "site_name", "size", "n_full", "mean_distance_m",
                  "max_distance_m", "joint", "secretary")
_MEMBER_FIELDS = ("member_id", "branch_id", "district_zh", "distance_m", "full_member", "status", "geo_precision")


def plan_layers(assignments: pd.DataFrame, branches: pd.DataFrame, report: dict, *,
                snap_m: float = DEFAULT_SNAP_M) -> dict[str, gpd.GeoDataFrame]:
    """The four layers as GeoDataFrames (EPSG:4326)."""
    bf = branches[[c for c in _BRANCH_FIELDS if c in branches.columns]].reset_index(drop=True).copy()
    blon, blat = branch_points(branches, snap_m)
    b = gpd.GeoDataFrame(bf, geometry=gpd.points_from_xy(blon, blat), crs="EPSG:4326")
    areas = gpd.GeoDataFrame(bf[["branch_id", "district_zh", "size"]].copy(),
                             geometry=gpd.GeoSeries(branch_areas(assignments, branches, snap_m)), crs="EPSG:4326")
    areas = areas[areas.geometry.notna()].reset_index(drop=True)
    a = assignments.reset_index(drop=True)
    mf = a[[c for c in _MEMBER_FIELDS if c in a.columns]].copy()
    why = unassigned_reasons(report)
    mf["unassigned_reason"] = [why.get(str(m), "") for m in mf["member_id"].astype(str)]
    mlon, mlat = member_points(a, snap_m)
    pts = gpd.points_from_xy(mlon, mlat)
    located = np.isfinite(mlon) & np.isfinite(mlat)
    m = gpd.GeoDataFrame(mf, geometry=gpd.GeoSeries([p if ok else None for p, ok in zip(pts, located)]),
                         crs="EPSG:4326")  # a member without a point keeps a row, without a geometry
    d = districts()[["name_zh", "name_en", "geometry"]].reset_index(drop=True)
    return {"branches": b, "branch_areas": areas, "members": m, "districts": gpd.GeoDataFrame(d, crs="EPSG:4326")}


def write_gpkg(path: str | Path, layers: dict[str, gpd.GeoDataFrame]) -> Path:
    """One GeoPackage with every layer (replaced whole: a plan file is never appended to)."""
    out = Path(path)
    out.unlink(missing_ok=True)
    for name in LAYERS:
        layers[name].to_file(out, layer=name, driver="GPKG", engine="pyogrio")
    return out


def write_geojson(path: str | Path, layers: dict[str, gpd.GeoDataFrame]) -> Path:
    """One FeatureCollection; each feature's ``layer`` property names its layer."""
    out = Path(path)
    parts = [gdf.assign(layer=name) for name, gdf in layers.items()]
    merged = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    out.unlink(missing_ok=True)
    merged.to_file(out, driver="GeoJSON", engine="pyogrio")
    return out
