"""Cross-site request forgery: a cookie works only for requests from the API's own pages.

A browser sends the session cookie with any request to the API, whatever page made it.
SameSite=Lax stops other *sites*, but another port or subdomain of the same host is the
same site: a page there could log the browser in as the attacker (login CSRF) or act
with the user's session. So a request that changes state and rides on the cookie, and
every cookie login, must come from an allowed origin: the API's own (the request's
scheme://host:port) or one of JOBLINE_CORS_ORIGINS. The browser says where a request
comes from in `Origin` (sent with every POST, PATCH and DELETE), else in `Referer`:

- an origin named and not allowed, or `null` (a sandboxed frame, a page with
  `Referrer-Policy: no-referrer` posting a form): 403 CROSS_ORIGIN_REQUEST;
- neither header (curl, programs; a browser always sends `Origin` with such requests):
  let through, the cookie is as safe as a bearer token there;
- a bearer token (`Authorization`): not affected. A page cannot add that header to a
  cross-origin request without the CORS preflight, which only allowed origins pass.

`*` in JOBLINE_CORS_ORIGINS allows no origin here: it never comes with credentials.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette import status
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from jobline.api.errors import problem

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lower case, default port dropped; None if not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal, as it is written in a URL
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


class CrossOriginGuard:
    """Pure ASGI: refuses cookie logins and cookie-borne unsafe requests from foreign origins."""

    def __init__(
        self, app: ASGIApp, *, cookie_name: str, login_paths: tuple[str, ...], allowed: list[str]
    ) -> None:
        self.app = app
        self.cookie = cookie_name
        self.login_paths = frozenset(login_paths)
        self.allowed = frozenset(o for o in (origin_of(a) for a in allowed) if o is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._rides_on_cookie(scope, headers) or self._allowed_source(scope, headers):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            problem(
                "CROSS_ORIGIN_REQUEST",
                "this request comes from a page of another origin and carries the session "
                "cookie (or logs in with one); only the API's own origin and "
                "JOBLINE_CORS_ORIGINS may do that",
            ),
            status_code=status.HTTP_403_FORBIDDEN,
        )
        await response(scope, receive, send)

    def _rides_on_cookie(self, scope: Scope, headers: Headers) -> bool:
        if "authorization" in headers:
            return False
        if scope["path"] in self.login_paths:
            return True
        return any(
            name.strip() == self.cookie
            for header in headers.getlist("cookie")
            for name, _, _ in (pair.partition("=") for pair in header.split(";"))
        )

    def _allowed_source(self, scope: Scope, headers: Headers) -> bool:
        source = headers.get("origin")
        if source is None:
            referer = headers.get("referer")
            if referer is None:
                return True  # not a browser's request: see the module docstring
            source = referer
        found = origin_of(source)  # "null" and anything unparseable are no origin
        return found is not None and (found in self.allowed or found == _own_origin(scope, headers))


def _own_origin(scope: Scope, headers: Headers) -> str | None:
    """The origin this request was sent to: its scheme (uvicorn honours X-Forwarded-Proto
    from trusted proxies) and its Host header."""
    host = headers.get("host")
    if not host:
        return None
    return origin_of(f"{scope.get('scheme', 'http')}://{host}")
