"""The name tables the offline parser matches against, built once from ``data/districts/``.

Every district, subdistrict (街道) and community (社区) is indexed under its official name and
the forms people actually type: without the suffix (南山, 粤海, 科苑), old town names (观澜镇)
and the names districts had before they were split off (龙华新区, or 宝安区 for 龙华).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import shapely
from shapely.geometry.base import BaseGeometry

from geoalloc import districts as dist

__all__ = ["COMMUNITY", "DISTRICT", "SUBDISTRICT", "Cand", "Gazetteer", "gazetteer"]

DISTRICT, SUBDISTRICT, COMMUNITY = 1, 2, 3

# Districts carved out of older ones, old -> new. Addresses keep the old parent for years
# (宝安区龙华街道 from before 2011, Dapeng written under 龙岗区), so a unit of a new district
# stated under its old parent is accepted and moved to the new one, with a note.
SUCCESSORS: dict[str, frozenset[str]] = {
    "宝安区": frozenset({"龙华区", "光明区"}),
    "龙岗区": frozenset({"坪山区", "大鹏新区"}),
}

# Old or informal district names -> today's district name in the bundled data.
DISTRICT_ALIASES: dict[str, str] = {
    "龙华新区": "龙华区",
    "光明新区": "光明区",
    "坪山新区": "坪山区",
    "大鹏区": "大鹏新区",
    "大鹏新区": "大鹏新区",
}


@dataclass(frozen=True)
class Cand:
    """One reading of a token: its level, the official name, and whether it was a short form."""

    level: int
    name: str
    short: bool
    note: str | None = None


@dataclass(frozen=True)
class Gazetteer:
    """Lookup tables for the parser. Read-only; share one instance (see :func:`gazetteer`)."""

    tokens: dict[str, tuple[Cand, ...]]
    max_len: int
    district_label: dict[str, tuple[float, float]]
    district_geom: dict[str, BaseGeometry]
    sub_district: dict[str, str]
    sub_seed: dict[str, tuple[float, float]]
    community_units: dict[str, tuple[tuple[str, str], ...]]  # community -> ((district, subdistrict), ...)
    sub_short: dict[str, str]
    # OpenStreetMap polygons (ODbL) and a representative point inside each: every subdistrict,
    # and the communities OSM has, keyed by (subdistrict, community).
    sub_point: dict[str, tuple[float, float]]
    sub_geom: dict[str, BaseGeometry]
    comm_point: dict[tuple[str, str], tuple[float, float]]
    comm_geom: dict[tuple[str, str], BaseGeometry]

    def compatible(self, stated: str, actual: str) -> bool:
        """True when a unit of ``actual`` may be written under ``stated`` (same or historical parent)."""
        return stated == actual or actual in SUCCESSORS.get(stated, frozenset())

    def is_token(self, text: str) -> bool:
        """Whether ``text`` is any known name (used to avoid reading 东门市场 as a city)."""
        return text in self.tokens


def _add(tokens: dict[str, list[Cand]], key: str, cand: Cand) -> None:
    if len(key) < 2:
        return
    bucket = tokens.setdefault(key, [])
    if cand not in bucket:
        bucket.append(cand)


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    """The tables from the bundled district data: built once per data and code version, then
    loaded from the build cache (:mod:`geoalloc.geocode.buildcache`), so no polygon file is read."""
    from pathlib import Path

    from geoalloc.geocode.buildcache import cached_build, input_key
    from geoalloc.paths import districts_dir

    here = Path(__file__)
    files = [p for p in districts_dir().iterdir() if p.is_file()]
    key = input_key([*files, here, here.parent.parent / "districts.py"], packages=("shapely",))
    gaz = cached_build("gazetteer", key, build_gazetteer, Gazetteer)
    for geom in (*gaz.district_geom.values(), *gaz.sub_geom.values(), *gaz.comm_geom.values()):
        shapely.prepare(geom)  # preparation is not pickled
    return gaz


def build_gazetteer() -> Gazetteer:
    """Build the tables from the bundled district data (no cache)."""
    dgdf = dist.districts()
    subs = dist.subdistricts()
    comms = dist.communities()
    comms = comms[(comms["is_virtual"] == 0) & (comms["is_standard_subdistrict"] == 1)]

    tokens: dict[str, list[Cand]] = {}
    district_label: dict[str, tuple[float, float]] = {}
    district_geom: dict[str, BaseGeometry] = {}
    for name, row in dgdf.iterrows():
        name = str(name)
        district_label[name] = (float(row["label_lon"]), float(row["label_lat"]))
        geom = row.geometry
        shapely.prepare(geom)
        district_geom[name] = geom
        _add(tokens, name, Cand(DISTRICT, name, short=False))
        short = name[:-2] if name.endswith("新区") else name[:-1]
        _add(tokens, short, Cand(DISTRICT, name, short=True))
    for alias, name in DISTRICT_ALIASES.items():
        if alias != name:
            _add(tokens, alias, Cand(DISTRICT, name, short=False, note=f"{alias} is now {name}"))

    sub_district: dict[str, str] = {}
    sub_seed: dict[str, tuple[float, float]] = {}
    sub_short: dict[str, str] = {}
    for row in subs.itertuples(index=False):
        name, short = str(row.name_zh), str(row.short_name)
        sub_short[name] = short
        sub_district[name] = str(row.district_zh)
        sub_seed[name] = (float(row.seed_lon), float(row.seed_lat))
        _add(tokens, name, Cand(SUBDISTRICT, name, short=False))
        for suffix in ("街道办事处", "街道办", "办事处"):
            _add(tokens, short + suffix, Cand(SUBDISTRICT, name, short=False))
        _add(tokens, short + "镇", Cand(SUBDISTRICT, name, short=False, note=f"{short}镇 (a former town) is now {name}"))
        _add(tokens, short, Cand(SUBDISTRICT, name, short=True))

    units: dict[str, list[tuple[str, str]]] = {}
    for row in comms.itertuples(index=False):
        name = str(row.community_zh)
        units.setdefault(name, []).append((str(row.district_zh), str(row.subdistrict_zh)))
        _add(tokens, name, Cand(COMMUNITY, name, short=False))
        if name.endswith("社区"):
            short = name[:-2]
            _add(tokens, short + "社区居委会", Cand(COMMUNITY, name, short=False))
            _add(tokens, short + "居委会", Cand(COMMUNITY, name, short=False))
            _add(tokens, short, Cand(COMMUNITY, name, short=True))
            if not short.endswith("村"):
                _add(tokens, short + "村", Cand(COMMUNITY, name, short=True))

    sub_point: dict[str, tuple[float, float]] = {}
    sub_geom: dict[str, BaseGeometry] = {}
    for row in dist.subdistrict_zones().itertuples(index=False):
        sub_point[str(row.name_zh)] = (float(row.label_lon), float(row.label_lat))
        shapely.prepare(row.geometry)
        sub_geom[str(row.name_zh)] = row.geometry
    comm_point: dict[tuple[str, str], tuple[float, float]] = {}
    comm_geom: dict[tuple[str, str], BaseGeometry] = {}
    for row in dist.community_zones().itertuples(index=False):
        key = (str(row.subdistrict_zh), str(row.name_zh))
        comm_point[key] = (float(row.label_lon), float(row.label_lat))
        shapely.prepare(row.geometry)
        comm_geom[key] = row.geometry

    frozen = {k: tuple(v) for k, v in tokens.items()}
    return Gazetteer(
        tokens=frozen,
        max_len=max(len(k) for k in frozen),
        district_label=district_label,
        district_geom=district_geom,
        sub_district=sub_district,
        sub_seed=sub_seed,
        community_units={k: tuple(v) for k, v in units.items()},
        sub_short=sub_short,
        sub_point=sub_point,
        sub_geom=sub_geom,
        comm_point=comm_point,
        comm_geom=comm_geom,
    )
