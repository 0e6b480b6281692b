"""The user behind a request: fastapi-users' rules, without its per-request machinery.

fastapi-users' `current_user(active=True)` over the bearer and cookie backends is generic:
every request solves seven dependencies (two transports, two strategies, the user manager)
and PyJWT parses and verifies the bearer token from scratch. On the job routes, which
carry most of the traffic (programs submitting and polling), that was most of a request's
cost before any work. `current_user` here finds the same user by the same rules:

- the bearer backend first: the token is verified as fastapi-users' JWTStrategy does (the
  same secret, algorithm and audience, expiry, a subject) and its user looked up through
  the user manager (so through the short user cache of accounts/users.py);
- when that finds no user, the cookie backend: its revocable session (accounts/sessions.py),
  checked against the revoked sessions on every request, as before;
- no user, or an inactive one, or a token issued before the user ended their other
  sessions (accounts/sessions.py): 401, the body fastapi-users gives.

The credential that authenticated is left in `request.state.credential`: the streams
register it with accounts/session_watch.py, which ends them once it is revoked.

fastapi-users keeps its own routes (login, logout, register, users/me).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

import jwt
from fastapi import HTTPException, Request, status
from fastapi.security import APIKeyCookie, OAuth2PasswordBearer
from fastapi_users import exceptions
from fastapi_users.authentication import JWTStrategy
from pydantic import SecretStr

from jobline.accounts.models import User
from jobline.accounts.sessions import Credential, credential_of, get_session_strategy, still_valid
from jobline.accounts.users import (
    bearer_backend,
    cookie_backend,
    get_jwt_strategy,
    get_user_manager,
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


async def current_user(request: Request) -> User:
    """The active user of the bearer token, else of the session cookie; else 401."""
    manager = await get_user_manager()
    user: User | None = None
    credential: Credential | None = None
    # The backends' own transports read the credentials, called here rather than declared
    # as dependencies: two fewer dependencies to solve per request (see `SECURITY`).
    bearer = await BEARER(request)
    if bearer is not None:
        tokens = await verified_tokens(request)
        credential = tokens.credential(bearer, request.app.state.settings.auth_cache_seconds)
        if credential is not None:
            try:
                user = await manager.get(manager.parse_id(credential.subject))
            except (exceptions.UserNotExists, exceptions.InvalidID):
                user = None
            if user is not None and not still_valid(credential, user):
                user = None
    cookie = await COOKIE(request) if user is None else None
    if cookie is not None:
        session = await get_session_strategy(request)
        user = await session.read_token(cookie, manager)
        credential = session.credential(cookie) if user is not None else None
    if user is None or not user.is_active:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED)
    request.state.credential = credential
    return user


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
