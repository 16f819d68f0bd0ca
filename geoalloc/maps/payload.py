"""Turn one plan into the compact data block its map draws from.

Why one block: 7,000 folium markers would be megabytes of repeated JavaScript; columnar
integer arrays (1e-5 degree steps from an origin) are about 20 bytes a member and are drawn
on one canvas by ``runtime.js``. Everything positional is already blurred (privacy) and
converted to the tiles' datum (GCJ-02 for AMap) here, so the browser does no geodesy.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPoint
from shapely.geometry.base import BaseGeometry

from geoalloc.geocode.datum import from_wgs84
from geoalloc.maps.privacy import DEFAULT_SNAP_M, blur_points
from geoalloc.maps.styles import (
    HULL_BUFFER_M,
    PALETTE,
    STATE_COLOURS,
    BranchState,
    branch_radius,
    branch_state,
    neighbour_colours,
)
from geoalloc.model import GeoPrecision, MemberStatus
from geoalloc.projection import row_zones, to_lonlat, to_metres

SCALE = 100_000  # 1e-5 degree (about 1 m) integer steps
PRECISIONS = [p.value for p in GeoPrecision]
STATUSES = [s.value for s in MemberStatus]
STATES = [BranchState.UNDER, BranchState.WITHIN, BranchState.OVER]
DISTRICT_SIMPLIFY_DEG = 0.0004  # about 40 m: outlines stay recognisable, the file stays small


@dataclass
class Projector:
    """WGS-84 -> the tiles' datum -> integer steps from a fixed origin."""

    datum: str
    origin: tuple[float, float] = (113.7, 22.4)

    def lonlat(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = from_wgs84(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), self.datum)
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    def ints(self, lon: Any, lat: Any) -> tuple[list[int], list[int]]:
        x, y = self.lonlat(lon, lat)
        xi = np.rint((x - self.origin[0]) * SCALE).astype(np.int64)
        yi = np.rint((y - self.origin[1]) * SCALE).astype(np.int64)
        return xi.tolist(), yi.tolist()

    def geometry(self, geom: BaseGeometry) -> BaseGeometry:
        def convert(coords: np.ndarray) -> np.ndarray:
            x, y = self.lonlat(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])

        return shapely.transform(geom, convert)

    def rings(self, geom: BaseGeometry) -> list[list[int]]:
        """Polygon rings as flat ``[x0, y0, x1, y1, ...]`` integer lists (holes ignored)."""
        geom = self.geometry(geom)
        polys = list(getattr(geom, "geoms", [geom]))
        out: list[list[int]] = []
        for poly in polys:
            if poly.is_empty or poly.geom_type != "Polygon":
                continue
            coords = np.asarray(poly.exterior.coords)
            xi = np.rint((coords[:, 0] - self.origin[0]) * SCALE).astype(np.int64)
            yi = np.rint((coords[:, 1] - self.origin[1]) * SCALE).astype(np.int64)
            out.append(np.column_stack([xi, yi]).ravel().tolist())
        return out


@dataclass
class PlanView:
    """What one map shows, plus the figures tests and the summary panel read."""

    payload: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _hull(points_m: np.ndarray) -> BaseGeometry:
    hull = MultiPoint([tuple(p) for p in np.unique(points_m, axis=0)]).convex_hull
    return hull.buffer(HULL_BUFFER_M, quad_segs=3).simplify(25.0)


def _to_lonlat_geom(geom_m: BaseGeometry, zone: int) -> BaseGeometry:
    def convert(coords: np.ndarray) -> np.ndarray:
        return to_lonlat(coords[:, 0], coords[:, 1], zone)

    return shapely.transform(geom_m, convert)


def _round_m(values: pd.Series, step: int = 10) -> list[int | None]:
    return [None if pd.isna(v) else int(round(float(v) / step) * step) for v in values]


def build_view(
    assignments: pd.DataFrame,
    branches: pd.DataFrame,
    *,
    min_size: int,
    max_size: int,
    min_full: int,
    datum: str,
    snap_m: float = DEFAULT_SNAP_M,
    names: pd.Series | None = None,
    show_names: bool = False,
    moved: set[str] | None = None,
) -> PlanView:
    """The payload of one plan: branches, members, hulls; frames must be cleaned already."""
    proj = Projector(datum)
    branch_index = {bid: i for i, bid in enumerate(branches["branch_id"])}

    # --- branches: sites blurred like exact member points (a site is often a member's home)
    b_lon, b_lat = blur_points(branches["lon"].to_numpy(), branches["lat"].to_numpy(),
                               pd.Series([GeoPrecision.EXACT.value] * len(branches)), snap_m)
    site = None
    if "site_id" in branches.columns:  # given service centres are public places: drawn where they are
        sid = branches["site_id"].astype("string").fillna("").str.strip()
        sname = (branches["site_name"] if "site_name" in branches.columns else sid).astype("string").fillna("")
        at_site = (sid != "").to_numpy()
        b_lon = np.where(at_site, branches["lon"].to_numpy(dtype=float), b_lon)
        b_lat = np.where(at_site, branches["lat"].to_numpy(dtype=float), b_lat)
        site = [f"{n} ({i})" if i else "" for i, n in zip(sid, sname)]
    bx, by = proj.ints(b_lon, b_lat)
    states = [branch_state(int(s), min_size, max_size) for s in branches["size"]]
    colours = neighbour_colours(to_metres(branches["lon"], branches["lat"])) if len(branches) else []
    secretary = None
    if show_names and "secretary" in branches.columns:
        secretary = ["" if pd.isna(v) else str(v) for v in branches["secretary"]]
    b_payload: dict[str, Any] = {
        "id": [str(v) for v in branches["branch_id"]],
        "x": bx,
        "y": by,
        "district": [str(v) for v in branches["district_zh"]],
        "size": [int(v) for v in branches["size"]],
        "full": [None if pd.isna(v) else int(v) for v in branches["n_full"]],
        "mean": _round_m(branches["mean_distance_m"]),
        "max": _round_m(branches["max_distance_m"]),
        "state": [STATES.index(s) for s in states],
        "colour": colours,
        "joint": [int(v) for v in branches["joint"]],
        "r": [branch_radius(s) for s in branches["size"]],
        "secretary": secretary,
        "site": site,
    }

    # --- members: only those with a location (precision "none" has no point to draw)
    has_point = assignments["lon"].notna() & assignments["lat"].notna()
    has_point &= assignments["geo_precision"] != GeoPrecision.NONE.value
    drawn = assignments[has_point]
    m_lon, m_lat = blur_points(drawn["lon"].to_numpy(), drawn["lat"].to_numpy(), drawn["geo_precision"], snap_m)
    mx, my = proj.ints(m_lon, m_lat)
    bidx = [branch_index.get(b, -1) if b is not None else -1 for b in drawn["branch_id"]]
    m_payload: dict[str, Any] = {
        "x": mx,
        "y": my,
        "b": bidx,
        "p": [PRECISIONS.index(p) for p in drawn["geo_precision"]],
        "s": [STATUSES.index(s) if s in STATUSES else 0 for s in drawn["status"]],
        "d": _round_m(drawn["distance_m"], 50) if "distance_m" in drawn else [None] * len(drawn),
    }
    if moved is not None:
        m_payload["mv"] = [1 if m in moved else 0 for m in drawn["member_id"]]
    if show_names:
        m_payload["id"] = [str(v) for v in drawn["member_id"]]
        if names is not None:
            lookup = names.copy()
            lookup.index = lookup.index.astype(str).str.strip()
            lookup = lookup[~lookup.index.duplicated(keep="first")]
            m_payload["name"] = [
                "" if pd.isna(lookup.get(str(mid))) else str(lookup.get(str(mid))) for mid in drawn["member_id"]
            ]

    # --- hulls: light areas per branch from the blurred member points
    hulls: list[list[Any]] = []
    if len(drawn):
        zones = row_zones(drawn)  # a branch lies in one city: its members' zone is its own
        xy_m = to_metres(m_lon, m_lat, zones)
        bidx_arr = np.asarray(bidx)
        for i in range(len(branches)):
            mine = bidx_arr == i
            pts = xy_m[mine]
            if len(pts) == 0:
                continue
            rings = proj.rings(_to_lonlat_geom(_hull(pts), int(zones[mine][0])))
            if rings:
                hulls.append([i, rings[0]])

    n_assigned_drawn = int(sum(1 for b in bidx if b >= 0))
    counts = {
        "branches": len(branches),
        "members": len(drawn),
        "members_assigned": n_assigned_drawn,
        "members_unassigned": len(drawn) - n_assigned_drawn,
        "members_without_point": int((~has_point).sum()),
        "hulls": len(hulls),
        "moved": int(sum(m_payload.get("mv", []))),
    }
    payload = {
        "origin": list(proj.origin),
        "scale": SCALE,
        "datum": datum,
        "palette": list(PALETTE),
        "stateColours": [STATE_COLOURS[s] for s in STATES],
        "branches": b_payload,
        "members": m_payload,
        "hulls": hulls,
        "counts": counts,
    }
    return PlanView(payload=payload, counts=counts)


def outline_payload(gdf: Any, proj: Projector, *, names: list[str], label_points: list[tuple[float, float]] | None,
                    dashed: bool) -> list[dict[str, Any]]:
    """District or zone outlines, simplified, in the map's datum, each with a label point."""
    out = []
    for i, geom in enumerate(gdf.geometry):
        simple = geom.simplify(DISTRICT_SIMPLIFY_DEG, preserve_topology=True)
        if label_points is not None:
            lon, lat = label_points[i]
        else:
            rp = geom.representative_point()
            lon, lat = rp.x, rp.y
        lx, ly = proj.ints([lon], [lat])
        out.append({"name": names[i], "rings": proj.rings(simple), "label": [lx[0], ly[0]], "dashed": dashed})
    return out


def escape_text(value: Any) -> str:
    """HTML-escaped text for panels built in Python."""
    return html.escape("" if value is None else str(value), quote=True)


__all__ = ["PlanView", "Projector", "build_view", "outline_payload", "escape_text"]
