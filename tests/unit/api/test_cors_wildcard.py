"""README, security headers: 'CORS is closed unless JOBLINE_CORS_ORIGINS lists origins
(a JSON list; `*` never comes with credentials)'."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from jobline.api.security import install
from jobline.config import Settings

ORIGIN = "https://any.example"


def app_with(origins: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ok": "yes"}

    install(app, Settings(env="development", cors_origins=origins))
    return app


async def get(app: FastAPI, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        return await c.get("/ping", headers=headers)


async def test_a_wildcard_answers_any_origin_without_credentials() -> None:
    r = await get(app_with(["*"]), {"Origin": ORIGIN, "Cookie": "jobline_auth=t"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in r.headers


async def test_a_listed_origin_gets_credentials_and_no_list_closes_cors() -> None:
    listed = await get(app_with([ORIGIN]), {"Origin": ORIGIN})
    assert listed.headers["access-control-allow-origin"] == ORIGIN
    assert listed.headers["access-control-allow-credentials"] == "true"
    closed = await get(app_with([]), {"Origin": ORIGIN})
    assert "access-control-allow-origin" not in closed.headers
