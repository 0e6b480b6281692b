"""fastapi-users' two authentication backends, and a request's credential by their rules.

The bearer backend (programs: a JWT in the Authorization header) and the cookie backend
(browsers: a revocable session, accounts/sessions.py), their transports, and what reads a
request's credential the way they would: `request_credential`, and the memory of bearer
tokens verified lately (`VerifiedTokens`). The user behind a request is
accounts/credentials.py's; the user manager and fastapi-users' routes are
accounts/users.py's.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

import jwt
from fastapi import Request
from fastapi.security import APIKeyCookie, OAuth2PasswordBearer
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    CookieTransport,
    JWTStrategy,
)
from pydantic import SecretStr

from jobline.accounts.models import User
from jobline.accounts.sessions import BearerJWTStrategy, get_session_strategy
from jobline.accounts.tokens import Credential, credential_of
from jobline.config import Settings, get_settings

API_PREFIX = "/api/v1"
COOKIE_BASE_NAME = "jobline_auth"


def cookie_name(settings: Settings) -> str:
    """The session cookie's name: `__Host-` prefixed when Secure (production).

    A browser keeps a `__Host-` cookie only if it is Secure, set by the host itself over
    https, with Path=/ and no Domain: a sibling subdomain or a plain-http page of the
    same host cannot plant or overwrite the session.
    """
    return ("__Host-" if settings.secure_cookies else "") + COOKIE_BASE_NAME


COOKIE_NAME = cookie_name(get_settings())


async def get_jwt_strategy(request: Request) -> JWTStrategy[User, uuid.UUID]:
    strategy: JWTStrategy[User, uuid.UUID] | None = getattr(request.app.state, "jwt_strategy", None)
    if strategy is None:
        settings = request.app.state.settings
        strategy = BearerJWTStrategy(
            secret=request.app.state.secret,
            lifetime_seconds=settings.access_token_lifetime_seconds,
        )
        request.app.state.jwt_strategy = strategy
    return strategy


bearer_backend = AuthenticationBackend(
    name="jwt",
    transport=BearerTransport(tokenUrl=f"{API_PREFIX}/auth/jwt/login"),
    get_strategy=get_jwt_strategy,
)
cookie_backend = AuthenticationBackend(
    name="cookie",
    transport=CookieTransport(
        cookie_name=COOKIE_NAME,
        cookie_secure=get_settings().secure_cookies,
        cookie_max_age=get_settings().access_token_lifetime_seconds,
    ),
    # Revocable: a logout ends the cookie session at once (accounts/sessions.py).
    get_strategy=get_session_strategy,
)


def _schemes() -> tuple[OAuth2PasswordBearer, APIKeyCookie]:
    bearer, cookie = bearer_backend.transport.scheme, cookie_backend.transport.scheme
    assert isinstance(bearer, OAuth2PasswordBearer) and isinstance(cookie, APIKeyCookie)
    return bearer, cookie


# The two backends' transports: where each finds its credential in a request.
BEARER, COOKIE = _schemes()
# What FastAPI would document for a route taking the transports as dependencies: either
# credential will do. api/deps.py puts it on the routes that take a caller.
SECURITY: list[dict[str, Any]] = [{BEARER.scheme_name: []}, {COOKIE.scheme_name: []}]


class VerifiedTokens:
    """Bearer tokens that passed verification lately, each with its subject and expiry.

    A program sends the same token with every request, and a token's verdict cannot change
    but by expiring (the signature, algorithm and audience are fixed; `nbf` and `iat`, once
    past, stay past): a token verified in the last `keep_seconds` is not verified again,
    never past its `exp`. Only tokens that passed are kept, so a forged one costs a full
    verification every time, as before.
    """

    def __init__(self, strategy: JWTStrategy[User, uuid.UUID]) -> None:
        key = strategy.decode_key
        self.key = key.get_secret_value() if isinstance(key, SecretStr) else key
        self.audience = strategy.token_audience
        self.algorithms = [strategy.algorithm]
        # Insertion order is age order: every entry lives equally long.
        self._tokens: OrderedDict[str, tuple[float, Credential, float]] = OrderedDict()

    def subject(self, token: str, keep_seconds: float) -> str | None:
        """The token's `sub` when it is valid now, else None (exactly JWTStrategy's verdict)."""
        credential = self.credential(token, keep_seconds)
        return credential.subject if credential is not None else None

    def credential(self, token: str, keep_seconds: float) -> Credential | None:
        """The token's subject, issue time and id when it is valid now, else None."""
        now = time.monotonic()
        while self._tokens:
            oldest, (at, _, _) = next(iter(self._tokens.items()))
            if now - at < keep_seconds:
                break
            del self._tokens[oldest]
        kept = self._tokens.get(token)
        if kept is not None:
            _, credential, expires = kept
            if time.time() < expires:
                return credential
            del self._tokens[token]
            return None
        try:
            claims = jwt.decode(token, self.key, audience=self.audience, algorithms=self.algorithms)
        except jwt.PyJWTError:
            return None
        verified = credential_of(claims, "bearer")
        if verified is None:
            return None  # no subject names no one (PyJWT refuses one that is not a string)
        if keep_seconds > 0:
            # PyJWT checked that `exp`, when present, is an integer in the future.
            expires = int(claims["exp"]) if "exp" in claims else float("inf")
            self._tokens[token] = (now, verified, expires)
        return verified


async def verified_tokens(request: Request) -> VerifiedTokens:
    """This app's verified-token memory, made once from the bearer backend's strategy."""
    tokens: VerifiedTokens | None = getattr(request.app.state, "verified_tokens", None)
    if tokens is None:
        tokens = VerifiedTokens(await get_jwt_strategy(request))
        request.app.state.verified_tokens = tokens
    return tokens


async def request_credential(request: Request) -> Credential | None:
    """The credential a request authenticates with, by current_user's rules (bearer token
    first, then the session cookie), without looking its user up: the one current_user
    left in `request.state`, or read again for a route fastapi-users authenticated."""
    found: Credential | None = getattr(request.state, "credential", None)
    if found is not None:
        return found
    bearer = await BEARER(request)
    if bearer is not None:
        tokens = await verified_tokens(request)
        found = tokens.credential(bearer, request.app.state.settings.auth_cache_seconds)
        if found is not None:
            return found
    cookie = await COOKIE(request)
    if cookie is not None:
        return (await get_session_strategy(request)).credential(cookie)
    return None
