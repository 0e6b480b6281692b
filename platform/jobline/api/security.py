"""Response hardening: security headers, CORS (closed unless configured), clean errors.

- Every response carries nosniff, frame denial, no referrer and a Content-Security-Policy
  that allows nothing; the interactive docs (/docs, /redoc) get a relaxed policy that
  lets them load their script and styles from the CDN FastAPI uses, on those routes only;
  the dashboard (/ui/) gets one allowing its own origin's scripts, styles and connections.
- CORS is off unless JOBLINE_CORS_ORIGINS names origins; `*` never comes with credentials.
- A 405 names every method the path allows (Starlette names only the first route's).
- A 422 never echoes a password, token or secret back (or into any log that keeps bodies).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobline.config import Settings

STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's Swagger UI and ReDoc pages load their bundles from jsDelivr, run one inline
# script that starts them, and fetch /openapi.json; ReDoc also uses Google Fonts and a
# blob: worker. Nothing else is allowed, and still no framing.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src 'self' https://cdn.jsdelivr.net https://fonts.googleapis.com 'unsafe-inline'; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' https://fastapi.tiangolo.com https://cdn.redoc.ly data:; "
    "connect-src 'self'; worker-src blob:; "
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

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS:
                    headers.raw.append((name, value))
                headers.setdefault("content-security-policy", csp)
                if no_store:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


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


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return await http_exception_handler(request, exc)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (for the Allow header of a 405)."""
    methods: set[str] = set()
    scope = dict(request.scope)
    for route in request.app.router.routes:
        match, _ = route.matches({**scope, "method": "GET"})
        if match is Match.NONE:
            continue
        route_methods = getattr(route, "methods", None) or set()
        methods.update(route_methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's standard 422 body, with secrets in the echoed input replaced."""
    assert isinstance(exc, RequestValidationError)
    errors = [redact_error(dict(e)) for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


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
