"""Tortoise model of the `audit_log` table: one row per API request, never a secret."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

# Named so a page can FORCE INDEX on MySQL, like the jobs listing.
IDX_AUDIT_AT = "idx_audit_at"
IDX_AUDIT_USER = "idx_audit_user"
IDX_AUDIT_ROUTE = "idx_audit_route"

METHOD_MAX = 16
ROUTE_MAX = 255
CLIENT_MAX = 64
REQUEST_ID_MAX = 64


class AuditRow(Model):
    """What happened (method, route template, status), who asked, how long it took.

    The route is the template (`/api/v1/jobs/{job_id}`), not the raw path, and no header,
    cookie, query string or body is ever kept: none of them can leak a secret here.
    """

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(description="when the request arrived (UTC)")
    method = fields.CharField(max_length=METHOD_MAX)
    route = fields.CharField(max_length=ROUTE_MAX)
    status = fields.SmallIntField()
    user_id = fields.UUIDField(null=True)
    latency_ms = fields.FloatField()
    client = fields.CharField(max_length=CLIENT_MAX, null=True)
    request_id = fields.CharField(max_length=REQUEST_ID_MAX)

    class Meta:
        table = "audit_log"
        indexes = (
            Index(fields=("at",), name=IDX_AUDIT_AT),
            Index(fields=("user_id", "id"), name=IDX_AUDIT_USER),
            Index(fields=("route", "id"), name=IDX_AUDIT_ROUTE),
        )
