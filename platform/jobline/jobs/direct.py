"""A worker's common case written from the task's own thread, on a plain pymysql connection.

A Celery task thread hands every database call to the worker's event loop (aiomysql under
Tortoise): per statement some 70 us of CPU, and a thread hand-over each way. The common
case of a job - read it when it is delivered, then record `started` and the outcome on the
view read - needs neither the loop nor the ORM: here it is five statements (SELECT, BEGIN,
UPDATE, INSERT, COMMIT) on a connection of the task's thread, about 30 us each
(bench/worker_body.py). The decision (jobs/decision.py), the statements (jobs/sql.py) and
the database's dialect are JobStore's own.

Whatever else may happen - the row moved on since it was read, a step needs a look at
earlier events, a write must commit with an outbox row - returns None, and the caller
takes JobStore's path. Only for a dialect with a `sync_connector` (MySQL/MariaDB);
SQLite, the embedded default, always takes that path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from jobline.dialects import Dialect
from jobline.jobs import sql
from jobline.jobs.decision import Appended, Step, plan
from jobline.jobs.projection import JobView
from jobline.jobs.store import JobStore, utcnow

log = logging.getLogger("jobline.jobs")
# The extra column of get_with_slot()'s SELECT: the named lock taken, or NULL.
SLOT_COLUMN = "jobline_slot"


class DirectWriter:
    """JobStore's read and compare-and-set append, synchronous, one connection per thread."""

    def __init__(self, connect: Callable[[], Any], store: JobStore, dialect: Dialect) -> None:
        self.connect = connect
        self.dialect = dialect
        # Its commit listener (live streams' notices) is told of what is written here too.
        self.store = store
        self._local = threading.local()
        self._consecutive: bool | None = None

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.connect()
        return conn

    def _drop(self) -> None:
        # After an error the connection's state is unknown: the next call opens another.
        conn, self._local.conn = getattr(self._local, "conn", None), None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.debug("closing a broken connection failed", exc_info=True)

    def _fetch(self, query: str, job_id: UUID) -> dict[str, Any] | None:
        """The one row of a SELECT of a job, column -> value, or None."""
        try:
            with self._connection().cursor() as cur:
                cur.execute(query, sql.job_key(job_id))
                row = cur.fetchone()
                columns = [column[0] for column in cur.description or ()]
        except Exception:
            self._drop()
            raise
        return None if row is None else dict(zip(columns, row, strict=True))

    def get(self, job_id: UUID) -> JobView | None:
        """The job's view, read as the store reads it, or None."""
        row = self._fetch(sql.statements(self.dialect).select_job, job_id)
        return None if row is None else sql.job_view(row)

    def get_with_slot(self, job_id: UUID, select: str) -> tuple[JobView | None, str | None]:
        """get() by a SELECT that also takes a named lock (queueing/fairness.py): the job,
        and the lock's name, or None when none was free. The lock is this thread's
        connection's until release_slot()."""
        row = self._fetch(select, job_id)
        if row is None:
            return None, None
        slot = row.pop(SLOT_COLUMN)
        return sql.job_view(row), None if slot is None else str(slot)

    def release_slot(self, name: str) -> None:
        """Release a named lock taken by get_with_slot() on this thread's connection."""
        try:
            with self._connection().cursor() as cur:
                cur.execute(self.dialect.release_lock_sql(), [name])
        except Exception:
            self._drop()
            raise

    def append_expected(
        self,
        expect: JobView,
        steps: Sequence[Step],
        attempt: int | None,
        check: Callable[[int, Appended], None] | None = None,
    ) -> list[Appended] | None:
        """JobStore.append_chain(expect=...) when nothing moved; None: take its path."""
        planned = plan(expect, steps, attempt, clock=utcnow)
        if planned is None:
            return None
        events = [done.event for done in planned if done.event is not None]
        conn = self._connection()
        try:
            conn.begin()
            with conn.cursor() as cur:
                update, values = sql.update_sql(
                    self.dialect,
                    expect.id,
                    sql.changed_fields(expect, planned[-1].view),
                    expect.last_seq,
                )
                if cur.execute(update, values) != 1:
                    conn.rollback()
                    return None  # moved on since it was read
                if check is not None:
                    for index, done in enumerate(planned):
                        check(index, done)
                row_ids = self._insert(cur, events, expect.owner_id)
            conn.commit()
        except BaseException:
            # A refusal (check) leaves a sound connection; a lost one is not used again.
            try:
                conn.rollback()
            except Exception:
                self._drop()
            else:
                if not conn.open:
                    self._drop()
            raise
        for event, done, row_id in zip(events, planned, row_ids, strict=True):
            self.store.after_commit(done.view, event, row_id)
        return planned

    def _insert(self, cur: Any, events: Sequence[Any], owner_id: UUID | None) -> list[int]:
        if self._consecutive is None:
            query = self.dialect.consecutive_ids_query
            if query is not None:
                cur.execute(query)
            self._consecutive = query is not None and self.dialect.ids_are_consecutive(
                cur.fetchone()[0]
            )
        if self._consecutive:
            cur.execute(*sql.insert_events_sql(self.dialect, events, [owner_id] * len(events)))
            return [int(cur.lastrowid) + i for i in range(len(events))]
        ids = []
        for event in events:
            cur.execute(*sql.insert_events_sql(self.dialect, [event], [owner_id]))
            ids.append(int(cur.lastrowid))
        return ids
