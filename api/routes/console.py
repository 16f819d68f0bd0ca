"""The planner's console at ``/`` and the few read-only plan endpoints it needs beside the API's own.

The console is static files (``api/console/``: our HTML, JS and CSS) plus the Leaflet files
geoalloc installs for its maps (``geoalloc.maps.assets``, from npm at install time) and the
maps' own ``runtime.js``: no third-party host and no second back end. Every page is served
with a Content-Security-Policy that allows scripts, styles and requests from this origin only
(no inline scripts; style *attributes* are allowed for the map's markers and bars); map
tiles are the one outside load (``img-src https:``), and the overlays draw without them.

Endpoints for the console (and any client): ``GET /plans/{id}/summary`` (the report in words
and figures), ``GET /plans/{id}/map-data`` (the map's payload) and ``GET /plans/{id}/export``
(plan.xlsx, plan.gpkg or plan.geojson). Each shows what the key may see, as ``/map`` does.
"""

from __future__ import annotations

import mimetypes
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api.deps import Ctx, Viewer
from api.problems import ProblemError, responses
from api.routes.plans import visible_frames
from geoalloc.store.keys import Principal

router = APIRouter(tags=["console"])

STATIC = FilePath(__file__).resolve().parents[1] / "console"
CONSOLE_FILES = ("console.js", "console.css")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
       "img-src 'self' data: https:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'none'")
# Leaflet's files the console loads, from the npm package geoalloc installs
VENDOR = {"leaflet.js": "dist/leaflet.js", "leaflet.css": "dist/leaflet.css",
          "images/layers.png": "dist/images/layers.png", "images/layers-2x.png": "dist/images/layers-2x.png"}
PlanId = Annotated[int, Path(ge=1, le=2**31 - 1, description="plan id")]
Lang = Annotated[Literal["zh", "en"], Query(description="language of labels and words")]


def _file(body: bytes | str, media: str) -> Response:
    return Response(body, media_type=media, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
def console_page() -> Response:
    """The console (Chinese by default; its language switch is in the page)."""
    return _file((STATIC / "index.html").read_bytes(), "text/html; charset=utf-8")


@router.get("/console/{name}", include_in_schema=False)
def console_file(name: str) -> Response:
    """The console's own script and styles."""
    if name not in CONSOLE_FILES:
        raise ProblemError(404, f"no console file {name!r}")
    return _file((STATIC / name).read_bytes(), mimetypes.guess_type(name)[0] or "application/octet-stream")


@router.get("/console/map/runtime.js", include_in_schema=False)
def runtime_js() -> Response:
    """The maps' drawing script (the same code the HTML maps inline)."""
    from geoalloc.maps.runtime import RUNTIME_JS

    return _file(RUNTIME_JS, "text/javascript; charset=utf-8")


@router.get("/console/map/runtime.css", include_in_schema=False)
def runtime_css() -> Response:
    from geoalloc.maps.runtime import RUNTIME_CSS

    return _file(RUNTIME_CSS, "text/css; charset=utf-8")


@router.get("/console/vendor/{path:path}", include_in_schema=False)
def vendor_file(path: str) -> Response:
    """Leaflet, as installed with geoalloc (``make install``), never from a CDN."""
    from geoalloc.maps.assets import asset_path

    if path not in VENDOR:
        raise ProblemError(404, f"no vendor file {path!r}")
    file = asset_path("leaflet@1.9.4", VENDOR[path])
    if not file.is_file():
        raise ProblemError(503, "Leaflet is not installed: run `make install` (python -m geoalloc.maps.assets)")
    return _file(file.read_bytes(), mimetypes.guess_type(file.name)[0] or "application/octet-stream")


def _moves(report: dict[str, Any], a: pd.DataFrame, who: Principal) -> pd.DataFrame | None:
    """A rebalance's moves (stored in its report), only members this key may see."""
    moves = report.get("moves")
    if not isinstance(moves, list):
        return None
    frame = pd.DataFrame([m for m in moves if isinstance(m, dict)],
                         columns=["member_id", "from_branch", "to_branch", "reason"])
    if who.role == "viewer":
        return frame.iloc[0:0]
    return frame[frame["member_id"].astype(str).isin(set(a["member_id"].astype(str)))].reset_index(drop=True)


@router.get("/plans/{plan_id}/summary", summary="A plan's report in words and key figures",
            responses=responses(401, 404, 422))
async def plan_summary(ctx: Ctx, who: Viewer, plan_id: PlanId, lang: Lang = "zh") -> dict[str, Any]:
    """``sections``: what was done, how good it is (the certificate in plain language), what to look at
    (weak districts, branches near a limit, members not placed and why); ``figures``: label/value rows."""
    from geoalloc.outputs import key_figures, report_words

    def build() -> dict[str, Any]:
        _a, b, report, _ = visible_frames(ctx, who, plan_id)
        return {"plan_id": plan_id, "sections": report_words(report, b, lang=lang),
                "figures": [{"label": k, "value": v} for k, v in key_figures(report, lang=lang)]}

    return await run_in_threadpool(build)


@router.get("/plans/{plan_id}/map-data", summary="A plan's map as data (what the console draws)",
            responses=responses(401, 404, 422))
async def plan_map_data(ctx: Ctx, who: Viewer, plan_id: PlanId, lang: Lang = "zh") -> JSONResponse:
    """The HTML map's payload (privacy grid, tiles' datum), labels, panel and basemap: for pages that
    draw the map with ``/console/map/runtime.js`` and Leaflet."""
    from geoalloc.maps.data import plan_data

    def build() -> dict[str, Any]:
        a, b, report, _ = visible_frames(ctx, who, plan_id)
        return plan_data(a, b, report, lang=lang)

    return JSONResponse(await run_in_threadpool(build))


EXPORTS = {"xlsx": ("plan.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
           "gpkg": ("plan.gpkg", "application/geopackage+sqlite3"),
           "geojson": ("plan.geojson", "application/geo+json")}


@router.get("/plans/{plan_id}/export", summary="Download a plan as plan.xlsx, plan.gpkg or plan.geojson",
            responses=responses(401, 404, 422) | {200: {"content": {m: {} for _, m in EXPORTS.values()},
                                                        "description": "the file"}})
async def export_plan(ctx: Ctx, who: Viewer, plan_id: PlanId,
                      format: Annotated[Literal["xlsx", "gpkg", "geojson"], Query(description="file type")] = "xlsx",
                      lang: Lang = "zh") -> Response:
    """The same files ``geoalloc allocate`` writes, with what this key may see (viewers: no members)."""
    from geoalloc.outputs import write_planner_files

    def build() -> bytes:
        a, b, report, _ = visible_frames(ctx, who, plan_id)
        with tempfile.TemporaryDirectory(prefix="geoalloc-export-") as tmp:
            paths = write_planner_files(FilePath(tmp), a, b, report, formats=(format,), lang=lang,
                                        moves=_moves(report, a, who))
            return paths[format].read_bytes()

    name, media = EXPORTS[format]
    body = await run_in_threadpool(build)
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="plan-{plan_id}-{name}"'})
