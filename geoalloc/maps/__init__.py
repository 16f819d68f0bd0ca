"""Interactive Folium maps of allocation plans: one plan, or a before/after comparison.

Public entry points: :func:`plan_map`, :func:`compare_map`, :func:`save_map`,
:func:`render_html`. Private by default (no names, blurred points), Chinese by default,
self-contained (Leaflet and plugins inlined from the npm packages installed with geoalloc; only
the basemap tiles use the network, AMap in GCJ-02 for Chinese maps, OSM for English ones).
"""

from geoalloc.maps.compare import CompareMap, compare_map, derive_moves
from geoalloc.maps.output import render_html, save_map
from geoalloc.maps.plan import PlanMap, plan_map

__all__ = ["plan_map", "compare_map", "save_map", "render_html", "derive_moves", "PlanMap", "CompareMap"]
