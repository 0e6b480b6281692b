"""The user table fastapi-users reads and writes through our Tortoise adapter."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class User(Model):
    """An account; a superuser sees every job."""

    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=320, unique=True)
    hashed_password = fields.CharField(max_length=1024)
    is_active = fields.BooleanField(default=True)
    is_superuser = fields.BooleanField(default=False)
    is_verified = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"
