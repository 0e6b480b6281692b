"""The event store: append an event and rewrite the projection in one transaction."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from jobline import metrics
from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs import models
from jobline.jobs.events import REPEATABLE, Event, EventType
from jobline.jobs.models import JobEventRow, JobRow
from jobline.jobs.projection import JobView, apply, start
from jobline.jobs.states import JobState

VIEW_FIELDS = tuple(f.name for f in dataclasses.fields(JobView) if f.name != "id")
log = logging.getLogger("jobline.jobs")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(at: datetime) -> datetime:
    """The same instant in UTC (a naive time is taken as UTC).

    MySQL compares the wall-clock digits Tortoise sends, dropping any offset: 03:00+01:00
    must be sent as 02:00 or a filter is off by the offset.
    """
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of an append: the job's view, and the event, or None for a duplicate.

    For a duplicate, `existing` is the event recorded earlier for the same attempt.
    """

    view: JobView
    event: Event | None
    existing: Event | None = None


# Extra writes that must commit with an append or a submit (the outbox row): (conn, view).
TxHook = Callable[[Any, JobView], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Filters of a job listing; `owner_id` None means every owner (superuser)."""

    owner_id: UUID | None = None
    state: JobState | None = None
    type: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class CommitListener(Protocol):
    """Told of each event after its transaction commits (the live streams' notices)."""

    def committed(self, event: Event, owner_id: UUID | None, row_id: int) -> None: ...


class DuplicateIdempotencyKey(Exception):
    """A job with this (owner, Idempotency-Key) already exists."""


def view_of(row: JobRow) -> JobView:
    return JobView(id=row.id, **{name: getattr(row, name) for name in VIEW_FIELDS})


def event_of(row: JobEventRow) -> Event:
    return Event(
        job_id=row.job_id,
        seq=row.seq,
        type=EventType(row.type),
        attempt=row.attempt,
        at=row.at,
        data=row.data,
    )


class JobStore:
    """Jobs and their events in the Tortoise database (SQLite or MySQL through aiomysql)."""

    def __init__(
        self,
        connection: str = "default",
        *,
        force_index: bool = False,
        listener: CommitListener | None = None,
    ) -> None:
        self.connection = connection
        # MariaDB picks a poor plan for keyset pages without the hint; SQLite has no hints.
        self.force_index = force_index
        self.listener = listener

    async def submit(
        self,
        *,
        job_id: UUID,
        data: dict[str, Any],
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        also: TxHook | None = None,
    ) -> JobView:
        """Store a new job with its `submitted` event (data: type, queue, payload, owner...).

        `also` runs in the same transaction (the outbox row of the job's first publish).
        """
        event = Event(job_id, 1, EventType.SUBMITTED, 1, utcnow(), data)
        view = start(event)
        try:
            async with in_transaction(self.connection) as conn:
                await JobRow.create(
                    using_db=conn,
                    id=job_id,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    **_row_fields(view),
                )
                row_id = await self._insert_event(event, view.owner_id, conn)
                if also is not None:
                    await also(conn, view)
        except IntegrityError as exc:
            if idempotency_key is not None:
                raise DuplicateIdempotencyKey(idempotency_key) from exc
            raise
        metrics.record_transition(view, event.type, event.at)
        self._committed(event, view.owner_id, row_id)
        return view

    async def append(
        self,
        job_id: UUID,
        type: EventType,
        data: dict[str, Any] | None = None,
        *,
        attempt: int | None = None,
        also: TxHook | None = None,
    ) -> Appended:
        """Append one event if the state machine allows it.

        A non-repeatable event already recorded for the same attempt is a duplicate
        delivery: nothing is written and `event` is None. `attempt` pins the attempt the
        caller acts for; an event for an attempt that is no longer current is refused.
        `also` runs in the same transaction once the job row is locked, whatever the
        outcome, and commits unless the append raises.
        """
        async with in_transaction(self.connection) as conn:
            row = await JobRow.select_for_update().using_db(conn).get_or_none(id=job_id)
            if row is None:
                raise JobNotFound(job_id=str(job_id))
            view = view_of(row)
            if also is not None:
                await also(conn, view)
            at_attempt = view.attempt if attempt is None else attempt
            if type not in REPEATABLE:
                seen = JobEventRow.filter(job_id=job_id, attempt=at_attempt, type=type)
                earlier = await seen.using_db(conn).first()
                if earlier is not None:
                    return Appended(view, None, event_of(earlier))
            if at_attempt != view.attempt:
                raise InvalidTransition(
                    f"{type} for attempt {at_attempt}, but the job is at attempt {view.attempt}"
                )
            event = Event(job_id, view.last_seq + 1, type, at_attempt, utcnow(), data or {})
            new_view = apply(view, event)
            row_id = await self._insert_event(event, view.owner_id, conn)
            await JobRow.filter(id=job_id).using_db(conn).update(**_row_fields(new_view))
        metrics.record_transition(new_view, event.type, event.at)
        self._committed(event, view.owner_id, row_id)
        return Appended(new_view, event)

    async def get(self, job_id: UUID) -> JobView:
        row = await JobRow.filter(id=job_id).using_db(self._db()).first()
        if row is None:
            raise JobNotFound(job_id=str(job_id))
        return view_of(row)

    async def find_by_idempotency_key(
        self, owner_id: UUID, key: str
    ) -> tuple[JobView, str | None] | None:
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
        filters: dict[str, Any] = {}
        if query.owner_id is not None:
            filters["owner_id"] = query.owner_id
        if query.state is not None:
            filters["state"] = query.state
        if query.type is not None:
            filters["type"] = query.type
        if query.queue is not None:
            filters["queue"] = query.queue
        if query.created_after is not None:
            filters["created_at__gt"] = as_utc(query.created_after)
        if query.created_before is not None:
            filters["created_at__lt"] = as_utc(query.created_before)
        qs = qs.filter(**filters)
        if after is not None:
            created, job_id = as_utc(after[0]), after[1]
            # The OR form, not a row comparison: with the index hint MariaDB seeks straight
            # to the key instead of reading every earlier row.
            qs = qs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=job_id))
        if self.force_index:
            qs = qs.force_index(_index_for(query))
        rows = await qs.order_by("-created_at", "-id").limit(limit)
        return [view_of(r) for r in rows]

    async def all_job_ids(self) -> list[UUID]:
        return list(await JobRow.all().using_db(self._db()).values_list("id", flat=True))  # type: ignore[arg-type]

    async def all_events(self, job_id: UUID) -> list[Event]:
        rows = await JobEventRow.filter(job_id=job_id).using_db(self._db()).order_by("seq")
        return [event_of(r) for r in rows]

    async def overwrite(self, view: JobView) -> None:
        """Replace a stored projection (used by replay)."""
        await JobRow.filter(id=view.id).using_db(self._db()).update(**_row_fields(view))

    def _db(self) -> Any:
        from tortoise import connections

        return connections.get(self.connection)

    @staticmethod
    async def _insert_event(event: Event, owner_id: UUID | None, conn: Any) -> int:
        row = await JobEventRow.create(
            using_db=conn,
            job_id=event.job_id,
            seq=event.seq,
            type=event.type,
            attempt=event.attempt,
            at=event.at,
            data=event.data,
            owner_id=owner_id,
        )
        return int(row.id)

    def _committed(self, event: Event, owner_id: UUID | None, row_id: int) -> None:
        if self.listener is None:
            return
        try:
            self.listener.committed(event, owner_id, row_id)
        except Exception:
            # The event is stored; a listener's failure must not turn that into an error.
            log.exception("the commit listener failed for event %s of %s", event.seq, event.job_id)


def _row_fields(view: JobView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in VIEW_FIELDS}


def _index_for(query: JobQuery) -> str:
    if query.owner_id is not None:
        return models.IDX_OWNER_STATE if query.state is not None else models.IDX_OWNER_CREATED
    return models.IDX_STATE if query.state is not None else models.IDX_CREATED


__all__: Sequence[str] = ("Appended", "DuplicateIdempotencyKey", "JobQuery", "JobStore")
