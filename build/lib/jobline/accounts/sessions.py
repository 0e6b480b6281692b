"""Cookie sessions that logout really ends.

A JWT cannot be recalled: fastapi-users' JWT strategy answers a logout and leaves the
token valid until it expires. The cookie backend (browsers, EventSource) uses this
strategy instead: each token carries an id (`jti`) and its own audience, a logout
records the id in `revoked_sessions`, and a token whose id is recorded is refused. The
table holds only logged-out tokens, each until it would have expired anyway.

Bearer tokens (programs) stay plain JWTs that no request has to look up: they are
short-lived (JOBLINE_ACCESS_TOKEN_LIFETIME_SECONDS) and their logout is a no-op, as
fastapi-users documents. A cookie token presented as a bearer token is refused (its
audience differs), so the revocation cannot be sidestepped that way.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import jwt
from fastapi import Request
from fastapi_users import exceptions
from fastapi_users.authentication import JWTStrategy
from fastapi_users.jwt import decode_jwt, generate_jwt
from fastapi_users.manager import BaseUserManager

from jobline.accounts.models import RevokedSession, User

COOKIE_AUDIENCE = "jobline:cookie-session"


class RevocableJWTStrategy(JWTStrategy[User, uuid.UUID]):
    """A JWT with an id and the cookie audience; logout revokes the id."""

    def __init__(self, secret: str, lifetime_seconds: int) -> None:
        super().__init__(secret, lifetime_seconds, token_audience=[COOKIE_AUDIENCE])

    async def write_token(self, user: User) -> str:
        data = {"sub": str(user.id), "aud": self.token_audience, "jti": uuid.uuid4().hex}
        return generate_jwt(data, self.encode_key, self.lifetime_seconds, self.algorithm)

    def _claims(self, token: str) -> dict[str, object] | None:
        try:
            return decode_jwt(
                token, self.decode_key, self.token_audience, algorithms=[self.algorithm]
            )
        except jwt.PyJWTError:
            return None

    async def read_token(
        self, token: str | None, user_manager: BaseUserManager[User, uuid.UUID]
    ) -> User | None:
        if token is None:
            return None
        claims = self._claims(token)
        if claims is None or not isinstance(claims.get("jti"), str):
            return None
        if await RevokedSession.exists(jti=claims["jti"]):
            return None
        try:
            return await user_manager.get(user_manager.parse_id(claims.get("sub")))
        except (exceptions.UserNotExists, exceptions.InvalidID):
            return None

    async def destroy_token(self, token: str, user: User) -> None:
        claims = self._claims(token)
        if claims is None or not isinstance(claims.get("jti"), str):
            return
        exp = claims.get("exp")
        expires = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else _now()
        await RevokedSession.get_or_create(jti=claims["jti"], defaults={"expires_at": expires})
        # Housekeeping on the rare logout, not on every request: drop what expired.
        await RevokedSession.filter(expires_at__lt=_now()).delete()


def _now() -> datetime:
    return datetime.now(UTC)


async def get_session_strategy(request: Request) -> RevocableJWTStrategy:
    """The cookie backend's strategy, made once per app."""
    strategy: RevocableJWTStrategy | None = getattr(request.app.state, "session_strategy", None)
    if strategy is None:
        strategy = RevocableJWTStrategy(
            request.app.state.secret, request.app.state.settings.access_token_lifetime_seconds
        )
        request.app.state.session_strategy = strategy
    return strategy
