"""CrossOriginGuard: which cookie requests it lets through, by their Origin and Referer."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from jobline.api.csrf import CrossOriginGuard, origin_of

COOKIE = "jobline_auth"
LOGIN = "/auth/cookie/login"
OWN = "http://api.test:8000"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://API.test:8000/page", "http://api.test:8000"),
        ("https://api.test:443", "https://api.test"),
        ("http://api.test:80/", "http://api.test"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("file:///etc/passwd", None),
        ("http://api.test:notaport", None),
        ("", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("done")


def client(allowed: list[str]) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST", "PATCH", "DELETE"])])
    guarded = CrossOriginGuard(app, cookie_name=COOKIE, login_paths=(LOGIN,), allowed=allowed)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=guarded), base_url=OWN)


CASES = {
    # name: (method, path, headers, allowed?)
    "own origin": ("POST", "/jobs", {"Cookie": f"{COOKIE}=t", "Origin": OWN}, True),
    "another port": (
        "POST",
        "/jobs",
        {"Cookie": f"{COOKIE}=t", "Origin": "http://api.test:8001"},
        False,
    ),
    "null origin": ("PATCH", "/users/me", {"Cookie": f"{COOKIE}=t", "Origin": "null"}, False),
    "listed origin": (
        "DELETE",
        "/users/x",
        {"Cookie": f"{COOKIE}=t", "Origin": "https://app.example"},
        True,
    ),
    "foreign referer": (
        "POST",
        "/jobs",
        {"Cookie": f"{COOKIE}=t", "Referer": "http://evil.test/x"},
        False,
    ),
    "own referer": ("POST", "/jobs", {"Cookie": f"{COOKIE}=t", "Referer": f"{OWN}/ui/"}, True),
    "neither header": ("POST", "/jobs", {"Cookie": f"{COOKIE}=t"}, True),
    "a safe method": (
        "GET",
        "/jobs",
        {"Cookie": f"{COOKIE}=t", "Origin": "http://evil.test"},
        True,
    ),
    "no cookie": ("POST", "/jobs", {"Origin": "http://evil.test"}, True),
    "another cookie": ("POST", "/jobs", {"Cookie": "other=1", "Origin": "http://evil.test"}, True),
    "bearer": (
        "POST",
        "/jobs",
        {"Cookie": f"{COOKIE}=t", "Authorization": "Bearer x", "Origin": "http://evil.test"},
        True,
    ),
    "cookie login, foreign": ("POST", LOGIN, {"Origin": "http://api.test:8001"}, False),
    "cookie login, own": ("POST", LOGIN, {"Origin": OWN}, True),
}


@pytest.mark.parametrize(("method", "path", "headers", "allowed"), CASES.values(), ids=CASES.keys())
async def test_cookie_requests_by_origin(
    method: str, path: str, headers: dict[str, str], allowed: bool
) -> None:
    async with client(["https://app.example", "*"]) as c:
        r = await c.request(method, path, headers=headers)
    if allowed:
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 403
        assert r.json()["detail"]["code"] == "CROSS_ORIGIN_REQUEST"


async def test_a_wildcard_allows_no_origin() -> None:
    async with client(["*"]) as c:
        r = await c.post("/jobs", headers={"Cookie": f"{COOKIE}=t", "Origin": "http://evil.test"})
    assert r.status_code == 403
