"""Response hardening: security headers, CORS (closed unless configured), clean errors.

- Every response carries nosniff, frame denial, no referrer and a Content-Security-Policy
  that allows nothing; the interactive docs (/docs, /redoc) get a policy that lets them
  load their scripts and styles from the API's own origin, on those routes only; the
  dashboard (/ui/) gets one allowing its own origin's scripts, styles and connections.
- CORS is off unless JOBLINE_CORS_ORIGINS names origins; `*` never comes with credentials.
- Every error has one shape, {"detail": {"code", "message"}}: FastAPI's and fastapi-users'
  too (a 422 adds the list of `errors`); an unexpected error is a 500 with the headers.
- A 405 names every method the path allows.
- A 422 never echoes a password, token or secret back (or into any log that keeps bodies).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobline.api.errors import http_problem, problem, validation_problem
from jobline.config import Settings

log = logging.getLogger("jobline.api")
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The interactive docs (api/docs.py) load every script, style and image from the API itself.
# What they still need beyond 'self', each the least that works:
# - style-src 'unsafe-inline': ReDoc writes its styles as <style> elements at run time
#   (styled-components) and Swagger UI sets style attributes; neither can carry a nonce.
# - img-src data: Swagger UI's and ReDoc's icons are data: URIs inside their CSS and SVG.
# - worker-src blob: ReDoc's search index runs in a worker it builds from a blob: URL.
# data: and blob: are content the page made itself, not another origin; no host is named.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")
# The dashboard (ui/): its own scripts, styles and images, fetches and streams to its own
# origin, forms posting only here; still no inline script or style, no framing.
UI_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
UI_PATHS = ("/ui/", "/ui")
COMMON_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# API answers hold one user's data: no shared cache may keep them.
API_PREFIX = "/api/"
CORS_METHODS = ["GET", "POST", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID", "X-Request-ID"]
CORS_EXPOSED = ["Location", "Retry-After", "X-Request-ID"]
CORS_MAX_AGE_SECONDS = 600
SENSITIVE_KEYS = frozenset(
    {"password", "token", "access_token", "secret", "authorization", "cookie", "client_secret"}
)
REDACTED = "[redacted]"


class SecurityHeaders:
    """Adds the security headers to every response start (pure ASGI: no task per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(DOCS_PATHS):
            csp = DOCS_CSP
        elif path.startswith(UI_PATHS):
            csp = UI_CSP
        else:
            csp = STRICT_CSP
        no_store = path.startswith(API_PREFIX)

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS:
                    headers.raw.append((name, value))
                headers.setdefault("content-security-policy", csp)
                if no_store:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise  # nothing more can be said: the server drops the connection
            # The last line of defence answers here, inside this middleware, so that a 500
            # carries the headers too (Starlette's own would answer outside every middleware).
            log.exception("unhandled error on %s %s", scope["method"], path)
            response = JSONResponse(problem("INTERNAL", "internal error"), status_code=500)
            await response(scope, receive, send_with_headers)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the headers and CORS middleware and the error handlers (before other middleware)."""
    if settings.cors_origins:
        any_origin = "*" in settings.cors_origins
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # A wildcard with cookies would let any site act as the logged-in user.
            allow_credentials=not any_origin,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=CORS_MAX_AGE_SECONDS,
        )
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Any HTTPException (Starlette's routing, fastapi-users, ours) in the one error shape."""
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    if exc.status_code < 400 or exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse(
        http_problem(exc.status_code, exc.detail), status_code=exc.status_code, headers=headers
    )


# The methods a 405's Allow header may name (OPTIONS answers CORS preflights only).
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method the resource at this path takes (for the Allow header of a 405).

    Each method is tried against the app's routes on a fresh scope (FastAPI keeps included
    routers as nested route groups, which app.router.routes does not list, and leaves the
    first partial match's context in the request's scope). Where the OpenAPI document has
    the path, its most specific template decides: `/users/me` takes GET and PATCH, though
    a DELETE of it would be routed to `/users/{id}` (and refused there).
    """
    path: str = request.scope["path"]
    routed: set[str] = set()
    for method in METHODS:
        probe = {
            "type": "http",
            "path": path,
            "root_path": request.scope.get("root_path", ""),
            "method": method,
            "headers": request.scope.get("headers", []),
        }
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            routed.add(method)
    documented = _documented_methods(request.app.openapi(), path)
    allowed = routed & documented if documented else routed
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)


def _documented_methods(document: dict[str, Any], path: str) -> set[str]:
    """The methods of the most specific OpenAPI path template matching `path` (or none)."""
    matching = [
        template
        for template in document.get("paths", {})
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path)
    ]
    if not matching:
        return set()
    template = min(matching, key=lambda t: t.count("{"))
    return {method.upper() for method in document["paths"][template]}


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """422 VALIDATION_ERROR with FastAPI's list of errors beside the code and message,
    secrets in the echoed input replaced."""
    assert isinstance(exc, RequestValidationError)
    errors = [redact_error(dict(e)) for e in exc.errors()]
    return JSONResponse(validation_problem(safe_json(errors)), status_code=422)


def safe_json(value: Any) -> Any:
    """The value as JSON can carry it: bytes that are not UTF-8 and numbers that are not
    finite (an input echoed back) become text, never a failure to answer."""
    return jsonable_encoder(
        value,
        custom_encoder={
            bytes: lambda b: b.decode("utf-8", "replace"),
            float: lambda f: f if math.isfinite(f) else str(f),
        },
    )


def redact_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error without a sensitive value in `input`."""
    loc = [str(part).lower() for part in error.get("loc", ())]
    if any(part in SENSITIVE_KEYS for part in loc):
        if "input" in error:
            error["input"] = REDACTED
    elif "input" in error:
        error["input"] = redact(error["input"])
    return error


def redact(value: Any) -> Any:
    """The value with every sensitive key's value replaced, at any depth."""
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in SENSITIVE_KEYS else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
