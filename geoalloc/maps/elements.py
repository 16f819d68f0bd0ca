"""Folium elements that put the payload, the layers and the controls into a map.

They are thin: each renders one line of JavaScript calling ``runtime.js``. Layers subclass
folium's ``Layer`` so folium's own ``LayerControl`` lists them and honours ``show``.
"""

from __future__ import annotations

from typing import Any

import folium
from branca.element import CssLink, Element, Figure, JavascriptLink, MacroElement
from folium.map import Layer
from folium.template import Template

from geoalloc.maps.privacy import js_json
from geoalloc.maps.runtime import RUNTIME_CSS, RUNTIME_JS

LEAFLET_JS = ("leaflet", "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js")
LEAFLET_CSS = ("leaflet_css", "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css")
# pinned to the installed folium's release (folium itself points at its moving main branch)
HEAT_JS = (
    "leaflet_heat",
    f"https://cdn.jsdelivr.net/gh/python-visualization/folium@v{folium.__version__.split('+')[0]}"
    "/folium/templates/leaflet_heat.min.js",
)
CLUSTER_JS = (
    "markerclusterjs",
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js",
)
CLUSTER_CSS = [
    ("markerclustercss", "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css"),
    (
        "markerclusterdefaultcss",
        "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.Default.css",
    ),
]


def slim_map(m: folium.Map) -> folium.Map:
    """Drop folium's default jQuery, Bootstrap, Font Awesome and awesome-markers.

    The maps use none of them; without them the file is smaller, loads faster and has
    fewer assets to inline offline.
    """
    m.default_js = [LEAFLET_JS]
    m.default_css = [LEAFLET_CSS]
    return m


def add_runtime(figure: Figure) -> None:
    """The shared script and styles, once per page (a compare page has two maps)."""
    figure.header.add_child(Element(f"<style>{RUNTIME_CSS}</style>"), name="geoalloc_runtime_css")
    figure.header.add_child(Element(f"<script>{RUNTIME_JS}</script>"), name="geoalloc_runtime_js")


class PlanData(MacroElement):
    """Declares one map's payload as ``geoalloc.maps[<map name>]``."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = geoalloc.plan({{ this._parent.get_name()|tojson }},
                {{ this.payload_js }}, {{ this.labels_js }}, {{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, payload: dict[str, Any], labels: dict[str, str]) -> None:
        super().__init__()
        self._name = "PlanData"
        self.payload_js = js_json(payload)
        self.labels_js = js_json(labels)


class PlanLayer(Layer):
    """One switchable layer built in the browser from the payload (``kind`` picks the builder)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = geoalloc.layer({{ this.kind|tojson }}, {{ this.data.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, kind: str, data: PlanData, name: str, show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "PlanLayer"
        self.kind = kind
        self.data = data


class HeatLayer(PlanLayer):
    """The residence heat map; needs Leaflet.heat (folium's own copy)."""

    default_js = [HEAT_JS]

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]
        _add_assets(self, self.default_js, [])
        super().render(**kwargs)


class ClusterLayer(PlanLayer):
    """Members clustered when zoomed out; needs Leaflet.markercluster."""

    def render(self, **kwargs: Any) -> None:  # type: ignore[override]
        _add_assets(self, [CLUSTER_JS], CLUSTER_CSS)
        super().render(**kwargs)


def _add_assets(el: MacroElement, js: list[tuple[str, str]], css: list[tuple[str, str]]) -> None:
    figure: Any = el.get_root()  # a Figure (branca types it as Element)
    for name, url in js:
        figure.header.add_child(JavascriptLink(url), name=name)
    for name, url in css:
        figure.header.add_child(CssLink(url), name=name)


class PlanControls(MacroElement):
    """Summary/legend panel, branch search box and title."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            geoalloc.controls({{ this.data.get_name() }}, {{ this.panel_js }}, {{ this.title_js }});
        {% endmacro %}
        """
    )

    def __init__(self, data: PlanData, panel_html: str, title: str | None) -> None:
        super().__init__()
        self._name = "PlanControls"
        self.data = data
        self.panel_js = js_json(panel_html)
        self.title_js = js_json(title or "")
