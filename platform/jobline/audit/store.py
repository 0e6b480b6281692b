"""Reading and pruning the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise import connections

from jobline.audit.models import IDX_AUDIT_AT, IDX_AUDIT_ROUTE, IDX_AUDIT_USER, AuditRow
from jobline.dialects import dialect_of

# The audit log's connection (audit/writer.py writes through it too).
CONNECTION = "default"
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, `45s` as a timedelta; ValueError otherwise."""
    match = _AGE.match(text)
    if match is None:
        raise ValueError(f"not an age like 30d, 12h or 90m: {text!r}")
    amount, unit = match.groups()
    return timedelta(**{_UNIT[unit]: int(amount)})


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of an audit listing."""

    user_id: UUID | None = None
    route: str | None = None
    method: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_audit(query: AuditQuery, before_id: int | None, limit: int) -> list[AuditRow]:
    """A keyset page of audit rows, newest first, strictly before `before_id`."""
    filters: dict[str, Any] = {}
    if query.user_id is not None:
        filters["user_id"] = query.user_id
    if query.route is not None:
        filters["route"] = query.route
    if query.method is not None:
        filters["method"] = query.method.upper()
    if query.status is not None:
        filters["status"] = query.status
    if query.since is not None:
        filters["at__gte"] = query.since
    if query.until is not None:
        filters["at__lt"] = query.until
    if before_id is not None:
        filters["id__lt"] = before_id
    qs = AuditRow.filter(**filters)
    if dialect_of(connections.get(CONNECTION)).force_index:
        # MariaDB otherwise may scan the primary key for a selective user or route filter.
        if query.user_id is not None:
            qs = qs.force_index(IDX_AUDIT_USER)
        elif query.route is not None:
            qs = qs.force_index(IDX_AUDIT_ROUTE)
    return list(await qs.order_by("-id").limit(limit))


async def prune(older_than: datetime, batch: int) -> int:
    """Delete rows older than `older_than`, `batch` at a time; returns how many went.

    Small batches keep each transaction (and its locks) short on a big table.
    """
    removed = 0
    force_index = dialect_of(connections.get(CONNECTION)).force_index
    while True:
        qs = AuditRow.filter(at__lt=older_than)
        if force_index:
            qs = qs.force_index(IDX_AUDIT_AT)
        ids = list(await qs.order_by("at").limit(batch).values_list("id", flat=True))
        if not ids:
            return removed
        removed += await AuditRow.filter(id__in=ids).delete()
