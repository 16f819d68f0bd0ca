"""The interactive API documentation (Swagger UI), served with assets the service serves itself.

FastAPI's own ``/docs`` page loads Swagger UI from a CDN under a moving version tag: a third-party
script on the page where people paste their API keys. Here the page loads the published
``swagger-ui-dist`` npm package's files from ``/docs/assets/``; ``make install`` unpacks the
package beside the maps' assets (``geoalloc.maps.assets.install_assets``: ``npm pack``, never the
repository; :func:`main`), and the page's CSP admits only those files and its one inline script.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from api.problems import ProblemError

router = APIRouter(include_in_schema=False)

SWAGGER_UI = "swagger-ui-dist@5.35.0"
_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon-32x32.png": "image/png"}
_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _root() -> Path:
    """The unpacked package; 503 when it is not installed."""
    from geoalloc.maps.assets import asset_path

    root = asset_path(SWAGGER_UI, "")
    if not (root / "swagger-ui-bundle.js").is_file():
        raise ProblemError(503, f"the API documentation's assets ({SWAGGER_UI}) are not installed: run `make install` "
                                "(or `python -m api.routes.docs`); the schema is at /openapi.json")
    return root


def main() -> None:
    """Install the Swagger UI package (``make install`` runs this beside the maps' assets)."""
    from geoalloc.maps.assets import install_assets

    done = install_assets([SWAGGER_UI])
    print(f"API documentation assets {'installed: ' + ', '.join(done) if done else 'already installed'}")


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    """Swagger UI for /openapi.json."""
    _root()
    page = get_swagger_ui_html(openapi_url=request.app.openapi_url, title=f"{request.app.title} - API",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon-32x32.png")
    html = bytes(page.body).decode()
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in _SCRIPT.findall(html))
    csp = (f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return HTMLResponse(html, headers={"Content-Security-Policy": csp})


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> Response:
    """One file of the Swagger UI package (only the three the page uses)."""
    if name not in _FILES:
        raise ProblemError(404, f"no documentation asset {name!r}")
    root = _root()
    return FileResponse(root / name, media_type=_FILES[name], headers={"Cache-Control": "public, max-age=86400"})


if __name__ == "__main__":
    main()
