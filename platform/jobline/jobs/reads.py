"""Reading jobs and their events: single reads by hand (jobs/sql.py), listings by the ORM."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tortoise import connections
from tortoise.expressions import Q

from jobline.dialects import dialect_of
from jobline.errors import JobNotFound
from jobline.jobs import models, sql
from jobline.jobs.events import Event, EventType
from jobline.jobs.models import JobEventRow, JobRow
from jobline.jobs.projection import JobView
from jobline.jobs.sql import event_of, view_of
from jobline.jobs.states import JobState


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC (a naive time is taken as UTC).

    MySQL compares the wall-clock digits Tortoise sends, dropping any offset: 03:00+01:00
    must be sent as 02:00 or a filter is off by the offset.
    """
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Filters of a job listing; `owner_id` None means every owner (superuser)."""

    owner_id: UUID | None = None
    state: JobState | None = None
    type: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def filters(self) -> dict[str, Any]:
        """The listing's filters as Tortoise keyword filters on JobRow."""
        found: dict[str, Any] = {}
        for name in ("owner_id", "state", "type", "queue"):
            if (value := getattr(self, name)) is not None:
                found[name] = value
        if self.created_after is not None:
            found["created_at__gt"] = as_utc(self.created_after)
        if self.created_before is not None:
            found["created_at__lt"] = as_utc(self.created_before)
        return found


class JobReads:
    """The reads of the job store (JobStore adds the writes), on one Tortoise connection."""

    connection: str

    async def get(self, job_id: UUID) -> JobView:
        """The job's view; JobNotFound if there is none."""
        view = await sql.read_view(self._db(), job_id)
        if view is None:
            raise JobNotFound(job_id=str(job_id))
        return view

    async def get_many(self, job_ids: Sequence[UUID]) -> dict[UUID, JobView]:
        """The views of the jobs found among `job_ids`."""
        views = await sql.read_views(self._db(), job_ids, lock=False)
        return {view.id: view for view in views}

    async def find_by_idempotency_key(
        self, owner_id: UUID, key: str
    ) -> tuple[JobView, str | None] | None:
        """The owner's job submitted with this Idempotency-Key and its request hash, if any."""
        row = (
            await JobRow.filter(owner_id=owner_id, idempotency_key=key).using_db(self._db()).first()
        )
        return None if row is None else (view_of(row), row.request_hash)

    async def events(self, job_id: UUID, after_seq: int = 0, limit: int = 100) -> list[Event]:
        """Events of one job after `after_seq`, oldest first."""
        rows = (
            await JobEventRow.filter(job_id=job_id, seq__gt=after_seq)
            .using_db(self._db())
            .order_by("seq")
            .limit(limit)
        )
        return [event_of(r) for r in rows]

    async def list_jobs(
        self, query: JobQuery, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[JobView]:
        """A keyset page of jobs, newest first, strictly after the `(created_at, id)` key."""
        qs = JobRow.all().using_db(self._db())
        filters = query.filters()
        qs = qs.filter(**filters)
        if after is not None:
            created, job_id = as_utc(after[0]), after[1]
            # The OR form, not a row comparison: with the index hint MariaDB seeks straight
            # to the key instead of reading every earlier row.
            qs = qs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=job_id))
        if dialect_of(self._db()).force_index:
            qs = qs.force_index(_index_for(query))
        rows = await qs.order_by("-created_at", "-id").limit(limit)
        return [view_of(r) for r in rows]

    async def newer_keys(
        self, query: JobQuery, key: tuple[datetime, UUID], limit: int
    ) -> list[tuple[datetime, UUID]]:
        """The `(created_at, id)` keys of up to `limit` jobs just newer than `key`, oldest
        first: where the keyset page before the one starting at `key` begins."""
        created, job_id = as_utc(key[0]), key[1]
        qs = (
            JobRow.filter(**query.filters())
            .using_db(self._db())
            .filter(Q(created_at__gt=created) | Q(created_at=created, id__gt=job_id))
        )
        if dialect_of(self._db()).force_index:
            # The listing's own index, read forwards. Unhinted, MariaDB 10.11 picks it too for
            # this direction (test_page_plans.py); the hint keeps the two reads of a page on
            # one index whatever the planner's statistics say.
            qs = qs.force_index(_index_for(query))
        rows = await qs.order_by("created_at", "id").limit(limit).values_list("created_at", "id")
        return [(as_utc(at), UUID(str(id_))) for at, id_ in rows]

    async def all_events(self, job_id: UUID) -> list[Event]:
        """Every event of one job, oldest first."""
        rows = await JobEventRow.filter(job_id=job_id).using_db(self._db()).order_by("seq")
        return [event_of(r) for r in rows]

    def _db(self) -> Any:
        return connections.get(self.connection)


async def earlier_event(conn: Any, job_id: UUID, attempt: int, type: EventType) -> Event | None:
    """The job's event of `type` in `attempt`, if one was recorded (a duplicate delivery?)."""
    seen = JobEventRow.filter(job_id=job_id, attempt=attempt, type=type)
    row = await seen.using_db(conn).first()
    return None if row is None else event_of(row)


async def earlier_events(
    conn: Any, job_ids: Sequence[UUID], types: Collection[EventType]
) -> dict[tuple[UUID, int, EventType], Event]:
    """The jobs' events of `types`, by (job id, attempt, type): earlier_event for many."""
    earlier: dict[tuple[UUID, int, EventType], Event] = {}
    seen = JobEventRow.filter(job_id__in=list(job_ids), type__in=list(types))
    for row in await seen.using_db(conn):
        earlier.setdefault((row.job_id, row.attempt, EventType(row.type)), event_of(row))
    return earlier


async def event_row_ids(conn: Any, events: Sequence[Event]) -> dict[tuple[UUID, int], int]:
    """The row ids of events just inserted, by (job id, seq), read back."""
    wanted = {(event.job_id, event.seq) for event in events}
    found = JobEventRow.filter(job_id__in=list({e.job_id for e in events}))
    ids: dict[tuple[UUID, int], int] = {}
    for row_id, job_id, seq in await found.using_db(conn).values_list("id", "job_id", "seq"):
        key = (UUID(str(job_id)), int(seq))
        if key in wanted:
            ids[key] = int(row_id)
    return ids


def _index_for(query: JobQuery) -> str:
    # A state filter goes by its index (a type given too is then checked row by row).
    if query.owner_id is not None:
        if query.state is not None:
            return models.IDX_OWNER_STATE
        return models.IDX_OWNER_TYPE if query.type is not None else models.IDX_OWNER_CREATED
    if query.state is not None:
        return models.IDX_STATE
    return models.IDX_TYPE if query.type is not None else models.IDX_CREATED
