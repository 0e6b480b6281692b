"""The user table fastapi-users reads and writes through our Tortoise adapter."""

from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model


class User(Model):
    """An account; a superuser sees every job."""

    # Annotated so the model satisfies fastapi-users' UserProtocol for the type checker.
    id: uuid.UUID = fields.UUIDField(primary_key=True)  # type: ignore[assignment]
    email: str = fields.CharField(max_length=320, unique=True)  # type: ignore[assignment]
    hashed_password: str = fields.CharField(max_length=1024)  # type: ignore[assignment]
    is_active: bool = fields.BooleanField(default=True)  # type: ignore[assignment]
    is_superuser: bool = fields.BooleanField(default=False)  # type: ignore[assignment]
    is_verified: bool = fields.BooleanField(default=False)  # type: ignore[assignment]
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"
