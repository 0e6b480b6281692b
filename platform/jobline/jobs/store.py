"""The event store: append an event and rewrite the projection in one transaction.

Only the transactions live here: what an event does to a job is jobs/decision.py's,
the statements are jobs/sql.py's, and how the database spells them is its Dialect's
(jobline/dialects).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any
from uuid import UUID

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from jobline import metrics
from jobline.dialects import Dialect, dialect_of
from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs import pipeline, reads, sql
from jobline.jobs.changes import (
    AdmitHook,
    BatchTxHook,
    Change,
    CommitListener,
    DuplicateIdempotencyKey,
    NewJob,
    NotAdmitted,
    TxHook,
    utcnow,
)
from jobline.jobs.decision import Appended, Step, admitted, decide, needs_lookup, per_owner, plan
from jobline.jobs.events import Event, EventType
from jobline.jobs.models import JobRow
from jobline.jobs.projection import JobView, start
from jobline.jobs.reads import JobQuery, JobReads
from jobline.jobs.sql import changed_fields

log = logging.getLogger("jobline.jobs")


class _Moved(Exception):
    """The job's row is no longer at the expected last_seq (append_chain's `expect`)."""


class JobStore(JobReads):
    """Jobs and their events in the Tortoise database (SQLite or MySQL through aiomysql)."""

    def __init__(
        self,
        connection: str = "default",
        *,
        listener: CommitListener | None = None,
    ) -> None:
        self.connection = connection
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
                    **sql.row_fields(view),
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
            planned = plan(expect, steps, attempt, clock=lambda: utcnow())
            if planned is not None:
                try:
                    return await self._append_expected(expect, planned, also, check)
                except _Moved:
                    pass  # another writer got there first: read, lock and decide afresh
        outcomes: list[Appended] = []
        row_ids: dict[tuple[UUID, int], int] = {}
        async with in_transaction(self.connection) as conn:
            found = await sql.read_view(conn, job_id, lock=True)
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
                await sql.update_view(conn, job_id, changed_fields(locked, view))
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
            if await sql.update_view(conn, expect.id, changed, at_seq=expect.last_seq) != 1:
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

    async def _consecutive_ids(self, conn: Any, dialect: Dialect) -> bool:
        if self._consecutive is None:
            query = dialect.consecutive_ids_query
            if query is None:
                self._consecutive = False
            else:
                (row,) = await conn.execute_query_dict(query)
                self._consecutive = dialect.ids_are_consecutive(next(iter(row.values())))
        return self._consecutive

    @staticmethod
    async def _step(conn: Any, view: JobView, step: Step, attempt: int | None) -> Appended:
        """One event on a locked job's view: its outcome, nothing written yet."""
        earlier = None
        if needs_lookup(view, step.type, attempt):
            at_attempt = view.attempt if attempt is None else attempt
            earlier = await reads.earlier_event(conn, view.id, at_attempt, step.type)
        return decide(view, step.type, step.data, attempt, step.at or utcnow(), earlier)

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
            async with await self._batch_transaction() as conn:
                if admit is not None:
                    keep = admitted(views, await admit(conn, per_owner(views)))
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
                        **sql.row_fields(view),
                    }
                    for job, view in zip(jobs, views, strict=True)
                ]
                await sql.insert_rows(conn, JobRow, rows)
                row_ids = await self._write_events(events, [v.owner_id for v in views], conn)
                if also is not None:
                    await also(conn, views)
        except IntegrityError as exc:
            keys = [job.idempotency_key for job in jobs if job.idempotency_key is not None]
            if keys:
                raise DuplicateIdempotencyKey(", ".join(keys)) from exc
            raise
        ids = row_ids()
        for event, view in zip(events, views, strict=True):
            self.after_commit(view, event, ids[event.job_id, event.seq])
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
            views = {view.id: view for view in await sql.read_views(conn, ids, lock=True)}
            if also is not None:
                await also(conn, list(views.values()))
            once = {
                change.type
                for change in changes
                if change.job_id in views
                and needs_lookup(views[change.job_id], change.type, change.attempt)
            }
            earlier = await reads.earlier_events(conn, list(views), once) if once else {}
            at = utcnow()
            for change in changes:
                view = views.get(change.job_id)
                if view is None:
                    outcomes.append(JobNotFound(job_id=str(change.job_id)))
                    continue
                at_attempt = view.attempt if change.attempt is None else change.attempt
                before = earlier.get((change.job_id, at_attempt, change.type))
                try:
                    done = decide(view, change.type, change.data, change.attempt, at, before)
                except InvalidTransition as exc:
                    outcomes.append(exc)
                    continue
                outcomes.append(done)
                if done.event is not None:
                    appended.append((done.event, view, done.view))
            if appended:
                row_ids = await self._insert_events(
                    [event for event, _, _ in appended],
                    [view.owner_id for _, view, _ in appended],
                    conn,
                )
                # The rows are locked: one UPDATE writes what the events changed in all.
                await sql.update_views(conn, [(old, new) for _, old, new in appended])
        for event, _, new_view in appended:
            self.after_commit(new_view, event, row_ids[event.job_id, event.seq])
        return outcomes

    async def append_many_at(
        self, changes: Sequence[tuple[Change, JobView]], also: BatchTxHook | None = None
    ) -> list[Appended] | None:
        """append_many() for jobs whose views the caller holds (as it just stored them):
        each event decided on its view and written only while the job is still at it, by a
        compare-and-set UPDATE, in one transaction - no read and no row lock first.

        None, and nothing written, when any change is refused on its view or any job moved
        on meanwhile (cancelled, or started by a worker quicker than this commit): the
        caller then takes append_many(), which reads and locks.
        """
        at = utcnow()
        planned: list[tuple[JobView, Appended, Event]] = []
        for change, view in changes:
            if change.job_id != view.id or needs_lookup(view, change.type, change.attempt):
                return None
            try:
                done = decide(view, change.type, change.data, change.attempt, at, None)
            except InvalidTransition:
                return None
            if done.event is None:
                return None
            planned.append((view, done, done.event))
        if not planned:
            return []
        try:
            async with await self._batch_transaction() as conn:
                pairs = [(old, done.view) for old, done, _ in planned]
                if await sql.update_views(conn, pairs, at_seq=True) != len(planned):
                    raise _Moved()  # leaving the block rolls the UPDATE back
                if also is not None:
                    await also(conn, [old for old, _, _ in planned])
                events = [event for _, _, event in planned]
                owners = [old.owner_id for old, _, _ in planned]
                row_ids = await self._write_events(events, owners, conn)
        except _Moved:
            return None
        ids = row_ids()
        for _, done, event in planned:
            self.after_commit(done.view, event, ids[event.job_id, event.seq])
        return [done for _, done, _ in planned]

    async def _batch_transaction(self) -> AbstractAsyncContextManager[Any]:
        """The transaction of a batch path: pipelined where the dialect allows it and the
        events' row ids follow from the first (jobs/pipeline.py), else Tortoise's."""
        client = connections.get(self.connection)
        if await self._consecutive_ids(client, dialect_of(client)):
            return pipeline.transaction(self.connection)
        return in_transaction(self.connection)

    async def _write_events(
        self, events: Sequence[Event], owners: Sequence[UUID | None], conn: Any
    ) -> Callable[[], dict[tuple[UUID, int], int]]:
        """_insert_events() on a transaction that may hold the INSERT back: a function
        giving the row ids once it committed."""
        dialect = dialect_of(conn)
        if not isinstance(conn, pipeline.Pipelined):
            ids = await self._insert_events(events, owners, conn)
            return lambda: ids
        # Only chosen where the ids are consecutive (_batch_transaction).
        inserted = await pipeline.write(
            conn, *sql.insert_events_sql(dialect, events, owners), insert=True
        )
        return lambda: {(e.job_id, e.seq): inserted.lastrowid + i for i, e in enumerate(events)}

    async def _insert_events(
        self, events: Sequence[Event], owners: Sequence[UUID | None], conn: Any
    ) -> dict[tuple[UUID, int], int]:
        """Insert events (each with its job's owner) in one statement; their row ids by
        (job id, seq).

        A single row's id is the driver's last insert id. MariaDB gives the rows of one
        multi-row INSERT consecutive ids from LAST_INSERT_ID unless innodb_autoinc_lock_mode
        is 2 (interleaved, checked once); then, and on SQLite, they are read back.
        """
        dialect = dialect_of(conn)
        inserted = int(await conn.execute_insert(*sql.insert_events_sql(dialect, events, owners)))
        if len(events) == 1 or await self._consecutive_ids(conn, dialect):
            return {(event.job_id, event.seq): inserted + i for i, event in enumerate(events)}
        return await reads.event_row_ids(conn, events)

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


__all__: Sequence[str] = (
    "AdmitHook",
    "Appended",
    "BatchTxHook",
    "Change",
    "CommitListener",
    "DuplicateIdempotencyKey",
    "JobQuery",
    "JobStore",
    "NewJob",
    "NotAdmitted",
    "Step",
    "TxHook",
    "utcnow",
)
