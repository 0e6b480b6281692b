"""The outbox: job attempts waiting to be published, and the claims that keep publishers apart.

A row is written in the transaction that makes an attempt due (the `submitted` event, or
the `retrying` event of a retry on request) and deleted in the transaction that records
`queued`. Whoever publishes first claims the row: the submitting request claims it when it
writes it; a relay claims free rows in batches. A claim moves `available_at` one lease into
the future under a fresh token, in one conditional UPDATE, so two relays never hold the same
row; on MariaDB the candidate rows are also read with FOR UPDATE SKIP LOCKED so racing
relays split a backlog instead of queueing behind each other's locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from jobline.compat.tortoise import meta
from jobline.dialects import dialect_of
from jobline.jobs import pipeline
from jobline.jobs.models import DispatchRow
from jobline.jobs.projection import JobView
from jobline.jobs.reads import as_utc
from jobline.jobs.sql import insert_rows
from jobline.jobs.store import BatchTxHook, TxHook, utcnow

# A row appears and goes between a put_back's INSERT and its UPDATE only when a publisher
# races it; one more round sorts that out.
PUT_BACK_TRIES = 3
# A publish error is kept for the operator; the column is TEXT, the message need not be whole.
ERROR_TEXT_MAX = 1000


def task_id_for(job_id: UUID, attempt: int) -> str:
    """Celery task id of one attempt; each attempt gets its own because a revoked id stays revoked."""
    return str(job_id) if attempt == 1 else f"{job_id}.{attempt}"


def attempt_of_task(task_id: str) -> int:
    """The attempt a task id of task_id_for() publishes (1 for an id without a suffix)."""
    _, dot, suffix = task_id.rpartition(".")
    return int(suffix) if dot and suffix.isdigit() else 1


def new_claim() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One claimed outbox row: publish attempt `attempt` of job `job_id` as `task_id`."""

    job_id: UUID
    attempt: int
    task_id: str
    due_at: datetime
    claim: str
    tries: int = 0


class Outbox:
    """The `job_dispatch` table, as seen by a publisher that knows `types` (None: every type)."""

    def __init__(self, connection: str = "default", types: Iterable[str] | None = None) -> None:
        self.connection = connection
        # Sorted: the claim query's IN list comes out the same each round.
        self.types = None if types is None else sorted(types)

    async def backlog(self, now: datetime) -> tuple[int, int, datetime | None]:
        """Every type's rows: how many, how many are due by `now`, the earliest due time."""
        rows = DispatchRow.all().using_db(self._db())
        total = await rows.count()
        due = await self.due(now)
        oldest = await rows.order_by("due_at").first().values_list("due_at", flat=True)
        return total, due, as_utc(oldest) if isinstance(oldest, datetime) else None

    @staticmethod
    def writer(
        attempt: int,
        due_at: datetime,
        claim: str | None,
        lease_seconds: float,
        *,
        only_if: Callable[[JobView], bool] | None = None,
    ) -> tuple[TxHook, list[Dispatch]]:
        """A hook writing the outbox row of `attempt` in the caller's transaction.

        With a `claim` the writer holds the row for one lease (it publishes at once);
        without, the row is free from `due_at` on. `only_if` sees the locked job and may
        skip the write (the event it goes with is a duplicate). The written Dispatch is
        appended to the returned list, which stays empty when skipped.
        """
        written: list[Dispatch] = []

        async def write(conn: Any, view: JobView) -> None:
            if only_if is not None and not only_if(view):
                return
            now = utcnow()
            available = now + timedelta(seconds=lease_seconds) if claim else due_at
            task_id = task_id_for(view.id, attempt)
            await DispatchRow.create(
                using_db=conn,
                job_id=view.id,
                attempt=attempt,
                task_id=task_id,
                type=view.type,
                due_at=due_at,
                available_at=available,
                claim=claim,
                created_at=now,
            )
            written.append(Dispatch(view.id, attempt, task_id, due_at, claim or ""))

        return write, written

    @staticmethod
    def writer_many(
        due_at: datetime, claim: str | None, lease_seconds: float
    ) -> tuple[BatchTxHook, list[Dispatch]]:
        """writer() for the first attempts of many new jobs, in one multi-row INSERT.

        One `claim` token holds every row of the batch (each row's claim is still its own:
        releasing or removing one never touches another).
        """
        written: list[Dispatch] = []

        async def write(conn: Any, views: Sequence[JobView]) -> None:
            now = utcnow()
            available = now + timedelta(seconds=lease_seconds) if claim else due_at
            batch = [
                Dispatch(
                    view.id, view.attempt, task_id_for(view.id, view.attempt), due_at, claim or ""
                )
                for view in views
            ]
            rows = [
                {
                    "job_id": d.job_id,
                    "attempt": d.attempt,
                    "task_id": d.task_id,
                    "type": view.type,
                    "due_at": due_at,
                    "available_at": available,
                    "claim": claim,
                    "created_at": now,
                }
                for d, view in zip(batch, views, strict=True)
            ]
            await insert_rows(conn, DispatchRow, rows)
            written.extend(batch)

        return write, written

    @staticmethod
    def remover_many(dispatches: Sequence[Dispatch]) -> BatchTxHook:
        """remover() of the published attempts of many jobs, in one DELETE per attempt number.

        Each row only while still under the claim it was published with (see remover()).
        """

        async def remove(conn: Any, _: Sequence[JobView]) -> None:
            by_key: dict[tuple[int, str], list[UUID]] = {}
            for dispatch in dispatches:
                by_key.setdefault((dispatch.attempt, dispatch.claim), []).append(dispatch.job_id)
            # Written by hand: on every batch of submits, the query builder's DELETE cost
            # more CPU than the statement's round trip.
            dialect = dialect_of(conn)
            q, m = dialect.ident, dialect.mark
            key = meta(DispatchRow).fields_map["job_id"]
            for (attempt, claim), job_ids in by_key.items():
                where = f"{q('job_id')} IN ({dialect.marks(len(job_ids))}) AND {q('attempt')}={m}"
                values: list[Any] = [key.to_db_value(job_id, DispatchRow) for job_id in job_ids]
                values.append(attempt)
                if claim:
                    where += f" AND {q('claim')}={m}"
                    values.append(claim)
                table = q(meta(DispatchRow).db_table)
                await pipeline.write(conn, f"DELETE FROM {table} WHERE {where}", values)

        return remove

    @staticmethod
    def remover(attempt: int | None = None, claim: str | None = None) -> TxHook:
        """A hook deleting the job's outbox rows (of one attempt, or all) in the caller's transaction.

        With a `claim`, only a row still under it: a worker that deferred the job meanwhile
        (queueing/fairness.py) took the row over for a later publish, which must stay.
        """

        async def remove(conn: Any, view: JobView) -> None:
            rows = DispatchRow.filter(job_id=view.id)
            if attempt is not None:
                rows = rows.filter(attempt=attempt)
            if claim:
                rows = rows.filter(claim=claim)
            await rows.using_db(conn).delete()

        return remove

    @staticmethod
    async def put_back(job_id: UUID, attempt: int, type: str, due_at: datetime) -> None:
        """Have an attempt published (again) from `due_at` on, recording nothing.

        The row is written, or, when one is there (its publisher has not yet recorded
        `queued`), taken over: freed of its claim, so that publisher's remover leaves it.
        """
        for _ in range(PUT_BACK_TRIES):
            try:
                await DispatchRow.create(
                    job_id=job_id,
                    attempt=attempt,
                    task_id=task_id_for(job_id, attempt),
                    type=type,
                    due_at=due_at,
                    available_at=due_at,
                    created_at=utcnow(),
                )
                return
            except IntegrityError:
                taken = await DispatchRow.filter(job_id=job_id, attempt=attempt).update(
                    due_at=due_at, available_at=due_at, claim=None
                )
                if taken:
                    return
        raise RuntimeError(f"the outbox row of {job_id} attempt {attempt} kept changing")

    async def claim(self, limit: int, lease_seconds: float) -> list[Dispatch]:
        """Claim up to `limit` free, due rows for one lease; oldest first."""
        now = utcnow()
        token = new_claim()
        async with in_transaction(self.connection) as conn:
            candidates = DispatchRow.filter(available_at__lte=now, due_at__lte=now)
            if self.types is not None:
                candidates = candidates.filter(type__in=self.types)
            candidates = candidates.order_by("available_at", "id").limit(limit)
            # Without row locks (SQLite: one writer at a time) the conditional UPDATE suffices.
            if dialect_of(conn).supports_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            # Rows, not values_list(): Tortoise drops FOR UPDATE from a values query.
            ids = [row.id for row in await candidates.only("id").using_db(conn)]
            if not ids:
                return []
            # Re-checked per row under its lock: a row another claimer took meanwhile no longer matches.
            await (
                DispatchRow.filter(id__in=ids, available_at__lte=now)
                .using_db(conn)
                .update(available_at=now + timedelta(seconds=lease_seconds), claim=token)
            )
            rows = await DispatchRow.filter(id__in=ids, claim=token).using_db(conn)
        return [
            Dispatch(r.job_id, r.attempt, r.task_id, r.due_at, token, r.tries)
            for r in sorted(rows, key=lambda r: r.id)
        ]

    async def release(self, dispatch: Dispatch, error: str, retry_in_seconds: float) -> None:
        """Give a claimed row back after a failed publish; it is free again after the delay."""
        await (
            DispatchRow.filter(
                job_id=dispatch.job_id, attempt=dispatch.attempt, claim=dispatch.claim
            )
            .using_db(self._db())
            .update(
                available_at=utcnow() + timedelta(seconds=retry_in_seconds),
                claim=None,
                tries=F("tries") + 1,
                last_error=error[:ERROR_TEXT_MAX],
            )
        )

    async def discard(self, dispatch: Dispatch) -> None:
        """Drop a row whose job no longer waits for it (cancelled, or already delivered)."""
        await (
            DispatchRow.filter(job_id=dispatch.job_id, attempt=dispatch.attempt)
            .using_db(self._db())
            .delete()
        )

    async def due(self, now: datetime | None = None) -> int:
        """How many attempts are due by `now` (default: now) and not yet published, claimed
        or not: the backlog."""
        at = utcnow() if now is None else now
        return await DispatchRow.filter(due_at__lte=at).using_db(self._db()).count()

    def _db(self) -> Any:
        return connections.get(self.connection)
