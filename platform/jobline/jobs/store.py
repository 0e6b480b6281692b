"""The event store: append an event and rewrite the projection in one transaction."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.transactions import in_transaction

from jobline import metrics
from jobline.compat.tortoise import from_row, meta
from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs import models
from jobline.jobs.events import REPEATABLE, Event, EventType
from jobline.jobs.models import JobEventRow, JobRow
from jobline.jobs.projection import JobView, apply, start
from jobline.jobs.states import JobState, can_follow, next_state

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
# The same for a batch (submit_many, append_many): (conn, views), once per transaction.
BatchTxHook = Callable[[Any, Sequence[JobView]], Awaitable[None]]
# Admission of new jobs, first thing in a submit's transaction (jobs/quotas.py): (conn,
# how many new jobs per owner) -> how many of them may be stored.
AdmitHook = Callable[[Any, dict[UUID, int]], Awaitable[dict[UUID, int]]]


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job of a submit_many: what submit() takes for one job."""

    job_id: UUID
    data: dict[str, Any]
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One event of an append_many: what append() takes for one event."""

    job_id: UUID
    type: EventType
    data: dict[str, Any] | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One event of an append_chain: its type, data and, if not now, when it happened."""

    type: EventType
    data: dict[str, Any] | None = None
    at: datetime | None = None


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


class NotAdmitted(Exception):
    """The submit's admission hook (the active-jobs cap) refused the job."""


class DuplicateIdempotencyKey(Exception):
    """A job with this (owner, Idempotency-Key) already exists."""


def _per_owner(views: Sequence[JobView]) -> dict[UUID, int]:
    wanted: dict[UUID, int] = {}
    for view in views:
        if view.owner_id is not None:
            wanted[view.owner_id] = wanted.get(view.owner_id, 0) + 1
    return wanted


def _admitted(views: Sequence[JobView], admitted: dict[UUID, int]) -> list[bool]:
    """Which of the views fit: each owner's first `admitted[owner]` (jobs of no owner all)."""
    left = dict(admitted)
    keep = []
    for view in views:
        if view.owner_id is None:
            keep.append(True)
            continue
        ok = left.get(view.owner_id, 0) > 0
        if ok:
            left[view.owner_id] -= 1
        keep.append(ok)
    return keep


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
        self._consecutive: bool | None = None  # see _insert_events

    async def submit(
        self,
        *,
        job_id: UUID,
        data: dict[str, Any],
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        also: TxHook | None = None,
        admit: AdmitHook | None = None,
    ) -> JobView:
        """Store a new job with its `submitted` event (data: type, queue, payload, owner...).

        `also` runs in the same transaction (the outbox row of the job's first publish).
        `admit` decides first, in the transaction, whether the job may be stored; when it
        may not, NotAdmitted is raised.
        """
        event = Event(job_id, 1, EventType.SUBMITTED, 1, utcnow(), data)
        view = start(event)
        try:
            async with in_transaction(self.connection) as conn:
                owner = view.owner_id
                if (
                    admit is not None
                    and owner is not None
                    and not (await admit(conn, {owner: 1})).get(owner)
                ):
                    raise NotAdmitted(owner)
                await JobRow.create(
                    using_db=conn,
                    id=job_id,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    **_row_fields(view),
                )
                row_ids = await self._insert_events([event], [view.owner_id], conn)
                if also is not None:
                    await also(conn, view)
        except IntegrityError as exc:
            if idempotency_key is not None:
                raise DuplicateIdempotencyKey(idempotency_key) from exc
            raise
        self.after_commit(view, event, row_ids[job_id, 1])
        return view

    async def append(
        self,
        job_id: UUID,
        type: EventType,
        data: dict[str, Any] | None = None,
        *,
        attempt: int | None = None,
        also: TxHook | None = None,
        at: datetime | None = None,
    ) -> Appended:
        """Append one event if the state machine allows it.

        A non-repeatable event already recorded for the same attempt is a duplicate
        delivery: nothing is written and `event` is None. `attempt` pins the attempt the
        caller acts for; an event for an attempt that is no longer current is refused.
        `also` runs in the same transaction once the job row is locked, whatever the
        outcome, and commits unless the append raises. `at` is when it happened (now
        by default).
        """
        (done,) = await self.append_chain(
            job_id, [Step(type, data, at)], attempt=attempt, also=also
        )
        return done

    async def append_chain(
        self,
        job_id: UUID,
        steps: Sequence[Step],
        *,
        attempt: int | None = None,
        also: TxHook | None = None,
        check: Callable[[int, Appended], None] | None = None,
        expect: JobView | None = None,
    ) -> list[Appended]:
        """append() of several events of one job, in order, in one transaction.

        Each step is taken as append() takes one event, on the view the steps before it
        left. `also` runs with the view before the last step. `check` sees each step's
        outcome inside the transaction: raising there, like an illegal transition, rolls
        every step back. The worker uses it to record a fast job's `started` together
        with its outcome: one commit instead of two.

        `expect` is the job's view as the caller read it earlier. While the row is still
        at that view's last_seq, the events are written without reading the row again:
        the UPDATE, conditional on last_seq, locks and checks it in one statement (a
        compare-and-set). If the row moved on, or a step needs a look at earlier events,
        it goes the usual way.
        """
        if expect is not None:
            planned = plan(expect, steps, attempt)
            if planned is not None:
                try:
                    return await self._append_expected(expect, planned, also, check)
                except _Moved:
                    pass  # another writer got there first: read, lock and decide afresh
        outcomes: list[Appended] = []
        row_ids: dict[tuple[UUID, int], int] = {}
        async with in_transaction(self.connection) as conn:
            found = await _read_view(conn, job_id, lock=True)
            if found is None:
                raise JobNotFound(job_id=str(job_id))
            locked = view = found
            for index, step in enumerate(steps):
                if also is not None and index == len(steps) - 1:
                    await also(conn, view)
                done = await self._step(conn, view, step, attempt)
                if check is not None:
                    check(index, done)
                outcomes.append(done)
                if done.event is not None:
                    view = done.view
            events = [done.event for done in outcomes if done.event is not None]
            if events:
                row_ids = await self._insert_events(events, [locked.owner_id] * len(events), conn)
                # The locked row is `locked`: only what the events changed is written.
                await _update_view(conn, job_id, changed_fields(locked, view))
        for done in outcomes:
            if done.event is not None:
                self.after_commit(done.view, done.event, row_ids[job_id, done.event.seq])
        return outcomes

    async def _append_expected(
        self,
        expect: JobView,
        planned: list[Appended],
        also: TxHook | None,
        check: Callable[[int, Appended], None] | None,
    ) -> list[Appended]:
        events = [done.event for done in planned if done.event is not None]
        owners = [expect.owner_id] * len(events)
        async with in_transaction(self.connection) as conn:
            changed = changed_fields(expect, planned[-1].view)
            if await _update_view(conn, expect.id, changed, at_seq=expect.last_seq) != 1:
                raise _Moved()
            if also is not None:
                await also(conn, planned[-2].view if len(planned) > 1 else expect)
            if check is not None:
                for index, done in enumerate(planned):
                    check(index, done)
            row_ids = await self._insert_events(events, owners, conn)
        for event, done in zip(events, planned, strict=True):
            self.after_commit(done.view, event, row_ids[event.job_id, event.seq])
        return planned

    async def _consecutive_ids(self, conn: Any) -> bool:
        if self._consecutive is None:
            if conn.capabilities.dialect != "mysql":
                self._consecutive = False
            else:
                rows = await conn.execute_query_dict("SELECT @@innodb_autoinc_lock_mode AS mode")
                self._consecutive = int(rows[0]["mode"]) <= 1
        return self._consecutive

    @staticmethod
    async def _step(conn: Any, view: JobView, step: Step, attempt: int | None) -> Appended:
        """One event on a locked job's view: its outcome, nothing written yet."""
        at_attempt = view.attempt if attempt is None else attempt
        if step.type not in REPEATABLE and not _surely_new(view, step.type, at_attempt):
            seen = JobEventRow.filter(job_id=view.id, attempt=at_attempt, type=step.type)
            earlier = await seen.using_db(conn).first()
            if earlier is not None:
                return Appended(view, None, event_of(earlier))
        if at_attempt != view.attempt:
            raise InvalidTransition(
                f"{step.type} for attempt {at_attempt}, but the job is at attempt {view.attempt}"
            )
        event = _next_event(view, step, at_attempt)
        return Appended(apply(view, event), event)

    async def submit_many(
        self,
        jobs: Sequence[NewJob],
        also: BatchTxHook | None = None,
        admit: AdmitHook | None = None,
    ) -> list[JobView]:
        """submit() for many jobs in one transaction: one multi-row INSERT per table.

        All or nothing: a repeated Idempotency-Key fails the whole batch with
        DuplicateIdempotencyKey, and its caller submits the jobs one by one instead.
        `admit` decides first, in the transaction, how many of each owner's jobs are
        stored (the earliest ones): the views returned are those of the stored jobs.
        """
        at = utcnow()
        events = [Event(job.job_id, 1, EventType.SUBMITTED, 1, at, job.data) for job in jobs]
        views = [start(event) for event in events]
        try:
            async with in_transaction(self.connection) as conn:
                if admit is not None:
                    keep = _admitted(views, await admit(conn, _per_owner(views)))
                    jobs = [job for job, ok in zip(jobs, keep, strict=True) if ok]
                    events = [event for event, ok in zip(events, keep, strict=True) if ok]
                    views = [view for view, ok in zip(views, keep, strict=True) if ok]
                    if not views:
                        return []
                rows = [
                    {
                        "id": view.id,
                        "idempotency_key": job.idempotency_key,
                        "request_hash": job.request_hash,
                        **_row_fields(view),
                    }
                    for job, view in zip(jobs, views, strict=True)
                ]
                await insert_rows(conn, JobRow, rows)
                row_ids = await self._insert_events(events, [v.owner_id for v in views], conn)
                if also is not None:
                    await also(conn, views)
        except IntegrityError as exc:
            keys = [job.idempotency_key for job in jobs if job.idempotency_key is not None]
            if keys:
                raise DuplicateIdempotencyKey(", ".join(keys)) from exc
            raise
        for event, view in zip(events, views, strict=True):
            self.after_commit(view, event, row_ids[event.job_id, event.seq])
        return views

    async def append_many(
        self, changes: Sequence[Change], also: BatchTxHook | None = None
    ) -> list[Appended | Exception]:
        """append() for events of distinct jobs, in one transaction; one outcome per change.

        Each outcome is what append() returns or raises (Appended, JobNotFound,
        InvalidTransition); one change refused does not undo the others. `also` runs
        once the rows are locked, with the views of the jobs found, and always commits.
        """
        ids = [change.job_id for change in changes]
        if len(set(ids)) != len(ids):
            raise ValueError("append_many takes at most one change per job")
        outcomes: list[Appended | Exception] = []
        appended: list[tuple[Event, JobView, JobView]] = []
        async with in_transaction(self.connection) as conn:
            views = {view.id: view for view in await _read_views(conn, ids, lock=True)}
            if also is not None:
                await also(conn, list(views.values()))
            once = {
                change.type
                for change in changes
                if change.type not in REPEATABLE
                and change.job_id in views
                and not _surely_new(
                    views[change.job_id],
                    change.type,
                    views[change.job_id].attempt if change.attempt is None else change.attempt,
                )
            }
            earlier: dict[tuple[UUID, int, EventType], JobEventRow] = {}
            if once:
                seen = JobEventRow.filter(job_id__in=list(views), type__in=list(once))
                for row in await seen.using_db(conn):
                    earlier.setdefault((row.job_id, row.attempt, EventType(row.type)), row)
            at = utcnow()
            for change in changes:
                view = views.get(change.job_id)
                if view is None:
                    outcomes.append(JobNotFound(job_id=str(change.job_id)))
                    continue
                at_attempt = view.attempt if change.attempt is None else change.attempt
                before = earlier.get((change.job_id, at_attempt, change.type))
                if change.type not in REPEATABLE and before is not None:
                    outcomes.append(Appended(view, None, event_of(before)))
                    continue
                if at_attempt != view.attempt:
                    outcomes.append(
                        InvalidTransition(
                            f"{change.type} for attempt {at_attempt}, "
                            f"but the job is at attempt {view.attempt}"
                        )
                    )
                    continue
                event = Event(
                    change.job_id, view.last_seq + 1, change.type, at_attempt, at, change.data or {}
                )
                try:
                    new_view = apply(view, event)
                except InvalidTransition as exc:
                    outcomes.append(exc)
                    continue
                outcomes.append(Appended(new_view, event))
                appended.append((event, view, new_view))
            if appended:
                row_ids = await self._insert_events(
                    [event for event, _, _ in appended],
                    [view.owner_id for _, view, _ in appended],
                    conn,
                )
                # The rows are locked: one UPDATE writes what the events changed in all.
                await _update_views(conn, [(old, new) for _, old, new in appended])
        for event, _, new_view in appended:
            self.after_commit(new_view, event, row_ids[event.job_id, event.seq])
        return outcomes

    async def _insert_events(
        self, events: Sequence[Event], owners: Sequence[UUID | None], conn: Any
    ) -> dict[tuple[UUID, int], int]:
        """Insert events (each with its job's owner) in one statement; their row ids by
        (job id, seq).

        A single row's id is the driver's last insert id. MariaDB gives the rows of one
        multi-row INSERT consecutive ids from LAST_INSERT_ID unless innodb_autoinc_lock_mode
        is 2 (interleaved, checked once); then, and on SQLite, they are read back.
        """
        sql, values = insert_events_sql(conn.capabilities.dialect, events, owners)
        inserted = int(await conn.execute_insert(sql, values))
        if len(events) == 1 or await self._consecutive_ids(conn):
            return {(event.job_id, event.seq): inserted + i for i, event in enumerate(events)}
        wanted = {(event.job_id, event.seq) for event in events}
        found = JobEventRow.filter(job_id__in=list({e.job_id for e in events}))
        ids: dict[tuple[UUID, int], int] = {}
        for row_id, job_id, seq in await found.using_db(conn).values_list("id", "job_id", "seq"):
            key = (UUID(str(job_id)), int(seq))
            if key in wanted:
                ids[key] = int(row_id)
        return ids

    async def get(self, job_id: UUID) -> JobView:
        view = await _read_view(self._db(), job_id)
        if view is None:
            raise JobNotFound(job_id=str(job_id))
        return view

    async def get_many(self, job_ids: Sequence[UUID]) -> dict[UUID, JobView]:
        """The views of the jobs found among `job_ids`."""
        views = await _read_views(self._db(), job_ids, lock=False)
        return {view.id: view for view in views}

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

    async def all_events(self, job_id: UUID) -> list[Event]:
        rows = await JobEventRow.filter(job_id=job_id).using_db(self._db()).order_by("seq")
        return [event_of(r) for r in rows]

    def _db(self) -> Any:
        from tortoise import connections

        return connections.get(self.connection)

    def after_commit(self, view: JobView, event: Event, row_id: int) -> None:
        """Count the transition and tell the listener of an event just committed (`view`:
        the job after it)."""
        metrics.record_transition(view.type, event.type.value)
        if view.state.is_final:
            # A final event: the job ended with it (no event is recorded after one).
            began = view.started_at or view.created_at
            metrics.record_finished(view.type, view.state.value, (event.at - began).total_seconds())
        if self.listener is None:
            return
        try:
            self.listener.committed(event, view.owner_id, row_id)
        except Exception:
            # The event is stored; a listener's failure must not turn that into an error.
            log.exception("the commit listener failed for event %s of %s", event.seq, event.job_id)


# The statements of every append and job read, written by hand: Tortoise's query builder and
# model instances cost more than the round trip itself (measured on MariaDB: a job read
# through the ORM 317 us of CPU, the same SELECT by hand 170 us). Values go through the
# models' own fields, so they are encoded and decoded exactly as the ORM would.
_JOB_FIELDS = meta(JobRow).fields_map
_EVENT_FIELDS = meta(JobEventRow).fields_map
_EVENT_COLUMNS = ("job_id", "seq", "type", "attempt", "at", "data", "owner_id")


@dataclass(frozen=True, slots=True)
class _Statements:
    quote: str
    mark: str
    select_job: str
    lock_job: str
    insert_event: str


@functools.cache
def statements(dialect: str) -> _Statements:
    mysql = dialect == "mysql"
    q, m = ("`", "%s") if mysql else ('"', "?")
    jobs, events = meta(JobRow), meta(JobEventRow)
    columns = ", ".join(f"{q}{jobs.fields_db_projection[n]}{q}" for n in ("id", *VIEW_FIELDS))
    select = f"SELECT {columns} FROM {q}{jobs.db_table}{q} WHERE {q}id{q}={m}"
    event_columns = ", ".join(f"{q}{events.fields_db_projection[n]}{q}" for n in _EVENT_COLUMNS)
    return _Statements(
        quote=q,
        mark=m,
        select_job=select,
        # SQLite has no FOR UPDATE: its writes start with BEGIN IMMEDIATE (sqlite_engine.py),
        # which takes the database's write lock for the whole transaction.
        lock_job=select + (" FOR UPDATE" if mysql else ""),
        insert_event=(
            f"INSERT INTO {q}{events.db_table}{q} ({event_columns}) "
            f"VALUES ({', '.join([m] * len(_EVENT_COLUMNS))})"
        ),
    )


async def _read_view(conn: Any, job_id: UUID, *, lock: bool = False) -> JobView | None:
    sql = statements(conn.capabilities.dialect)
    rows = await conn.execute_query_dict(sql.lock_job if lock else sql.select_job, job_key(job_id))
    return job_view(rows[0]) if rows else None


def job_key(job_id: UUID) -> list[Any]:
    """The parameters of a statement selecting one job by id."""
    return [_JOB_FIELDS["id"].to_db_value(job_id, JobRow)]


def job_view(row: dict[str, Any]) -> JobView:
    """The view of a `jobs` row as the driver returned it (column -> value)."""
    return view_of(from_row(JobRow, row))


def update_sql(
    dialect: str, job_id: UUID, changed: dict[str, Any], at_seq: int | None = None
) -> tuple[str, list[Any]]:
    """The UPDATE writing a job's changed fields; with `at_seq`, only while it is at that seq."""
    sql = statements(dialect)
    q, m = sql.quote, sql.mark
    columns = [meta(JobRow).fields_db_projection[name] for name in changed]
    assignments = ", ".join(f"{q}{column}{q}={m}" for column in columns)
    values = [_JOB_FIELDS[name].to_db_value(value, JobRow) for name, value in changed.items()]
    values += job_key(job_id)
    where = f"{q}id{q}={m}"
    if at_seq is not None:
        where += f" AND {q}last_seq{q}={m}"
        values.append(at_seq)
    return f"UPDATE {q}{meta(JobRow).db_table}{q} SET {assignments} WHERE {where}", values


async def _update_view(
    conn: Any, job_id: UUID, changed: dict[str, Any], *, at_seq: int | None = None
) -> int:
    """Write the changed fields of a job's row; how many rows changed (0 or 1)."""
    if not changed:
        return 0
    count, _ = await conn.execute_query(
        *update_sql(conn.capabilities.dialect, job_id, changed, at_seq)
    )
    return int(count)


async def _update_views(conn: Any, changes: Sequence[tuple[JobView, JobView]]) -> None:
    """Write several jobs' changed fields in one UPDATE (a CASE on the id per column).

    Only the columns some event changed are sent: an upsert of whole rows re-encoded every
    job's payload, a fifth of the batch's CPU.
    """
    names: dict[str, None] = {}
    for old, new in changes:
        names.update(dict.fromkeys(changed_fields(old, new)))
    if not names:
        return
    sql = statements(conn.capabilities.dialect)
    q, m = sql.quote, sql.mark
    keys = [job_key(new.id)[0] for _, new in changes]
    assignments, values = [], []
    for name in names:
        column = meta(JobRow).fields_db_projection[name]
        field = _JOB_FIELDS[name]
        whens = " ".join([f"WHEN {m} THEN {m}"] * len(changes))
        assignments.append(f"{q}{column}{q} = CASE {q}id{q} {whens} END")
        for key, (_, new) in zip(keys, changes, strict=True):
            values += [key, field.to_db_value(getattr(new, name), JobRow)]
    values += keys
    marks = ", ".join([m] * len(keys))
    await conn.execute_query(
        f"UPDATE {q}{meta(JobRow).db_table}{q} SET {', '.join(assignments)} "
        f"WHERE {q}id{q} IN ({marks})",
        values,
    )


def _event_values(event: Event, owner_id: UUID | None) -> list[Any]:
    """An event's row as the INSERT takes it (_EVENT_COLUMNS' order), encoded by its fields."""
    row = (event.job_id, event.seq, event.type, event.attempt, event.at, event.data, owner_id)
    return [
        _EVENT_FIELDS[name].to_db_value(value, JobEventRow)
        for name, value in zip(_EVENT_COLUMNS, row, strict=True)
    ]


def insert_events_sql(
    dialect: str, events: Sequence[Event], owners: Sequence[UUID | None]
) -> tuple[str, list[Any]]:
    """One INSERT of events, each with its job's owner. On MariaDB the rows of one such
    INSERT get consecutive ids in order, LAST_INSERT_ID the first (JobStore._consecutive_ids)."""
    head, _, row = statements(dialect).insert_event.partition(" VALUES ")
    values = [
        value
        for event, owner in zip(events, owners, strict=True)
        for value in _event_values(event, owner)
    ]
    return f"{head} VALUES {', '.join([row] * len(events))}", values


async def _read_views(conn: Any, job_ids: Sequence[UUID], *, lock: bool) -> list[JobView]:
    """The views of the jobs found among `job_ids`; with `lock`, their rows locked."""
    sql = statements(conn.capabilities.dialect)
    head = sql.select_job.rsplit(" WHERE ", 1)[0]
    marks = ", ".join([sql.mark] * len(job_ids))
    query = f"{head} WHERE {sql.quote}id{sql.quote} IN ({marks})"
    if lock and conn.capabilities.dialect == "mysql":
        query += " FOR UPDATE"
    keys = [value for job_id in job_ids for value in job_key(job_id)]
    return [job_view(row) for row in await conn.execute_query_dict(query, keys)]


def _next_event(view: JobView, step: Step, attempt: int) -> Event:
    return Event(
        view.id, view.last_seq + 1, step.type, attempt, step.at or utcnow(), step.data or {}
    )


class _Moved(Exception):
    """The job's row is no longer at the expected last_seq (append_chain's `expect`)."""


def plan(expect: JobView, steps: Sequence[Step], attempt: int | None) -> list[Appended] | None:
    """The outcomes of `steps` on `expect`, when none needs a look at earlier events."""
    planned: list[Appended] = []
    view = expect
    for step in steps:
        at_attempt = view.attempt if attempt is None else attempt
        if step.type not in REPEATABLE and not _surely_new(view, step.type, at_attempt):
            return None
        event = _next_event(view, step, at_attempt)
        try:
            view = apply(view, event)
        except InvalidTransition:
            return None
        planned.append(Appended(view, event))
    return planned


def _row_fields(view: JobView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in VIEW_FIELDS}


def changed_fields(old: JobView, new: JobView) -> dict[str, Any]:
    return {name: value for name, value in _row_fields(new).items() if value != getattr(old, name)}


def _surely_new(view: JobView, type: EventType, attempt: int) -> bool:
    """Whether `type` cannot have been recorded already in this attempt, so no look is needed.

    A legal transition of the current attempt that leaves its state cannot have happened
    in this attempt before: no path of the state machine leads back to its source state
    without an event that ends the attempt (retrying, worker_lost). Self-loops
    (cancel_requested: running -> running) are not covered and are looked up.
    """
    if attempt != view.attempt or not can_follow(view.state, type):
        return False
    return next_state(view.state, type) is not view.state


async def insert_rows(conn: Any, model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (dicts of field values, the same keys each) in one multi-row INSERT.

    Values are encoded by the model's fields, as Tortoise's own create() does; aiomysql's
    executemany sends one statement for all rows.
    """
    if not rows:
        return
    info = meta(model)
    names = list(rows[0])
    # Fields left out get their model default, as create() would give them.
    defaults = {
        name: field.default() if callable(field.default) else field.default
        for name, field in info.fields_map.items()
        if name in info.fields_db_projection
        and name not in names
        and field.default is not None
        and not field.generated
    }
    names += defaults
    columns = [info.fields_db_projection[name] for name in names]
    fields = [info.fields_map[name] for name in names]
    values = [
        [
            field.to_db_value(row[name] if name in row else defaults[name], model)
            for name, field in zip(names, fields, strict=True)
        ]
        for row in rows
    ]
    mysql = conn.capabilities.dialect == "mysql"
    quote, mark = ("`", "%s") if mysql else ('"', "?")
    quoted = {c: f"{quote}{c}{quote}" for c in columns}
    sql = (
        f"INSERT INTO {quote}{info.db_table}{quote} ({', '.join(quoted.values())}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    await conn.execute_many(sql, values)


def _index_for(query: JobQuery) -> str:
    # A state filter goes by its index (a type given too is then checked row by row).
    if query.owner_id is not None:
        if query.state is not None:
            return models.IDX_OWNER_STATE
        return models.IDX_OWNER_TYPE if query.type is not None else models.IDX_OWNER_CREATED
    if query.state is not None:
        return models.IDX_STATE
    return models.IDX_TYPE if query.type is not None else models.IDX_CREATED


__all__: Sequence[str] = (
    "Appended",
    "Change",
    "DuplicateIdempotencyKey",
    "JobQuery",
    "JobStore",
    "NewJob",
    "Step",
)
