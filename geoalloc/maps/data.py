"""A plan's map as data, for pages that draw it themselves (the console) with ``runtime.js``.

The console runs under a strict Content-Security-Policy (no inline scripts), so it cannot
embed the self-contained HTML map; it loads Leaflet and ``runtime.js`` as files and draws
this payload: the same privacy grid, datum conversion and panel as the HTML map.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from geoalloc.maps.panel import panel_html
from geoalloc.maps.plan import bounds_of, plan_view, prepare
from geoalloc.maps.privacy import DEFAULT_SNAP_M
from geoalloc.maps.styles import labels
from geoalloc.maps.tiles import choose_tiles

__all__ = ["plan_data"]


def plan_data(assignments: pd.DataFrame, branches: pd.DataFrame, report: dict[str, Any], *, lang: str = "zh",
              tiles: str | None = None, snap_m: float = DEFAULT_SNAP_M) -> dict[str, Any]:
    """``{payload, labels, panel, tiles: {url, attr, subdomains}, bounds, counts}`` (JSON-ready)."""
    choice = choose_tiles(tiles, lang)
    a, b, lo, hi, full = prepare(assignments, branches, report, min_size=None, max_size=None, min_full=None)
    view = plan_view(a, b, report, min_size=lo, max_size=hi, min_full=full, lang=lang, datum=choice.datum,
                     snap_m=snap_m)
    L = labels(lang)
    url = choice.tiles
    if url == "OpenStreetMap":
        url = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    elif url == "CartoDB positron":
        url = "https://{s}.basemaps.cartocdn.com/light_all/{z}/{x}/{y}.png"
    attr = choice.attr or ("&copy; OpenStreetMap contributors" if "openstreetmap" in url else "&copy; CARTO")
    return {
        "payload": view.payload, "labels": L, "counts": view.counts, "bounds": bounds_of(view),
        # folded: the console shows the report beside the map
        "panel": panel_html(view.summary, L, snap_m=snap_m, datum=choice.datum, open_=False),
        "tiles": {"url": url, "attr": attr, "subdomains": choice.subdomains},
    }
