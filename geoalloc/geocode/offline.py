"""The offline geocoder: parse (memoised per address) + deterministic member spread.

Members placed at a zone's point (an estate's subdistrict, a community, a subdistrict, a
district) get a small offset derived from a hash of the member id, so they do not stack on one
pixel and reruns give the same points. The spread point is still only the zone's point (its
status stays ``approximate``), never a home. It must stay inside the zone's polygon (the OSM
community or subdistrict polygon, or the district); otherwise the zone's own point is used
(representative points lie inside their polygons). Near an edge the opposite direction and
shorter offsets are tried first, so members there do not all fall on the zone's point.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from geoalloc.geocode.gazetteer import gazetteer
from geoalloc.geocode.landmarks import LandmarkIndex
from geoalloc.geocode.lexicon import lexicon
from geoalloc.geocode.normalise import normalise
from geoalloc.geocode.parser import AddressParser, Parsed
from geoalloc.model import GeoPrecision, GeoStatus

__all__ = ["GeocodeResult", "OfflineGeocoder", "jitter_key", "jitter_uniforms"]

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQ = 111_320.0


@dataclass(frozen=True)
class GeocodeResult:
    """A placed (or unplaceable) address. ``lon``/``lat`` are WGS-84, or None when not placed."""

    lon: float | None
    lat: float | None
    precision: GeoPrecision
    status: GeoStatus
    district_zh: str | None = None
    subdistrict_zh: str | None = None
    community_zh: str | None = None
    reason: str = ""


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def jitter_key(member_id: object, address: object) -> str:
    """What seeds a member's jitter: the member id, or the normalised address when there is none."""
    return str(member_id) if not _missing(member_id) and str(member_id) != "" else "addr:" + normalise(address)


def jitter_uniforms(keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform [0, 1) numbers per key from a keyed BLAKE2 hash (stable across runs and machines)."""
    blake2b = hashlib.blake2b
    digests = b"".join([blake2b(k.encode("utf-8"), digest_size=8, person=b"geoalloc").digest() for k in keys])
    v = np.frombuffer(digests, dtype="<u8")
    return (v & 0xFFFFFFFF).astype(float) / 2.0**32, (v >> 32).astype(float) / 2.0**32


class OfflineGeocoder:
    """Geocodes Shenzhen addresses with the bundled gazetteer and an optional landmark table.

    ``landmarks`` is a table with columns name, lon, lat, district (see
    :func:`geoalloc.geocode.load_landmarks`); without it, no address gets ``landmark`` precision.
    """

    def __init__(self, landmarks: pd.DataFrame | None = None, *, cache_size: int = 1_000_000) -> None:
        self._gaz = gazetteer()
        self._parser = AddressParser(self._gaz, lexicon(), LandmarkIndex(landmarks))
        self._cache_size = cache_size
        self._by_raw: dict[str, Parsed] = {}
        self._by_norm: dict[str, Parsed] = {}

    def parse(self, address: object) -> Parsed:
        """The memoised parse of one address (before jitter)."""
        raw = address if isinstance(address, str) else ("" if _missing(address) else str(address))
        hit = self._by_raw.get(raw)
        if hit is not None:
            return hit
        norm = normalise(raw)
        hit = self._by_norm.get(norm)
        if hit is None:
            hit = self._parser.parse(norm)
            if len(self._by_norm) >= self._cache_size:
                self._by_norm.clear()
            self._by_norm[norm] = hit
        if len(self._by_raw) >= self._cache_size:
            self._by_raw.clear()
        self._by_raw[raw] = hit
        return hit

    def place(self, parsed: Sequence[Parsed], keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Final lon/lat arrays (NaN where not placed): base points plus keyed jitter, kept in-district."""
        n = len(parsed)
        lon = np.array([np.nan if p.lon is None else p.lon for p in parsed], dtype=float)
        lat = np.array([np.nan if p.lat is None else p.lat for p in parsed], dtype=float)
        moving_rows = [i for i, p in enumerate(parsed) if p.jitter_m > 0]
        if n == 0 or not moving_rows:
            return lon, lat
        moving = np.array(moving_rows, dtype=np.intp)
        radius = np.array([parsed[i].jitter_m for i in moving_rows], dtype=float)
        u1, u2 = jitter_uniforms([keys[i] for i in moving_rows])
        r = radius * np.sqrt(u1)
        theta = 2.0 * np.pi * u2
        base_lon, base_lat = lon[moving], lat[moving]
        dx = r * np.cos(theta) / (_M_PER_DEG_LON_EQ * np.cos(np.radians(base_lat)))
        dy = r * np.sin(theta) / _M_PER_DEG_LAT
        # Rows by the polygon they must stay in (each zone's rows are moved together; zones never share rows).
        by_zone: dict[tuple[str, str | None], list[int]] = {}
        for j, i in enumerate(moving_rows):
            p = parsed[i]
            by_zone.setdefault(p.zone or ("district", p.district_zh), []).append(j)
        groups = [(self._zone_geom(f"{kind}:{name}"), np.array(idx, dtype=np.intp))
                  for (kind, name), idx in by_zone.items()]
        out_lon, out_lat = base_lon.copy(), base_lat.copy()
        # Near a district edge, try the opposite direction and shorter offsets before the seed itself.
        for scale in (1.0, -1.0, 0.5, -0.5, 0.25, -0.25):
            if not groups:
                break
            left = []
            for geom, idx in groups:
                if geom is None:
                    continue
                jl = base_lon[idx] + scale * dx[idx]
                jb = base_lat[idx] + scale * dy[idx]
                inside = shapely.contains_xy(geom, jl, jb)
                hit = idx[inside]
                out_lon[hit] = jl[inside]
                out_lat[hit] = jb[inside]
                if not inside.all():
                    left.append((geom, idx[~inside]))
            groups = left
        lon[moving] = out_lon
        lat[moving] = out_lat
        return lon, lat

    def _zone_geom(self, key: str) -> object:
        kind, _, name = key.partition(":")
        g = self._gaz
        if kind == "community":
            sub, _, comm = name.partition("/")
            return g.comm_geom.get((sub, comm))
        if kind == "subdistrict":
            return g.sub_geom.get(name)
        return g.district_geom.get(name)

    def geocode(self, address: str, member_id: str | None = None) -> GeocodeResult:
        """Geocode one address. ``member_id`` seeds the jitter (the address text does without one)."""
        p = self.parse(address)
        lon, lat = self.place([p], [jitter_key(member_id, address)])
        return to_result(p, lon[0], lat[0])


def to_result(p: Parsed, lon: float, lat: float) -> GeocodeResult:
    """A :class:`GeocodeResult` from a parse and its placed point (NaN -> None)."""
    placed = np.isfinite(lon) and np.isfinite(lat)
    return GeocodeResult(
        lon=float(lon) if placed else None,
        lat=float(lat) if placed else None,
        precision=p.precision,
        status=p.status,
        district_zh=p.district_zh,
        subdistrict_zh=p.subdistrict_zh,
        community_zh=p.community_zh,
        reason=p.reason,
    )
