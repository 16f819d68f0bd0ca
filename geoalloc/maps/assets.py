"""Offline maps: inline the Leaflet and plugin JS/CSS that a rendered map references.

Why: planners' office networks often block public CDNs, and a map that loads nothing is
worse than no map. ``--offline`` therefore replaces every ``<script src=https://...>`` and
``<link href=https://...>`` by the file's text, and every ``url(...)`` inside that CSS by a
``data:`` URI, so the HTML file works on its own.

Where the files come from: never from this repository. They are the published npm packages
(``npm pack NAME@VERSION``, the tarball only, no install scripts, no dependencies) unpacked
into a cache folder, ``$GEOALLOC_ASSET_CACHE`` or ``~/.cache/geoalloc/web-assets``; folium's
own heat-map script ships inside the folium wheel from PyPI. The first offline render fetches
the tarballs (needs ``npm`` and the npm registry); later ones read the cache.
``scripts/install-browser.sh`` fills the cache ahead of time through :func:`main`.

A URL the table below does not know is an error, not a silent CDN reference: an "offline"
file that still needs the network would fail exactly where it is needed.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import folium

__all__ = ["Asset", "ASSETS", "asset_cache_dir", "ensure_assets", "inline_assets", "OfflineAssetError"]


class OfflineAssetError(RuntimeError):
    """An asset could not be found or fetched for an offline map."""


@dataclass(frozen=True)
class Asset:
    """One referenced file: a URL pattern and where its bytes come from.

    ``package`` is an npm spec (``name@version``) or ``"folium"`` for files inside the
    folium wheel; ``path`` is relative to the package root.
    """

    pattern: str
    package: str
    path: str


# Folium 0.20's CDN URLs (and those of geoalloc's own layers) -> a published package file.
# Versions follow the ones folium references; leaflet is the 1.9 line's last release.
ASSETS: tuple[Asset, ...] = (
    Asset(r"/leaflet@[\d.]+/dist/leaflet\.js$", "leaflet@1.9.4", "dist/leaflet.js"),
    Asset(r"/leaflet@[\d.]+/dist/leaflet\.css$", "leaflet@1.9.4", "dist/leaflet.css"),
    Asset(r"/leaflet\.fullscreen@[\d.]+/Control\.FullScreen(\.min)?\.js$", "leaflet.fullscreen@3.0.0",
          "Control.FullScreen.js"),
    Asset(r"/leaflet\.fullscreen@[\d.]+/Control\.FullScreen\.css$", "leaflet.fullscreen@3.0.0",
          "Control.FullScreen.css"),
    Asset(r"/leaflet-measure@[\d.]+/dist/leaflet-measure(\.min)?\.js$", "leaflet-measure@2.1.7",
          "dist/leaflet-measure.js"),
    Asset(r"/leaflet-measure@[\d.]+/dist/leaflet-measure(\.min)?\.css$", "leaflet-measure@2.1.7",
          "dist/leaflet-measure.css"),
    Asset(r"/leaflet\.markercluster/[\d.]+/leaflet\.markercluster\.js$", "leaflet.markercluster@1.1.0",
          "dist/leaflet.markercluster.js"),
    Asset(r"/leaflet\.markercluster/[\d.]+/MarkerCluster\.css$", "leaflet.markercluster@1.1.0",
          "dist/MarkerCluster.css"),
    Asset(r"/leaflet\.markercluster/[\d.]+/MarkerCluster\.Default\.css$", "leaflet.markercluster@1.1.0",
          "dist/MarkerCluster.Default.css"),
    Asset(r"/Leaflet\.Sync/L\.Map\.Sync(\.min)?\.js$", "leaflet.sync@0.2.4", "L.Map.Sync.js"),
    Asset(r"/folium/templates/leaflet_heat\.min\.js$", "folium", "templates/leaflet_heat.min.js"),
)

_SCRIPT_RE = re.compile(r"""<script\s+src=["'](https?://[^"']+)["']\s*>\s*</script>""")
_LINK_RE = re.compile(r"""<link\s+rel=["']stylesheet["']\s+href=["'](https?://[^"']+)["']\s*/?>""")
_CSS_URL_RE = re.compile(r"""url\(\s*["']?(?!data:|#|https?:)([^"')]+?)["']?\s*\)""")


def asset_cache_dir() -> Path:
    """Where unpacked npm tarballs live (outside the repository)."""
    override = os.environ.get("GEOALLOC_ASSET_CACHE")
    if override:
        return Path(override)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "geoalloc" / "web-assets"


def _package_root(package: str) -> Path:
    if package == "folium":
        return Path(folium.__file__).resolve().parent
    return asset_cache_dir() / package / "package"


def ensure_assets(packages: set[str] | None = None) -> None:
    """Fetch the npm tarballs not yet in the cache (``npm pack``: no scripts, no dependencies)."""
    wanted = sorted(packages if packages is not None else {a.package for a in ASSETS})
    missing = [p for p in wanted if p != "folium" and not _package_root(p).is_dir()]
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise OfflineAssetError(
            "offline maps need npm to fetch the Leaflet packages once "
            f"({', '.join(missing)}); install Node.js/npm or fill {asset_cache_dir()}"
        )
    cache = asset_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        proc = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", tmp, *missing],
            capture_output=True, text=True, timeout=300, cwd=tmp,
        )
        if proc.returncode != 0:
            raise OfflineAssetError(f"npm pack {' '.join(missing)} failed: {proc.stderr.strip()[-500:]}")
        tarballs = {p.name: p for p in Path(tmp).glob("*.tgz")}
        for spec in missing:
            name, version = spec.rsplit("@", 1)
            tgz = tarballs.get(f"{name.lstrip('@').replace('/', '-')}-{version}.tgz")
            if tgz is None:
                raise OfflineAssetError(f"npm pack gave no tarball for {spec} (got {sorted(tarballs)})")
            dest = cache / spec
            staging = Path(tempfile.mkdtemp(dir=cache))
            with tarfile.open(tgz) as tf:
                tf.extractall(staging, filter="data")
            if dest.exists():
                shutil.rmtree(staging)
            else:
                staging.rename(dest)


def _resolve(url: str) -> Asset:
    for asset in ASSETS:
        if re.search(asset.pattern, url):
            return asset
    raise OfflineAssetError(f"no offline copy known for {url}; add it to geoalloc.maps.assets.ASSETS")


def _read(asset: Asset) -> tuple[str, Path]:
    path = _package_root(asset.package) / asset.path
    if not path.is_file():
        raise OfflineAssetError(f"{asset.package} has no {asset.path} (looked in {path})")
    return path.read_text(encoding="utf-8"), path


def _inline_css_urls(css: str, base: Path) -> str:
    """Turn relative ``url(...)`` references into data URIs (icons, sprites)."""

    def repl(match: re.Match[str]) -> str:
        target = (base.parent / match.group(1).split("?")[0].split("#")[0]).resolve()
        if not target.is_file():
            return "url(data:,)"  # a missing decoration must not trigger a network request
        mime = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        data = base64.b64encode(target.read_bytes()).decode("ascii")
        return f"url(data:{mime};base64,{data})"

    return _CSS_URL_RE.sub(repl, css)


def _safe_script(js: str) -> str:
    # A literal "</script" inside inlined code would end the element early.
    return js.replace("</script", "<\\/script")


def inline_assets(html: str) -> str:
    """Replace every CDN ``<script>``/``<link>`` by the file's contents (fetching once if needed)."""
    urls = _SCRIPT_RE.findall(html) + _LINK_RE.findall(html)
    assets = {url: _resolve(url) for url in urls}
    ensure_assets({a.package for a in assets.values()})

    def script(match: re.Match[str]) -> str:
        text, _ = _read(assets[match.group(1)])
        return f"<script>/* {assets[match.group(1)].package} {assets[match.group(1)].path} */\n{_safe_script(text)}\n</script>"

    def link(match: re.Match[str]) -> str:
        asset = assets[match.group(1)]
        text, path = _read(asset)
        return f"<style>/* {asset.package} {asset.path} */\n{_inline_css_urls(text, path)}\n</style>"

    out = _SCRIPT_RE.sub(script, html)
    out = _LINK_RE.sub(link, out)
    return out


def main() -> None:
    """Fill the cache ahead of time (scripts/install-browser.sh calls this)."""
    ensure_assets()
    print(f"offline map assets ready in {asset_cache_dir()}")


if __name__ == "__main__":
    main()
