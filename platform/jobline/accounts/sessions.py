"""Sessions that can be ended: cookie logout, and every other session of a user at once.

A JWT cannot be recalled: fastapi-users' JWT strategy answers a logout and leaves the
token valid until it expires. Two things here end tokens before then:

- Cookie sessions (browsers, EventSource): each token carries an id (`jti`) and its own
  audience, a logout records the id in `revoked_sessions`, and a token whose id is
  recorded is refused. The table holds only logged-out tokens, each until it would have
  expired anyway. A cookie token presented as a bearer token is refused (its audience
  differs), so the revocation cannot be sidestepped that way.
- Every token of a user, bearer and cookie alike, carries when it was issued (`iat`, to
  the microsecond) and an id. A password change, an email change or a deactivation sets
  the user's `sessions_valid_after` to now and `session_kept` to the id of the token that
  made the change (accounts/users.py): a token issued before that moment is refused,
  unless it is the kept one. One column read with the user, which every request reads
  anyway (through the short user cache): no table of tokens to look up.

Bearer tokens (programs) are otherwise plain JWTs, short-lived
(JOBLINE_ACCESS_TOKEN_LIFETIME_SECONDS); their logout is a no-op, as fastapi-users
documents. Open streams are ended by accounts/session_watch.py.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
from fastapi import Request
from fastapi_users import exceptions
from fastapi_users.authentication import JWTStrategy
from fastapi_users.jwt import decode_jwt, generate_jwt
from fastapi_users.manager import BaseUserManager

from jobline.accounts.models import RevokedSession, User
from jobline.accounts.session_watch import session_watch
from jobline.accounts.tokens import Credential, credential_of, still_valid

COOKIE_AUDIENCE = "jobline:cookie-session"


def _claims_of_new_token(audience: list[str]) -> dict[str, Any]:
    # A float iat: a login a millisecond after a password change is after it.
    return {"aud": audience, "iat": time.time(), "jti": uuid.uuid4().hex}


class BearerJWTStrategy(JWTStrategy[User, uuid.UUID]):
    """fastapi-users' JWT strategy, with an issue time and an id, checked against the user."""

    async def write_token(self, user: User) -> str:
        data = {"sub": str(user.id), **_claims_of_new_token(self.token_audience)}
        return generate_jwt(data, self.encode_key, self.lifetime_seconds, self.algorithm)

    async def read_token(
        self, token: str | None, user_manager: BaseUserManager[User, uuid.UUID]
    ) -> User | None:
        if token is None:
            return None
        try:
            claims = decode_jwt(
                token, self.decode_key, self.token_audience, algorithms=[self.algorithm]
            )
        except jwt.PyJWTError:
            return None
        credential = credential_of(claims, "bearer")
        if credential is None:
            return None
        return await _user_of(credential, user_manager)


class RevocableJWTStrategy(JWTStrategy[User, uuid.UUID]):
    """A JWT with an id and the cookie audience; logout revokes the id."""

    def __init__(self, secret: str, lifetime_seconds: int) -> None:
        super().__init__(secret, lifetime_seconds, token_audience=[COOKIE_AUDIENCE])

    async def write_token(self, user: User) -> str:
        data = {"sub": str(user.id), **_claims_of_new_token(self.token_audience)}
        return generate_jwt(data, self.encode_key, self.lifetime_seconds, self.algorithm)

    def _claims(self, token: str) -> dict[str, object] | None:
        try:
            return decode_jwt(
                token, self.decode_key, self.token_audience, algorithms=[self.algorithm]
            )
        except jwt.PyJWTError:
            return None

    def credential(self, token: str) -> Credential | None:
        """The session this cookie token names, if it verifies (revocation not checked)."""
        claims = self._claims(token)
        if claims is None or not isinstance(claims.get("jti"), str):
            return None
        return credential_of(claims, "cookie")

    async def read_token(
        self, token: str | None, user_manager: BaseUserManager[User, uuid.UUID]
    ) -> User | None:
        if token is None:
            return None
        credential = self.credential(token)
        if credential is None:
            return None
        if await RevokedSession.exists(jti=credential.jti):
            return None
        return await _user_of(credential, user_manager)

    async def destroy_token(self, token: str, user: User) -> None:
        claims = self._claims(token)
        if claims is None or not isinstance(claims.get("jti"), str):
            return
        exp = claims.get("exp")
        expires = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else _now()
        await RevokedSession.get_or_create(jti=claims["jti"], defaults={"expires_at": expires})
        # Housekeeping on the rare logout, not on every request: drop what expired.
        await RevokedSession.filter(expires_at__lt=_now()).delete()
        # Streams of this process opened with the cookie end now, not at the next check.
        session_watch.check_now()


async def _user_of(
    credential: Credential, user_manager: BaseUserManager[User, uuid.UUID]
) -> User | None:
    try:
        user = await user_manager.get(user_manager.parse_id(credential.subject))
    except (exceptions.UserNotExists, exceptions.InvalidID):
        return None
    return user if still_valid(credential, user) else None


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
