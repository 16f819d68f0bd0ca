"""The plan as tables a planner reads: Chinese (or English) headers, members at the privacy grid.

The CSVs keep the machine columns (the plan directory is read back from them); the xlsx
sheets and GeoPackage layers are for people, so their columns are named in words and their
member points are never more precise than the map's (``snap_m``, 200 m by default; 0 is the
explicit opt-in to exact points). Branch sites are snapped too, as they are often a member's
home, except given service-centre sites (``site_id``), which are public places.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPoint

from geoalloc.maps.privacy import DEFAULT_SNAP_M, blur_points
from geoalloc.maps.styles import HULL_BUFFER_M, labels
from geoalloc.projection import row_zones, to_lonlat, to_metres

__all__ = [
    "HEADERS",
    "branch_areas",
    "branch_points",
    "branch_sheet",
    "member_points",
    "member_sheet",
    "moves_sheet",
    "unassigned_reasons",
]

HEADERS: dict[str, dict[str, str]] = {
    "zh": {
        "branch_id": "支部编号", "district_zh": "所属区", "region": "分组", "site_id": "服务中心编号",
        "site_name": "服务中心", "lon": "经度", "lat": "纬度", "size": "人数", "n_full": "正式党员数",
        "mean_distance_m": "平均距离（米）", "max_distance_m": "最远距离（米）", "joint": "跨区联合支部",
        "secretary": "书记", "secretary_suggestion": "建议书记", "advisers": "指导员", "state": "人数状态",
        "member_id": "成员编号", "distance_m": "到支部距离（米）", "geo_precision": "定位精度",
        "full_member": "正式党员", "status": "状态", "reason": "未分配原因", "name": "姓名",
        "from_branch": "原支部", "to_branch": "新支部", "move_reason": "调整原因", "point_note": "位置说明",
    },
    "en": {
        "branch_id": "branch", "district_zh": "district", "region": "group", "site_id": "site id",
        "site_name": "service centre", "lon": "longitude", "lat": "latitude", "size": "members",
        "n_full": "full members", "mean_distance_m": "mean distance (m)", "max_distance_m": "max distance (m)",
        "joint": "joint branch", "secretary": "secretary", "secretary_suggestion": "suggested secretary",
        "advisers": "advisers", "state": "size state", "member_id": "member", "distance_m": "distance (m)",
        "geo_precision": "precision", "full_member": "full member", "status": "status",
        "reason": "not placed because", "name": "name", "from_branch": "from branch", "to_branch": "to branch",
        "move_reason": "reason", "point_note": "point",
    },
}
_WHY = {"lost_contact": "why_lost_contact", "transfer_out": "why_transfer_out", "out_of_city": "why_out_of_city",
        "not_located": "why_not_located"}


def _rename(frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    h = HEADERS[lang]
    return frame.rename(columns={c: h.get(c, c) for c in frame.columns})


def unassigned_reasons(report: dict[str, Any]) -> dict[str, str]:
    """member_id -> reason code (lost_contact, transfer_out, out_of_city, not_located) from report.json."""
    return {str(u.get("member_id")): str(u.get("reason", "")) for u in report.get("unassigned", []) or []
            if isinstance(u, dict)}


def reason_text(code: str, lang: str) -> str:
    """A reason code in words."""
    L = labels(lang)
    key = _WHY.get(code)
    return L[key] if key else code


def _state(size: pd.Series, report: dict[str, Any], lang: str) -> list[str]:
    L = labels(lang)
    lo, hi = int(report.get("min_size", 3)), int(report.get("max_size", 50))
    return [L["under"] if s < lo else L["over"] if s > hi else L["within"] for s in size]


def _site_mask(branches: pd.DataFrame) -> np.ndarray:
    if "site_id" not in branches.columns:
        return np.zeros(len(branches), dtype=bool)
    sid = branches["site_id"].astype("string").fillna("").str.strip()
    return (sid != "").to_numpy()


def branch_points(branches: pd.DataFrame, snap_m: float = DEFAULT_SNAP_M) -> tuple[np.ndarray, np.ndarray]:
    """Branch sites as shown to people: snapped, except given service-centre sites."""
    lon = pd.to_numeric(branches["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(branches["lat"], errors="coerce").to_numpy(float)
    slon, slat = blur_points(lon, lat, pd.Series(["exact"] * len(branches)), snap_m)
    keep = _site_mask(branches)
    return np.where(keep, lon, slon), np.where(keep, lat, slat)


def member_points(assignments: pd.DataFrame, snap_m: float = DEFAULT_SNAP_M) -> tuple[np.ndarray, np.ndarray]:
    """Member points at the privacy grid (exact/landmark points snapped, centroids kept)."""
    lon = pd.to_numeric(assignments["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(assignments["lat"], errors="coerce").to_numpy(float)
    prec = assignments["geo_precision"] if "geo_precision" in assignments else pd.Series(["exact"] * len(lon))
    return blur_points(lon, lat, prec.reset_index(drop=True), snap_m)


def branch_sheet(branches: pd.DataFrame, report: dict[str, Any], *, lang: str = "zh",
                 snap_m: float = DEFAULT_SNAP_M) -> pd.DataFrame:
    """支部: one row per branch, in words."""
    b = branches.copy()
    b["lon"], b["lat"] = branch_points(branches, snap_m)
    b["lon"], b["lat"] = b["lon"].round(6), b["lat"].round(6)
    b["state"] = _state(b["size"], report, lang)
    yes, no = ("是", "") if lang == "zh" else ("yes", "")
    if "joint" in b:
        b["joint"] = [yes if int(v or 0) else no for v in pd.to_numeric(b["joint"], errors="coerce").fillna(0)]
    cols = [c for c in ("branch_id", "district_zh", "site_id", "site_name", "size", "n_full", "state",
                        "mean_distance_m", "max_distance_m", "lon", "lat", "joint", "secretary",
                        "secretary_suggestion", "advisers") if c in b.columns]
    return _rename(b[cols], lang)


def member_sheet(assignments: pd.DataFrame, report: dict[str, Any], *, lang: str = "zh",
                 snap_m: float = DEFAULT_SNAP_M, names: pd.Series | None = None) -> pd.DataFrame:
    """成员: one row per roster member, points at the privacy grid, names only when given."""
    L = labels(lang)
    a = assignments.reset_index(drop=True).copy()
    a["lon"], a["lat"] = member_points(a, snap_m)
    a["lon"], a["lat"] = a["lon"].round(6), a["lat"].round(6)
    why = unassigned_reasons(report)
    bid = a["branch_id"].astype("string").fillna("")
    a["reason"] = [reason_text(why.get(str(m), "not_located"), lang) if b == "" else ""
                   for m, b in zip(a["member_id"].astype(str), bid)]
    a["geo_precision"] = [L.get(f"precision_{p}", p) for p in a.get("geo_precision", pd.Series(["exact"] * len(a)))]
    a["status"] = [L.get(f"status_{s}", s) for s in a["status"].astype(str)]
    yes, no = ("是", "否") if lang == "zh" else ("yes", "no")
    a["full_member"] = [yes if int(v) else no for v in pd.to_numeric(a["full_member"], errors="coerce").fillna(1)]
    note = (f"{int(snap_m)} 米网格" if lang == "zh" else f"{int(snap_m)} m grid") if snap_m > 0 else (
        "精确坐标" if lang == "zh" else "exact")
    a["point_note"] = note
    cols = ["member_id"]
    if names is not None:
        lookup = names[~names.index.duplicated(keep="first")]
        a["name"] = [lookup.get(m, "") for m in a["member_id"].astype(str)]
        cols.append("name")
    cols += ["branch_id", "district_zh", "distance_m", "full_member", "status", "reason", "geo_precision",
             "lon", "lat", "point_note"]
    return _rename(a[cols], lang)


def moves_sheet(moves: pd.DataFrame, *, lang: str = "zh") -> pd.DataFrame:
    """调整: who moved from which branch to which, and why, in words."""
    L = labels(lang)
    m = moves.copy()
    reason = m["reason"] if "reason" in m else pd.Series(["changed"] * len(m))
    m["move_reason"] = [L.get(f"reason_{r}", str(r)) for r in reason.astype(str)]
    cols = [c for c in ("member_id", "from_branch", "to_branch", "move_reason") if c in m.columns]
    return _rename(m[cols], lang)


def branch_areas(assignments: pd.DataFrame, branches: pd.DataFrame, snap_m: float = DEFAULT_SNAP_M) -> list[Any]:
    """Each branch's area (the buffered hull of its members' grid points, WGS-84), or None."""
    a = assignments[assignments["branch_id"].astype("string").fillna("") != ""]
    lon, lat = member_points(a, snap_m)
    ok = np.isfinite(lon) & np.isfinite(lat)
    zones = row_zones(a)[ok]  # a branch lies in one city: its members' zone is its own
    xy = to_metres(lon[ok], lat[ok], zones) if ok.any() else np.zeros((0, 2))
    bids = a["branch_id"].astype(str).to_numpy()[ok]
    out: list[Any] = []
    for bid in branches["branch_id"].astype(str):
        mine = bids == bid
        pts = xy[mine]
        if len(pts) == 0:
            out.append(None)
            continue
        zone = int(zones[mine][0])
        hull = MultiPoint([tuple(p) for p in np.unique(pts, axis=0)]).convex_hull.buffer(HULL_BUFFER_M, quad_segs=4)
        out.append(shapely.transform(hull, lambda c, z=zone: to_lonlat(c[:, 0], c[:, 1], z)))
    return out
