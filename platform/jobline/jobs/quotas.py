"""The cap on each owner's unfinished jobs, held under concurrent submits (streams: api/quotas.py).

Every admission of new unfinished jobs (a submit, a batch of submits, a retry) decides
inside the transaction that stores them, under the owner's row of `active_jobs_bounds`
(SELECT ... FOR UPDATE on MariaDB; SQLite's writers run one at a time anyway, the store
begins them as the writer). Two submits of one owner, in any API processes, therefore
decide one after the other, and the second sees what the first committed: the cap holds
exactly, however many arrive at once.

Counting an owner's unfinished jobs on every submit would read up to the cap's number of
index entries each time. The row keeps instead an upper bound of them: the last count
plus everything admitted since (jobs finish elsewhere, which only makes it higher than
the truth). While the bound shows room and is younger than
JOBLINE_ACTIVE_JOBS_RECHECK_SECONDS, a submit (or a batch, per owner) costs one UPDATE
that adds to the bound only under those conditions, locking the row as it does; at the
cap, or once stale, the row is locked and the jobs are counted again under the lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from jobline.compat.tortoise import from_row, meta
from jobline.dialects import dialect_of
from jobline.errors import TooManyActiveJobs
from jobline.jobs import pipeline
from jobline.jobs.models import ActiveJobsBound, JobRow
from jobline.jobs.states import ACTIVE_STATES

# A new row has never been counted: its first admission counts.
NEVER = "1970-01-01 00:00:00"


def too_many(limit: int) -> TooManyActiveJobs:
    """The error of a submit past the cap."""
    return TooManyActiveJobs(
        f"you have {limit} jobs that have not finished; wait for some to finish or "
        "cancel them (the limit is JOBLINE_MAX_ACTIVE_JOBS_PER_USER)"
    )


class ActiveJobsCap:
    """Admits new unfinished jobs per owner, up to `limit`, inside the caller's transaction."""

    def __init__(self, limit: int, recheck_seconds: float) -> None:
        self.limit = limit
        self.recheck_seconds = recheck_seconds

    async def admit(self, conn: Any, wanted: Mapping[UUID, int]) -> dict[UUID, int]:
        """How many of each owner's `wanted` new jobs fit; the transaction must store them.

        Locks each owner's row first, in one order (no two admissions wait on each other
        in a cycle), and only then counts: every count sees what the lock's previous
        holder committed.
        """
        owners = sorted(wanted, key=str)
        now = datetime.now(UTC)
        admitted: dict[UUID, int] = {}
        for owner in owners:
            # Nearly always the bound is fresh and shows room: one conditional UPDATE,
            # taking the row's lock as it adds, decides (2 statements fewer per batch).
            if await _add_if_room(
                conn, owner, wanted[owner], self.limit, now, self.recheck_seconds
            ):
                admitted[owner] = wanted[owner]
                continue
            row = await _locked_row(conn, owner)
            bound, counted_at = row.bound, row.counted_at
            stale = (now - counted_at).total_seconds() >= self.recheck_seconds
            if stale or bound + wanted[owner] > self.limit:
                bound, counted_at = await count_active_jobs(conn, owner, self.limit), now
            admitted[owner] = max(0, min(wanted[owner], self.limit - bound))
            await _update_row(conn, owner, bound + admitted[owner], counted_at)
        return admitted

    async def admit_one(self, conn: Any, owner: UUID) -> None:
        """Admit one new unfinished job of the owner, or raise TooManyActiveJobs."""
        if (await self.admit(conn, {owner: 1}))[owner] < 1:
            raise too_many(self.limit)


async def _locked_row(conn: Any, owner: UUID) -> ActiveJobsBound:
    # Made on first use; a concurrent first use waits on this insert's key, then takes the
    # present row's lock just the same (the dialect's insert-if-absent).
    insert = dialect_of(conn).insert_if_absent_sql(
        meta(ActiveJobsBound).db_table, ("owner_id", "bound", "counted_at"), touch="bound"
    )
    await conn.execute_query(insert, [str(owner), 0, NEVER])
    # This and _update_row are written by hand: they run in every batch of submits, where
    # the query builder cost more CPU than the statements' round trips.
    dialect = dialect_of(conn)
    q, m = dialect.ident, dialect.mark
    columns = ", ".join(q(c) for c in ("owner_id", "bound", "counted_at"))
    rows = await conn.execute_query_dict(
        f"SELECT {columns} FROM {q(meta(ActiveJobsBound).db_table)} "
        f"WHERE {q('owner_id')}={m}{dialect.for_update}",
        [str(owner)],
    )
    return from_row(ActiveJobsBound, rows[0])


async def _add_if_room(
    conn: Any, owner: UUID, wanted: int, limit: int, now: datetime, recheck_seconds: float
) -> bool:
    """Add `wanted` to the owner's bound if its row exists, was counted less than
    `recheck_seconds` before `now` and has room for them all; whether it did."""
    dialect = dialect_of(conn)
    q, m = dialect.ident, dialect.mark
    field = meta(ActiveJobsBound).fields_map["counted_at"]
    fresh_since = field.to_db_value(now - timedelta(seconds=recheck_seconds), ActiveJobsBound)
    count, _ = await conn.execute_query(
        f"UPDATE {q(meta(ActiveJobsBound).db_table)} SET {q('bound')}={q('bound')}+{m} "
        f"WHERE {q('owner_id')}={m} AND {q('bound')}+{m}<={m} AND {q('counted_at')}>{m}",
        [wanted, str(owner), wanted, limit, fresh_since],
    )
    return int(count) == 1


async def _update_row(conn: Any, owner: UUID, bound: int, counted_at: datetime) -> None:
    dialect = dialect_of(conn)
    q, m = dialect.ident, dialect.mark
    when = meta(ActiveJobsBound).fields_map["counted_at"].to_db_value(counted_at, ActiveJobsBound)
    await pipeline.write(
        conn,
        f"UPDATE {q(meta(ActiveJobsBound).db_table)} SET {q('bound')}={m}, {q('counted_at')}={m} "
        f"WHERE {q('owner_id')}={m}",
        [bound, when, str(owner)],
    )


async def count_active_jobs(conn: Any, owner_id: UUID, limit: int) -> int:
    """The owner's unfinished jobs, counted up to `limit`: at most `limit` index entries
    (owner, state) are read, however many jobs the owner has, and no row leaves MariaDB."""
    dialect = dialect_of(conn)
    mark, q = dialect.mark, dialect.ident
    _, rows = await conn.execute_query(
        f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM {q(meta(JobRow).db_table)} "
        f"WHERE {q('owner_id')} = {mark} AND {q('state')} IN ({dialect.marks(len(ACTIVE_STATES))}) "
        f"LIMIT {mark}) AS active",
        [str(owner_id), *(state.value for state in ACTIVE_STATES), limit],
    )
    return int(rows[0]["n"])
