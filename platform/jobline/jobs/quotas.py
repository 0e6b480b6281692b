"""Per-user caps on work held open: jobs not yet finished (here) and streams (api/quotas.py)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from uuid import UUID

from tortoise import connections

from jobline.errors import TooManyActiveJobs
from jobline.jobs.states import ACTIVE_STATES


class ActiveJobCounts:
    """Upper bounds of each owner's unfinished jobs, so a submit need not count them each time.

    A count read from the database, plus one for every submit let through since, can only
    be too high (jobs finish, none start unfinished without a submit): while that bound is
    under the limit and younger than `recheck_seconds`, the submit passes without a read.
    At the limit, or once stale, the jobs are counted again, by one submit at a time per
    owner (the others wait for its count rather than all counting at once).
    """

    def __init__(self) -> None:
        # Insertion order is age order: every entry is refreshed by moving it to the end.
        self._bounds: OrderedDict[UUID, tuple[float, int]] = OrderedDict()
        self._counting: dict[UUID, asyncio.Lock] = {}

    def admits(self, owner_id: UUID, limit: int, recheck_seconds: float) -> bool:
        """True (and the bound counts this submit) when the bound alone admits it."""
        now = time.monotonic()
        while self._bounds:
            oldest, (at, _) = next(iter(self._bounds.items()))
            if now - at < recheck_seconds:
                break
            del self._bounds[oldest]
        found = self._bounds.get(owner_id)
        if found is None or found[1] >= limit:
            return False
        self._bounds[owner_id] = (found[0], found[1] + 1)
        return True

    def counted(self, owner_id: UUID, count: int) -> None:
        """Record a count just read from the database (this submit included)."""
        self._bounds.pop(owner_id, None)
        self._bounds[owner_id] = (time.monotonic(), count)

    def lock(self, owner_id: UUID) -> asyncio.Lock:
        return self._counting.setdefault(owner_id, asyncio.Lock())

    def unlock(self, owner_id: UUID, lock: asyncio.Lock) -> None:
        if not lock.locked() and self._counting.get(owner_id) is lock:
            del self._counting[owner_id]


active_job_counts = ActiveJobCounts()


async def count_active_jobs(owner_id: UUID, limit: int) -> int:
    """The owner's unfinished jobs, counted up to `limit`: at most `limit` index entries
    (owner, state) are read, however many jobs the owner has, and no row leaves MariaDB."""
    db = connections.get("default")
    mark = "%s" if db.capabilities.dialect == "mysql" else "?"
    states = ", ".join([mark] * len(ACTIVE_STATES))
    _, rows = await db.execute_query(
        f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM jobs WHERE owner_id = {mark} "
        f"AND state IN ({states}) LIMIT {mark}) AS active",
        [str(owner_id), *(state.value for state in ACTIVE_STATES), limit],
    )
    return int(rows[0]["n"])


async def check_active_jobs(owner_id: UUID, limit: int, recheck_seconds: float = 0.0) -> None:
    """Raise TooManyActiveJobs when the owner already has `limit` unfinished jobs.

    Counts only when the last count of this process, plus the submits since, no longer
    shows room (see ActiveJobCounts). Concurrent submits may each pass the check: the cap
    can be passed by the number of submits in flight at that moment, never by more.
    """
    if recheck_seconds <= 0:
        active = await count_active_jobs(owner_id, limit)
    else:
        if active_job_counts.admits(owner_id, limit, recheck_seconds):
            return
        lock = active_job_counts.lock(owner_id)
        try:
            async with lock:
                # Another submit may have counted while this one waited.
                if active_job_counts.admits(owner_id, limit, recheck_seconds):
                    return
                active = await count_active_jobs(owner_id, limit)
                active_job_counts.counted(owner_id, active + 1)
        finally:
            active_job_counts.unlock(owner_id, lock)
    if active >= limit:
        raise TooManyActiveJobs(
            f"you have {limit} jobs that have not finished; wait for some to finish or "
            "cancel them (the limit is JOBLINE_MAX_ACTIVE_JOBS_PER_USER)"
        )
