"""fastapi-users wiring: a Tortoise user adapter, the manager, bearer and cookie JWT backends."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi_users import (
    BaseUserManager,
    FastAPIUsers,
    InvalidPasswordException,
    UUIDIDMixin,
    models,
    schemas,
)
from fastapi_users.db import BaseUserDatabase
from fastapi_users.password import PasswordHelper
from pydantic import Field, StrictBool

from jobline.accounts.backends import bearer_backend, cookie_backend, request_credential
from jobline.accounts.emails import normalize_email
from jobline.accounts.models import User
from jobline.accounts.passwords import password_problem
from jobline.accounts.session_watch import session_watch
from jobline.accounts.throttle import AttemptCounter
from jobline.accounts.tokens import Credential
from jobline.compat.tortoise import meta
from jobline.config import get_settings

COLUMNS = frozenset(meta(User).fields_map)


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    # Strict: `0` or `"yes"` is refused, not read as a boolean.
    is_active: StrictBool | None = True
    is_superuser: StrictBool | None = False
    is_verified: StrictBool | None = False


class UserUpdate(schemas.BaseUserUpdate):
    # Required by PATCH /users/me to change the password or the email: a stolen session
    # alone cannot take the account over.
    current_password: str | None = Field(
        None, description="your password now; required to change your password or email"
    )
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
        # Exact: the column holds normalized addresses under a binary collation.
        return await User.filter(email=normalize_email(email)).first()

    async def create(self, create_dict: dict[str, Any]) -> User:
        return await User.create(**{**create_dict, "email": normalize_email(create_dict["email"])})

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        # An explicit null means "unchanged" (the nullable session columns are set apart,
        # by end_other_sessions).
        update_dict = {k: v for k, v in update_dict.items() if v is not None and k in COLUMNS}
        if "email" in update_dict:
            update_dict["email"] = normalize_email(update_dict["email"])
        recent_users.forget(user.id)
        user.update_from_dict(update_dict)
        await user.save()
        return user

    async def delete(self, user: User) -> None:
        recent_users.forget(user.id)
        await user.delete()
        _check_streams_now()


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

    async def update(
        self,
        user_update: schemas.UU,
        user: User,
        safe: bool = False,
        request: Request | None = None,
    ) -> User:
        """fastapi-users' update, plus: your own password or email changes only with
        `current_password`, and a password change, an email change or a deactivation ends
        every other session and token of the account."""
        # An explicit null means "unchanged" (fastapi-users would look the account up
        # under a null email).
        changes = {
            k: v for k, v in user_update.model_dump(exclude_unset=True).items() if v is not None
        }
        new_email = changes.get("email")
        email_changes = new_email is not None and normalize_email(new_email) != user.email
        if new_email is not None and not email_changes:
            # Another spelling of the same address: no change (fastapi-users would find
            # the account itself under it and answer that the address is taken).
            del changes["email"]
        user_update = type(user_update).model_validate(changes)
        password_changes = changes.get("password") is not None
        if safe and (email_changes or password_changes):
            await self._check_current_password(user, changes.get("current_password"), request)
        updated = await super().update(user_update, user, safe, request)
        deactivated = not safe and changes.get("is_active") is False
        if email_changes or password_changes or deactivated:
            # The session that made its own change keeps working; a superuser's change of
            # another account keeps none of that account's.
            keep = await _credential(request) if safe else None
            await end_other_sessions(updated, keep)
        return updated

    async def _check_current_password(
        self, user: User, given: object, request: Request | None
    ) -> None:
        """Refuse a missing or wrong current password. A wrong one counts as a failed login
        of the account (accounts/throttle.py): a stolen session cannot guess it freely."""
        if not isinstance(given, str) or not given:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail={
                    "code": "CURRENT_PASSWORD_REQUIRED",
                    "message": "changing your password or email needs current_password",
                },
            )
        settings = get_settings()
        counter = None
        if request is not None:
            counter = AttemptCounter(
                request.app.state.secret, settings.login_window_seconds, settings
            )
            account = counter.key("account", user.email)
            wait = await counter.blocked((account, settings.login_failures_per_account))
            if wait is not None:
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    detail={
                        "code": "TOO_MANY_LOGIN_ATTEMPTS",
                        "message": "too many wrong passwords for this account; "
                        f"try again in {wait} seconds",
                    },
                    headers={"Retry-After": str(wait)},
                )
        verified, _ = self.password_helper.verify_and_update(given, user.hashed_password)
        if not verified:
            if counter is not None:
                await counter.record(counter.key("account", user.email))
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail={
                    "code": "CURRENT_PASSWORD_INVALID",
                    "message": "current_password is not this account's password",
                },
            )


async def end_other_sessions(user: User, keep: Credential | None) -> None:
    """Refuse every token of the user issued before now, but `keep`; end their open streams."""
    user.sessions_valid_after = datetime.now(UTC)
    user.session_kept = keep.jti if keep is not None else None
    recent_users.forget(user.id)
    await user.save(update_fields=["sessions_valid_after", "session_kept"])
    _check_streams_now()


def _check_streams_now() -> None:
    session_watch.check_now()


async def _credential(request: Request | None) -> Credential | None:
    """The credential the request authenticated with (accounts/backends.py)."""
    if request is None:
        return None
    return await request_credential(request)


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


fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [bearer_backend, cookie_backend])
current_active_user = fastapi_users.current_user(active=True)


async def emails_of(ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The email address of each user among `ids` that exists."""
    if not ids:
        return {}
    rows = await User.filter(id__in=list(ids)).values_list("id", "email")
    return {uuid.UUID(str(id_)): str(email) for id_, email in rows}


async def create_user(email: str, password: str, *, superuser: bool = False) -> User:
    """Create an account outside a request (CLI, `jobline dev`)."""
    manager = UserManager(TortoiseUserDatabase())
    created = await manager.create(
        UserCreate(email=email, password=password, is_superuser=superuser)
    )
    return created
