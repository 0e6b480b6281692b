"""The dashboard: jobline's own pages under /ui/, served by the API process.

Server-rendered (Jinja2) pages and a few plain scripts under /ui/static/, all from the
API's origin: no build step, no CDN, nothing loaded from elsewhere (CONTRACT section 9).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from jobline.ui.pages import HERE, router

STATIC_PATH = "/ui/static"


def install(app: FastAPI) -> None:
    """Mount the pages, their static files, and `GET /` -> /ui/."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="ui-static")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        """The dashboard is the site's front page."""
        return RedirectResponse("/ui/", status_code=307)
