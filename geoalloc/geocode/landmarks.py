"""User-configured landmark tables (for example metro stations) and matching them in addresses.

The user may supply one (name, lon, lat, district); it takes precedence over the 275 OSM stations
bundled in the gazetteer (see :mod:`geoalloc.geocode.lexicon`). An address that names a landmark
as a station (``民治地铁站附近``, ``车公庙站``, ``地铁华侨城站``) is placed at the landmark's
coordinates, which beats a subdistrict's point by kilometres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geoalloc.geocode.datum import parse_datum, to_wgs84
from geoalloc.geocode.gazetteer import DISTRICT, gazetteer
from geoalloc.geocode.normalise import normalise

__all__ = ["Landmark", "LandmarkIndex", "load_landmarks", "validate_landmarks"]

# Column names accepted for each field (the first one is the canonical name).
_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "name_zh", "station_zh", "station", "landmark"),
    "lon": ("lon", "lng", "longitude"),
    "lat": ("lat", "latitude"),
    "district": ("district", "district_zh"),
    "subdistrict": ("subdistrict", "subdistrict_zh", "subdistrict_approx_zh"),
    "datum": ("datum",),
}
# A generous box around Shenzhen: catches swapped lon/lat and tables in another city.
_LON_RANGE = (113.6, 114.8)
_LAT_RANGE = (22.3, 23.0)
_STATION_SUFFIXES = ("地铁站", "站")


@dataclass(frozen=True)
class Landmark:
    """One landmark, WGS-84."""

    name: str
    lon: float
    lat: float
    district_zh: str
    subdistrict_zh: str | None


def _strip_station(name: str) -> str:
    for suffix in _STATION_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def _district_name(text: str) -> str | None:
    """Today's district for a typed district name (罗湖, 罗湖区, 龙华新区), or None."""
    for cand in gazetteer().tokens.get(normalise(text), ()):
        if cand.level == DISTRICT:
            return cand.name
    return None


def validate_landmarks(raw: pd.DataFrame, source: str = "landmark table") -> pd.DataFrame:
    """Check a landmark table and return it as columns name, lon, lat, district_zh, subdistrict_zh.

    Errors name the row (1-based data row, as in a spreadsheet without its header) and the field,
    and all of them are reported at once.
    """
    cols: dict[str, str] = {}
    lower = {str(c).strip().lower(): c for c in raw.columns}
    for field, names in _ALIASES.items():
        for n in names:
            if n in lower:
                cols[field] = lower[n]
                break
    missing = [f for f in ("name", "lon", "lat") if f not in cols]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {', '.join(missing)}; expected name, lon, lat, district "
            f"(or station_zh, lon, lat, district_zh); found {', '.join(map(str, raw.columns))}"
        )
    problems: list[str] = []
    rows: list[Landmark] = []
    seen: dict[str, int] = {}
    lons = pd.to_numeric(raw[cols["lon"]], errors="coerce").to_numpy(dtype=float, copy=True)
    lats = pd.to_numeric(raw[cols["lat"]], errors="coerce").to_numpy(dtype=float, copy=True)
    if "datum" in cols:
        datums = raw[cols["datum"]].tolist()
        for i, d in enumerate(datums):
            try:
                lon_w, lat_w = to_wgs84(lons[i], lats[i], parse_datum(d))
            except ValueError as exc:
                problems.append(f"row {i + 1}, field datum: {exc}")
                continue
            lons[i], lats[i] = lon_w, lat_w
    for i, raw_name in enumerate(raw[cols["name"]].tolist()):
        where = f"row {i + 1}"
        name = _strip_station(normalise(raw_name))
        if len(name) < 2:
            problems.append(f"{where}, field name: {raw_name!r} is empty or shorter than 2 characters")
            continue
        lon, lat = lons[i], lats[i]
        if not np.isfinite(lon):
            problems.append(f"{where}, field lon: {raw.iloc[i][cols['lon']]!r} is not a number")
            continue
        if not np.isfinite(lat):
            problems.append(f"{where}, field lat: {raw.iloc[i][cols['lat']]!r} is not a number")
            continue
        if not (_LON_RANGE[0] <= lon <= _LON_RANGE[1] and _LAT_RANGE[0] <= lat <= _LAT_RANGE[1]):
            problems.append(
                f"{where} ({name}): point lon={lon}, lat={lat} is not in or near Shenzhen "
                f"(lon {_LON_RANGE[0]}..{_LON_RANGE[1]}, lat {_LAT_RANGE[0]}..{_LAT_RANGE[1]}); "
                "are lon and lat swapped?"
            )
            continue
        district: str | None = None
        if "district" in cols:
            value = raw.iloc[i][cols["district"]]
            if isinstance(value, str) and value.strip():
                district = _district_name(value)
                if district is None:
                    problems.append(f"{where} ({name}), field district: {value!r} is not a Shenzhen district")
                    continue
        sub: str | None = None
        if "subdistrict" in cols:
            value = raw.iloc[i][cols["subdistrict"]]
            if isinstance(value, str) and value.strip():
                sub = normalise(value)
                if sub not in gazetteer().sub_district:
                    sub = None  # an unknown subdistrict is only a hint: drop it, keep the landmark
        if name in seen:
            prev = rows[seen[name]]
            if abs(prev.lon - lon) > 1e-6 or abs(prev.lat - lat) > 1e-6:
                problems.append(f"{where}: name {name} repeats row {seen[name] + 1} with different coordinates")
            continue
        seen[name] = len(rows)
        rows.append(Landmark(name, float(lon), float(lat), district or "", sub))
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(f"{source}: {len(problems)} invalid row(s): {shown}")
    out = pd.DataFrame(
        {
            "name": [r.name for r in rows],
            "lon": [r.lon for r in rows],
            "lat": [r.lat for r in rows],
            "district_zh": [r.district_zh for r in rows],
            "subdistrict_zh": [r.subdistrict_zh for r in rows],
        }
    )
    need = out["district_zh"] == ""
    if need.any():
        from geoalloc.districts import locate_districts

        found = locate_districts(out.loc[need, "lon"].tolist(), out.loc[need, "lat"].tolist())
        bad = [n for n, d in zip(out.loc[need, "name"], found) if d is None]
        if bad:
            raise ValueError(f"{source}: no district given and the point is outside Shenzhen for: {', '.join(bad[:20])}")
        out.loc[need, "district_zh"] = list(found)
    out.attrs["geoalloc_landmarks"] = True  # marks a validated table, so it is not checked twice
    return out


def load_landmarks(path: str | Path) -> pd.DataFrame:
    """Read and validate a landmark table (CSV, or Excel by extension)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"landmark table not found: {p}")
    if p.suffix.lower() in (".xlsx", ".xls"):
        raw = pd.read_excel(p, dtype=str)
    else:
        raw = pd.read_csv(p, dtype=str, encoding="utf-8-sig")
    return validate_landmarks(raw, source=str(p))


class LandmarkIndex:
    """Finds a landmark named as a station in a normalised address."""

    def __init__(self, table: pd.DataFrame | None) -> None:
        self._by_name: dict[str, Landmark] = {}
        if table is not None and len(table):
            t = table if table.attrs.get("geoalloc_landmarks") else validate_landmarks(table)
            for r in t.itertuples(index=False):
                sub = r.subdistrict_zh if isinstance(r.subdistrict_zh, str) and r.subdistrict_zh else None
                self._by_name[str(r.name)] = Landmark(str(r.name), float(r.lon), float(r.lat), str(r.district_zh), sub)
        self._max = max((len(n) for n in self._by_name), default=0)

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        """The landmark names (normalised, without 站)."""
        return list(self._by_name)

    def find(self, text: str) -> Landmark | None:
        """The first landmark written as ``X站``, ``X地铁站`` or ``地铁X站`` in ``text`` (longest name wins)."""
        if not self._by_name:
            return None
        start = 0
        while True:
            i = text.find("站", start)
            if i < 0:
                return None
            j = i - 2 if text.startswith("地铁", i - 2) and i >= 2 else i
            for length in range(min(self._max, j), 1, -1):
                hit = self._by_name.get(text[j - length : j])
                if hit is not None:
                    return hit
            start = i + 1
