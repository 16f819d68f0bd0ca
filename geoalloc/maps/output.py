"""Writing a map: one self-contained HTML file, with assets inlined when offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoalloc.maps.assets import inline_assets

__all__ = ["render_html", "save_map"]


def render_html(m: Any, *, offline: bool | None = None) -> str:
    """The page's HTML; ``offline`` defaults to the map's own setting."""
    root = m.get_root()
    html = root.render()
    if offline if offline is not None else getattr(m, "offline", False):
        html = inline_assets(html)
    return html


def save_map(m: Any, path: str | Path, *, offline: bool | None = None) -> Path:
    """Write ``m`` to ``path`` as a single UTF-8 HTML file and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(m, offline=offline), encoding="utf-8")
    return out
