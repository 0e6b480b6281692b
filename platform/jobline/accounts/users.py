"""fastapi-users wiring: a Tortoise user adapter, the manager, bearer and cookie JWT backends."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import Any

from fastapi import Request
from fastapi_users import (
    BaseUserManager,
    FastAPIUsers,
    InvalidPasswordException,
    UUIDIDMixin,
    models,
    schemas,
)
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    CookieTransport,
    JWTStrategy,
)
from fastapi_users.db import BaseUserDatabase
from fastapi_users.password import PasswordHelper
from pydantic import StrictBool

from jobline.accounts.models import User
from jobline.accounts.passwords import password_problem
from jobline.accounts.sessions import get_session_strategy
from jobline.compat.tortoise import meta
from jobline.config import get_settings

API_PREFIX = "/api/v1"
COOKIE_NAME = "jobline_auth"
COLUMNS = frozenset(meta(User).fields_map)


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    # Strict: `0` or `"yes"` is refused, not read as a boolean.
    is_active: StrictBool | None = True
    is_superuser: StrictBool | None = False
    is_verified: StrictBool | None = False


class UserUpdate(schemas.BaseUserUpdate):
    is_active: StrictBool | None = None
    is_superuser: StrictBool | None = None
    is_verified: StrictBool | None = None


class RecentUsers:
    """Users looked up in the last `auth_cache_seconds`, so a token costs no read per request.

    Every authenticated request reads its user; at a few thousand requests a second that
    read is a large part of a submit. A user changed or deleted through this process is
    forgotten at once; through another, it is seen within the interval (a JWT stays valid
    until it expires anyway).
    """

    def __init__(self) -> None:
        # Insertion order is expiry order: every entry lives equally long.
        self._users: OrderedDict[uuid.UUID, tuple[float, User]] = OrderedDict()

    def get(self, id: uuid.UUID, seconds: float) -> User | None:
        now = time.monotonic()
        while self._users:
            oldest, (at, _) = next(iter(self._users.items()))
            if now - at < seconds:
                break
            del self._users[oldest]
        found = self._users.get(id)
        return found[1] if found is not None else None

    def put(self, user: User) -> None:
        self._users.pop(user.id, None)
        self._users[user.id] = (time.monotonic(), user)

    def forget(self, id: uuid.UUID) -> None:
        self._users.pop(id, None)


recent_users = RecentUsers()


class TortoiseUserDatabase(BaseUserDatabase[User, uuid.UUID]):
    """fastapi-users' storage port over the Tortoise `users` table."""

    async def get(self, id: uuid.UUID) -> User | None:
        seconds = get_settings().auth_cache_seconds
        if seconds > 0 and (cached := recent_users.get(id, seconds)) is not None:
            return cached
        user = await User.get_or_none(id=id)
        if user is not None and seconds > 0:
            recent_users.put(user)
        return user

    async def get_by_email(self, email: str) -> User | None:
        return await User.filter(email__iexact=email).first()

    async def create(self, create_dict: dict[str, Any]) -> User:
        return await User.create(**create_dict)

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        # An explicit null means "unchanged": every column here is NOT NULL.
        update_dict = {k: v for k, v in update_dict.items() if v is not None and k in COLUMNS}
        recent_users.forget(user.id)
        user.update_from_dict(update_dict)
        await user.save()
        return user

    async def delete(self, user: User) -> None:
        recent_users.forget(user.id)
        await user.delete()


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    """Account rules; tokens for reset and verification are signed with the secret key."""

    def __init__(self, user_db: BaseUserDatabase[User, uuid.UUID]) -> None:
        super().__init__(user_db, PasswordHelper())
        secret = get_settings().resolved_secret()
        self.reset_password_token_secret = secret
        self.verification_token_secret = secret

    async def validate_password(self, password: str, user: schemas.UC | models.UP) -> None:
        """Refuse a password the rules of accounts/passwords.py refuse."""
        settings = get_settings()
        problem = password_problem(
            password,
            str(user.email or ""),
            min_length=settings.password_min_length,
            max_length=settings.password_max_length,
        )
        if problem is not None:
            raise InvalidPasswordException(reason=problem)


# Made once and shared: neither holds per-request state. Plain async functions, not
# generators or `def`s: FastAPI runs a `def` dependency on a thread, and a generator
# dependency costs an exit stack per request.
_user_manager: UserManager | None = None


async def get_user_db() -> TortoiseUserDatabase:
    return TortoiseUserDatabase()


async def get_user_manager() -> UserManager:
    global _user_manager
    if _user_manager is None:
        _user_manager = UserManager(TortoiseUserDatabase())
    return _user_manager


async def get_jwt_strategy(request: Request) -> JWTStrategy[User, uuid.UUID]:
    strategy: JWTStrategy[User, uuid.UUID] | None = getattr(request.app.state, "jwt_strategy", None)
    if strategy is None:
        settings = request.app.state.settings
        strategy = JWTStrategy(
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
        cookie_secure=get_settings().cookie_secure,
        cookie_max_age=get_settings().access_token_lifetime_seconds,
    ),
    # Revocable: a logout ends the cookie session at once (accounts/sessions.py).
    get_strategy=get_session_strategy,
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [bearer_backend, cookie_backend])
current_active_user = fastapi_users.current_user(active=True)


async def create_user(email: str, password: str, *, superuser: bool = False) -> User:
    """Create an account outside a request (CLI, `jobline dev`)."""
    manager = UserManager(TortoiseUserDatabase())
    created = await manager.create(
        UserCreate(email=email, password=password, is_superuser=superuser)
    )
    return created
