"""Writing a map: one self-contained HTML file (assets inlined) unless ``cdn`` is asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geoalloc.maps.assets import inline_assets

__all__ = ["render_html", "save_map"]


def _use_cdn(m: Any, cdn: bool | None, offline: bool | None) -> bool:
    """``cdn`` wins; the older ``offline`` flag means its opposite; else the map's own setting."""
    if cdn is not None:
        return cdn
    if offline is not None:
        return not offline
    return bool(getattr(m, "cdn", False))


def render_html(m: Any, *, cdn: bool | None = None, offline: bool | None = None) -> str:
    """The page's HTML: every script and style inlined, or CDN references with ``cdn=True``."""
    html = m.get_root().render()
    return html if _use_cdn(m, cdn, offline) else inline_assets(html)


def save_map(m: Any, path: str | Path, *, cdn: bool | None = None, offline: bool | None = None) -> Path:
    """Write ``m`` to ``path`` as a single UTF-8 HTML file and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(m, cdn=cdn, offline=offline), encoding="utf-8")
    return out
