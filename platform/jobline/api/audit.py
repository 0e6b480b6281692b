"""/api/v1/audit: the request audit log, for superusers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from jobline import errors
from jobline.api.deps import CallerDep, CallerRoute, CursorsDep
from jobline.api.errors import responses
from jobline.api.jobs import Cursor, Page, Size
from jobline.api.schemas import Instant
from jobline.audit.models import AuditRow
from jobline.audit.store import AuditQuery, list_audit
from jobline.jobs.service import Caller

router = APIRouter(tags=["audit"], route_class=CallerRoute)


class AuditEntry(BaseModel):
    """One API request: when, what, who, how it ended and how long it took."""

    id: int
    at: datetime
    method: str
    route: str
    status: int
    user_id: UUID | None
    latency_ms: float
    client: str | None
    request_id: str

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntry:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


def require_superuser(caller: CallerDep) -> Caller:
    if not caller.is_superuser:
        raise errors.SuperuserRequired()
    return caller


@router.get(
    "/audit",
    response_model=Page[AuditEntry],
    responses=responses(errors.SuperuserRequired, errors.InvalidCursor),
)
async def list_audit_log(
    cursors: CursorsDep,
    _: Annotated[Caller, Depends(require_superuser)],
    user_id: UUID | None = None,
    route: Annotated[
        str | None, Query(max_length=255, description="route template, e.g. /api/v1/jobs")
    ] = None,
    method: Annotated[str | None, Query(max_length=16)] = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    since: Annotated[Instant | None, Query(description="at or after this time")] = None,
    until: Annotated[Instant | None, Query(description="before this time")] = None,
    size: Size = 50,
    cursor: Cursor = None,
) -> Page[AuditEntry]:
    """Recorded API requests, newest first (recorded within JOBLINE_AUDIT_FLUSH_SECONDS)."""
    query = AuditQuery(user_id, route, method, status, since, until)
    scope = f"audit:{query}"
    before = None if cursor is None else cursors.decode_int(scope, cursor)
    rows = await list_audit(query, before, size + 1)
    next_page = None
    if len(rows) > size:
        rows = rows[:size]
        next_page = cursors.encode(scope, [rows[-1].id])
    return Page[AuditEntry](
        items=[AuditEntry.of(r) for r in rows], next_page=next_page, current_page=cursor
    )
