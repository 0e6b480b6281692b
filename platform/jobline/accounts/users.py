"""fastapi-users wiring: a Tortoise user adapter, the manager, bearer and cookie JWT backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, Request
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import (
    AuthenticationBackend,
    BearerTransport,
    CookieTransport,
    JWTStrategy,
)
from fastapi_users.db import BaseUserDatabase
from fastapi_users.password import PasswordHelper

from jobline.accounts.models import User
from jobline.config import get_settings

API_PREFIX = "/api/v1"
COOKIE_NAME = "jobline_auth"


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


class TortoiseUserDatabase(BaseUserDatabase[User, uuid.UUID]):
    """fastapi-users' storage port over the Tortoise `users` table."""

    async def get(self, id: uuid.UUID) -> User | None:
        return await User.get_or_none(id=id)

    async def get_by_email(self, email: str) -> User | None:
        return await User.filter(email__iexact=email).first()

    async def create(self, create_dict: dict[str, Any]) -> User:
        return await User.create(**create_dict)

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        user.update_from_dict(update_dict)
        await user.save()
        return user

    async def delete(self, user: User) -> None:
        await user.delete()


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    """Account rules; tokens for reset and verification are signed with the secret key."""

    def __init__(self, user_db: BaseUserDatabase[User, uuid.UUID]) -> None:
        super().__init__(user_db, PasswordHelper())
        secret = get_settings().resolved_secret()
        self.reset_password_token_secret = secret
        self.verification_token_secret = secret


async def get_user_db() -> AsyncIterator[TortoiseUserDatabase]:
    yield TortoiseUserDatabase()


async def get_user_manager(
    user_db: TortoiseUserDatabase = Depends(get_user_db),
) -> AsyncIterator[UserManager]:
    yield UserManager(user_db)


def get_jwt_strategy(request: Request) -> JWTStrategy[User, uuid.UUID]:
    settings = request.app.state.settings
    return JWTStrategy(
        secret=request.app.state.secret, lifetime_seconds=settings.access_token_lifetime_seconds
    )


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
    get_strategy=get_jwt_strategy,
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
