"""/docs (Swagger UI) and /redoc (ReDoc), served whole by the API: no CDN, no inline script.

FastAPI's own pages load both bundles from jsDelivr and start Swagger UI with an inline
script: with no internet (a laptop on a plane, a locked-down server) they were blank. The
bundles here come from the `fastapi-offline` package on PyPI (its static/ folder:
swagger-ui-dist 5, Apache-2.0, and redoc 2, MIT; the package itself is MIT), which ships
them as a wheel and keeps them current with FastAPI's CDN versions. Swagger UI is started
by static/swagger-init.js, a file of ours, so the pages' policy (security.DOCS_CSP) allows
scripts from the API's own origin only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from html import escape
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from jobline.api.errors import problem

ASSETS_PATH = "/docs/assets"
BUNDLE = Path(str(files("fastapi_offline") / "static"))
OWN = Path(__file__).with_name("static")
# The bundle's version in every asset URL: a new bundle is a new URL, so a day's caching
# never serves an old script with a new page.
BUNDLE_VERSION = version("fastapi-offline")
CACHE_SECONDS = 86_400


# ReDoc's side menu shows Redocly's logo from their CDN (an <img> hidden when it fails to
# load): served from the API it would be one request leaving the origin, so the bundle is
# served with that URL pointing at an empty image instead (the browser test of /redoc offline
# found it: tests/integration/test_ui.py).
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


@dataclass(frozen=True)
class Asset:
    """One file the docs pages load; `replace` rewrites off-origin URLs in it."""

    path: Path
    media_type: str
    replace: tuple[tuple[bytes, bytes], ...] = ()

    @functools.cached_property
    def body(self) -> bytes:
        data = self.path.read_bytes()
        for old, new in self.replace:
            data = data.replace(old, new)
        return data


ASSETS = {
    "swagger-ui-bundle.js": Asset(BUNDLE / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": Asset(BUNDLE / "swagger-ui.css", "text/css"),
    "redoc.standalone.js": Asset(
        BUNDLE / "redoc.standalone.js", "text/javascript", ((REDOC_LOGO, EMPTY_IMAGE),)
    ),
    "favicon.png": Asset(BUNDLE / "favicon.png", "image/png"),
    "swagger-init.js": Asset(OWN / "swagger-init.js", "text/javascript"),
}

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png?v={v}">
<link rel="stylesheet" href="{assets}/swagger-ui.css?v={v}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js?v={v}"></script>
<script src="{assets}/swagger-init.js?v={v}"></script>
</body>
</html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{assets}/favicon.png?v={v}">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{assets}/redoc.standalone.js?v={v}"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets (create the app with docs_url=redoc_url=None)."""

    def page(template: str, request: Request) -> HTMLResponse:
        # Behind a proxy that mounts the API under a prefix, every URL keeps the prefix.
        root = request.scope.get("root_path", "").rstrip("/")
        html = template.format(
            title=escape(app.title),
            assets=escape(root + ASSETS_PATH),
            openapi=escape(root + (app.openapi_url or "/openapi.json")),
            v=escape(BUNDLE_VERSION),
        )
        return HTMLResponse(html)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return page(SWAGGER_PAGE, request)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return page(REDOC_PAGE, request)

    @app.get(ASSETS_PATH + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        found = ASSETS.get(name)
        if found is None:  # a fixed set of files: no path from the request reaches the disk
            return JSONResponse(problem("NOT_FOUND", f"no docs asset {name!r}"), status_code=404)
        cache = {"Cache-Control": f"public, max-age={CACHE_SECONDS}"}
        if found.replace:
            return Response(found.body, media_type=found.media_type, headers=cache)
        return FileResponse(found.path, media_type=found.media_type, headers=cache)
