"""The Content-Security-Policy of an HTML page the service renders (the plan map).

A map is one self-contained page: its scripts are inline (Leaflet and plugins inlined by
``geoalloc.maps`` offline mode, then folium's own code), so the policy allows exactly those
scripts by their SHA-256 and nothing else: no script from any host, no ``eval``, no network
requests from script, no forms, no framing. The one exception: a page with the
leaflet-measure control needs ``'unsafe-eval'`` (it compiles its templates at run time); only
the hashed scripts can reach it. Images may come from the map's tile server (the
only outside request the page makes) and ``data:`` URIs (inlined icons).
"""

from __future__ import annotations

import base64
import hashlib
import re

_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
_TILES = re.compile(r"""L\.tileLayer\(\s*["'](https://[^"'/]+)""")


def page_csp(html: str) -> str:
    """A CSP admitting the page's own inline scripts (by hash) and its tile server's images."""
    hashes = sorted({base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                     for body in _SCRIPT.findall(html)})
    tiles = sorted({origin.replace("{s}", "*") for origin in _TILES.findall(html)})
    scripts = " ".join(f"'sha256-{h}'" for h in hashes) or "'none'"
    if "leaflet-measure" in html:  # its templates are compiled with new Function() (underscore's _.template)
        scripts += " 'unsafe-eval'"
    return "; ".join([
        "default-src 'none'",
        f"script-src {scripts}",
        "style-src 'unsafe-inline'",  # folium's generated markup styles elements inline
        " ".join(["img-src data:", *tiles]),
        "font-src data:",
        "connect-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
