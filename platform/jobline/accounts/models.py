"""The user table fastapi-users reads and writes through our Tortoise adapter."""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class User(Model):
    """An account; a superuser sees every job."""

    # Annotated so the model satisfies fastapi-users' UserProtocol for the type checker.
    id: uuid.UUID = fields.UUIDField(primary_key=True)  # type: ignore[assignment]
    # Normalized (accounts/emails.py) and, on MariaDB, under a binary collation (migration 5):
    # one spelling per account, compared exactly.
    email: str = fields.CharField(max_length=320, unique=True)  # type: ignore[assignment]
    hashed_password: str = fields.CharField(max_length=1024)  # type: ignore[assignment]
    is_active: bool = fields.BooleanField(default=True)  # type: ignore[assignment]
    is_superuser: bool = fields.BooleanField(default=False)  # type: ignore[assignment]
    is_verified: bool = fields.BooleanField(default=False)  # type: ignore[assignment]
    created_at = fields.DatetimeField(auto_now_add=True)
    # Tokens issued before this are refused, but for `session_kept` (accounts/sessions.py):
    # set by a password change, an email change or a deactivation.
    sessions_valid_after = fields.DatetimeField(null=True)
    session_kept = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "users"


class RevokedSession(Model):
    """A cookie session ended by logout: its token id is refused until the token expires."""

    jti = fields.CharField(max_length=32, primary_key=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "revoked_sessions"


class LoginFailure(Model):
    """One failed login, counted per account and per client address (accounts/throttle.py).

    `key` is a keyed hash of "account:<email>" or "address:<ip>": what a person typed as
    a user name (sometimes their password) is never stored.
    """

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=64)
    at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "login_failures"
        indexes = (Index(fields=("key", "at"), name="idx_login_failures_key"),)
