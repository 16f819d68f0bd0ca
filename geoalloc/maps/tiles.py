"""Base maps and the datum each one is drawn in.

AMap (高德) tiles are in GCJ-02, so a map on them must convert every overlay; OSM and Carto
are WGS-84. A custom URL is taken as WGS-84 unless it is recognisably AMap's or Tencent's.
Without a choice, a Chinese map uses AMap (its tiles load in mainland China, where OSM's often
do not) and an English one OSM (AMap's labels are Chinese). Tiles are the only network use of
a map: when they cannot load, the overlays still draw on a blank background.
"""

from __future__ import annotations

from dataclasses import dataclass

from geoalloc.model import Datum

AMAP_URL = "https://webrd0{s}.is.autonavi.com/appmaptile?lang={lang}&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
_GCJ_HOSTS = ("autonavi.com", "amap.com", "gtimg.com", "qq.com")


@dataclass(frozen=True)
class TileChoice:
    """What folium needs for the base layer, plus the datum overlays must use."""

    tiles: str
    attr: str | None
    datum: str
    subdomains: str = "abc"


DEFAULT_TILES = {"zh": "amap", "en": "osm"}


def default_tiles(lang: str) -> str:
    """The basemap a map in ``lang`` gets when none is asked for."""
    return DEFAULT_TILES.get(lang, "osm")


def choose_tiles(tiles: str | None, lang: str = "zh") -> TileChoice:
    """``osm``, ``carto``, ``amap``, a ``{z}/{x}/{y}`` URL template, or None for the language's default."""
    key = (tiles or default_tiles(lang)).strip()
    low = key.lower()
    if low == "osm":
        return TileChoice("OpenStreetMap", None, Datum.WGS84.value)
    if low == "carto":
        return TileChoice("CartoDB positron", None, Datum.WGS84.value)
    if low in ("amap", "gaode", "autonavi"):
        url = AMAP_URL.replace("{lang}", "zh_cn" if lang == "zh" else "en")
        return TileChoice(url, "&copy; 高德地图 AutoNavi", Datum.GCJ02.value, subdomains="1234")
    if low.startswith(("http://", "https://")) and "{z}" in key and "{x}" in key and "{y}" in key:
        datum = Datum.GCJ02.value if any(h in low for h in _GCJ_HOSTS) else Datum.WGS84.value
        return TileChoice(key, "custom tiles", datum)
    raise ValueError(f"unknown tiles {tiles!r}: expected osm, carto, amap or a URL with {{z}}, {{x}} and {{y}}")
