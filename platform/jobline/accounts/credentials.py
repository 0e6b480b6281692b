"""The user behind a request: fastapi-users' rules, without its per-request machinery.

fastapi-users' `current_user(active=True)` over the bearer and cookie backends is generic:
every request solves seven dependencies (two transports, two strategies, the user manager)
and PyJWT parses and verifies the bearer token from scratch. On the job routes, which
carry most of the traffic (programs submitting and polling), that was most of a request's
cost before any work. `current_user` here finds the same user by the same rules:

- the bearer backend first: the token is verified as fastapi-users' JWTStrategy does (the
  same secret, algorithm and audience, expiry, a subject: accounts/backends.py,
  VerifiedTokens) and its user looked up through the user manager (so through the short
  user cache of accounts/users.py);
- when that finds no user, the cookie backend: its revocable session (accounts/sessions.py),
  checked against the revoked sessions on every request, as before;
- no user, or an inactive one, or a token issued before the user ended their other
  sessions (accounts/sessions.py): 401, the body fastapi-users gives.

The credential that authenticated is left in `request.state.credential`: the streams
register it with accounts/session_watch.py, which ends them once it is revoked.

fastapi-users keeps its own routes (login, logout, register, users/me).
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi_users import exceptions

from jobline.accounts.backends import BEARER, COOKIE, verified_tokens
from jobline.accounts.models import User
from jobline.accounts.sessions import get_session_strategy
from jobline.accounts.tokens import Credential, still_valid
from jobline.accounts.users import get_user_manager


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
