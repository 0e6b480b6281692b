"""A worker's common case written from the task's own thread, on a plain pymysql connection.

A Celery task thread hands every database call to the worker's event loop (aiomysql under
Tortoise): per statement some 70 us of CPU, and a thread hand-over each way. The common
case of a job - read it when it is delivered, then record `started` and the outcome on the
view read - needs neither the loop nor the ORM: here it is five statements (SELECT, BEGIN,
UPDATE, INSERT, COMMIT) on a connection of the task's thread, about 30 us each
(bench/worker_body.py). They go in two round trips, not five (the connection allows several
statements per request): the read, then the write whole, its INSERT conditional on the
UPDATE having changed the row (ROW_COUNT()), a fair-share slot's release after the COMMIT.
Where that cannot be (a refusal to judge on the row as updated), the write takes two:
BEGIN with the UPDATE, whose row count is awaited, then the INSERT with the COMMIT. The
decision (jobs/decision.py), the statements (jobs/sql.py) and the database's dialect are
JobStore's own.

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
# Sent with the statements that follow them (the connection allows several per request).
BEGIN = "START TRANSACTION"
COMMIT = "COMMIT"


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

    def release_with_commit(self, name: str | None) -> None:
        """Have the next commit on this thread's connection release the named lock `name`
        in its own request (one round trip less per job); None: no longer."""
        self._local.release = name

    def release_slot(self, name: str) -> None:
        """Release a named lock taken by get_with_slot() on this thread's connection,
        unless a commit released it already (release_with_commit)."""
        if getattr(self._local, "released", None) == name:
            self._local.released = None
            return
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
        """JobStore.append_chain(expect=...) when nothing moved; None: take its path.

        `check` sees each step's outcome and raises to refuse it; it writes nothing.
        """
        planned = plan(expect, steps, attempt, clock=utcnow)
        if planned is None:
            return None
        events = [done.event for done in planned if done.event is not None]
        update, values = sql.update_sql(
            self.dialect, expect.id, sql.changed_fields(expect, planned[-1].view), expect.last_seq
        )
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                self._ensure_consecutive_known(cur)
                insert = self._insert_after_update(events, expect.owner_id, planned, check)
                if insert is not None:
                    row_ids = self._in_one_request(cur, update, values, insert, len(events))
                    if row_ids is None:
                        return None  # moved on since it was read: nothing was written
                else:
                    # One round trip: the transaction opens with the compare-and-set.
                    cur.execute(f"{BEGIN}; {update}", values)
                    cur.nextset()
                    if cur.rowcount != 1:
                        conn.rollback()
                        return None  # moved on since it was read
                    _check_all(planned, check)
                    # One round trip: the events and the commit. A failing INSERT stops
                    # the request there: nothing is committed, and the rollback below
                    # undoes it.
                    row_ids = self._insert_and_commit(cur, events, expect.owner_id)
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

    def _insert_after_update(
        self,
        events: Sequence[Any],
        owner_id: UUID | None,
        planned: Sequence[Appended],
        check: Callable[[int, Appended], None] | None,
    ) -> tuple[str, list[Any]] | None:
        """The events' INSERT written only if the UPDATE before it changed the row, where
        the whole write can go in one request: the ids are consecutive and `check` passes.
        A refusal takes the path that checks once the compare-and-set held, as it must be
        judged on that row."""
        if not events or not self._consecutive:
            return None
        try:
            _check_all(planned, check)
        except Exception:
            return None
        return sql.insert_events_if_one_changed_sql(self.dialect, events, owner_id)

    def _in_one_request(
        self, cur: Any, update: str, values: list[Any], insert: tuple[str, list[Any]], count: int
    ) -> list[int] | None:
        """BEGIN, the compare-and-set UPDATE, the INSERT conditional on it, COMMIT and any
        fair-share slot's release in one request: the rows' ids, or None when the UPDATE
        found the row moved on (the INSERT then wrote nothing, the COMMIT committed
        nothing). The slot goes back either way: it is the run's, over by now, and the
        store's path records the outcome of a row that moved on right after."""
        query, more = insert
        release: str | None = getattr(self._local, "release", None)
        statements = [BEGIN, update, query, COMMIT]
        if release is not None:
            statements.append(self.dialect.release_lock_sql())
            more = [*more, release]
        cur.execute("; ".join(statements), [*values, *more])
        answers = [(cur.rowcount, cur.lastrowid)]
        for _ in range(3):  # the UPDATE's, the INSERT's and the COMMIT's: a failure raises
            cur.nextset()
            answers.append((cur.rowcount, cur.lastrowid))
        if release is not None:
            self._release_answered(cur, release)
        (updated, _), (inserted, first) = answers[1], answers[2]
        if updated != 1:
            return None
        if inserted != count:
            # Committed already: the database told the INSERT another count than the
            # UPDATE's. Never seen; loud, since the job's view and its history now differ.
            raise RuntimeError(f"{inserted} of {count} events written after the job's UPDATE")
        return [int(first) + i for i in range(count)]

    def _release_answered(self, cur: Any, release: str) -> None:
        """Read the answer of a slot's release sent after a COMMIT that succeeded."""
        self._local.release = None
        # Committed: a failure now is the lock's alone, and release_slot() retries it.
        try:
            cur.nextset()
        except Exception:
            log.warning("releasing %s with the commit failed", release, exc_info=True)
        else:
            self._local.released = release

    def _ensure_consecutive_known(self, cur: Any) -> None:
        if self._consecutive is None:
            query = self.dialect.consecutive_ids_query
            if query is not None:
                cur.execute(query)
            self._consecutive = query is not None and self.dialect.ids_are_consecutive(
                cur.fetchone()[0]
            )

    def _insert_and_commit(
        self, cur: Any, events: Sequence[Any], owner_id: UUID | None
    ) -> list[int]:
        """The events' INSERT (one, or one per event when ids may not be consecutive) and
        COMMIT, sent together; the rows' ids."""
        inserts = (
            [sql.insert_events_sql(self.dialect, events, [owner_id] * len(events))]
            if self._consecutive
            else [sql.insert_events_sql(self.dialect, [event], [owner_id]) for event in events]
        )
        release: str | None = getattr(self._local, "release", None)
        tail = [COMMIT] if release is None else [COMMIT, self.dialect.release_lock_sql()]
        text = "; ".join([*(query for query, _ in inserts), *tail])
        values = [value for _, each in inserts for value in each]
        cur.execute(text, values if release is None else [*values, release])
        ids = [int(cur.lastrowid)]
        for _ in inserts[1:]:
            cur.nextset()
            ids.append(int(cur.lastrowid))
        cur.nextset()  # the COMMIT's answer: it failed if it raises here
        if release is not None:
            self._release_answered(cur, release)
        if self._consecutive:
            ids = [ids[0] + i for i in range(len(events))]
        return ids


def _check_all(planned: Sequence[Appended], check: Callable[[int, Appended], None] | None) -> None:
    """Have `check` judge each planned step; it raises to refuse one."""
    if check is not None:
        for index, done in enumerate(planned):
            check(index, done)
