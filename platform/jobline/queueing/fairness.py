"""Fair shares: one user's running jobs in a domain are capped, across every worker of it.

A domain's `max_running_per_user` (queues.yaml) is enforced when a worker is about to start
a delivered job. Over it, the job is deferred: nothing is recorded (it stays `queued`, its
history untouched), its message is acked, and an outbox row brings it back after a while
(`JOBLINE_FAIR_SHARE_DEFER_SECONDS`, longer for a long backlog); the relay publishes it
again like any due row. The job's attempt does not change, so no transition is recorded
twice and the delay costs no retry.

How workers agree, on MariaDB (the worker's direct connection, jobs/direct.py): a running
job holds one of its owner's `cap` slots of the domain, a named lock of the database server
(GET_LOCK), taken in the SELECT that reads the delivered job - no extra round trip - and
released when the job ends: in the request that commits its outcome, or on its own. The server hands each slot to one connection
at a time, so two workers starting the same user's jobs at the same instant cannot both take
the last slot; a worker that dies loses its connection and with it its slots. Elsewhere
(SQLite, green pools, a URL with options) the cap is the count of the owner's jobs recorded
`running` in the domain: jobs starting at the same moment may each pass it, and a job that
started within JOBLINE_STARTED_DEFER_MS is not counted yet.
"""

from __future__ import annotations

import functools
import logging
import random
from datetime import timedelta
from typing import Any
from uuid import UUID

from tortoise import connections

from jobline import metrics
from jobline.compat.tortoise import meta
from jobline.config import Settings
from jobline.dialects import Dialect, dialect_of
from jobline.errors import JobNotFound
from jobline.jobs import sql
from jobline.jobs.direct import SLOT_COLUMN
from jobline.jobs.models import JobRow
from jobline.jobs.outbox import Outbox
from jobline.jobs.projection import JobView
from jobline.jobs.spec import JobType
from jobline.jobs.states import JobState, may_start
from jobline.jobs.store import utcnow

log = logging.getLogger("jobline.fairness")

# States a delivery would start the job from: only these are held back. A running job
# redelivered (its worker died) is the same attempt going on, counted already.
# A deferral's delay is multiplied by a factor drawn from this range.
JITTER = (0.75, 1.25)


@functools.cache
def slot_select(dialect: Dialect, cap: int) -> str:
    """The SELECT of a job that also takes a free slot of its owner in its domain.

    Its extra column is the name of the named lock taken (one per queue and owner, `cap`
    of them), or NULL when all `cap` are held.
    """
    head, _, where = sql.statements(dialect).select_job.partition(" FROM ")
    slot = dialect.first_free_lock_sql(("queue", "owner_id"), cap)
    return f"{head}, {slot} AS {SLOT_COLUMN} FROM {where}"


class Deferred(Exception):
    """The job's owner is at the domain's cap: the job was put back for later."""


def admit(
    rt: Any, job_type: JobType, job_id: UUID, generation: int | None = None
) -> tuple[JobView, str | None]:
    """Read a delivered job and take a slot of its owner: (the job, the slot's lock name).

    Raises Deferred when the owner is at the cap (the job comes back later), JobNotFound
    for an unknown job. The slot, when one
    is held, is released with release() once the job ends.
    """
    cap = job_type.max_running_per_user
    direct = rt.direct
    slot: str | None = None
    if direct is not None and direct.dialect.supports_named_locks:
        view, slot = rt.retrying_here(
            lambda: direct.get_with_slot(job_id, slot_select(direct.dialect, cap)),
            f"reading job {job_id}",
        )
        if view is None:
            raise JobNotFound(job_id=str(job_id))
        full = slot is None
    else:
        view = rt.retrying(lambda: rt.store.get(job_id), f"reading job {job_id}")
        full = may_start(view.state) and (
            rt.retrying(
                lambda: count_jobs(view.owner_id, view.queue, JobState.RUNNING, cap),
                f"counting running jobs of {view.owner_id}",
            )
            >= cap
        )
    if generation is not None and generation < view.generation:
        # A message of an older dispatch: the delivery drops it (queueing/delivery.py);
        # deferring it would publish the job once more.
        return view, slot
    if not may_start(view.state):
        if slot is not None and view.state.is_final:
            release(rt, slot)  # nothing runs: the delivery is ignored
            slot = None
        return view, slot
    if full:
        defer(rt, job_type, view)
        raise Deferred(str(job_id))
    return view, slot


def release_with_outcome(rt: Any, slot: str | None) -> None:
    """Have the transaction recording the job's outcome on the task's thread give the slot
    back in its own request; release() then has nothing left to do."""
    if slot is not None:
        rt.direct.release_with_commit(slot)


def release(rt: Any, slot: str) -> None:
    """Give a slot back (from the task's thread: its connection holds the lock), unless
    the outcome's commit did."""
    try:
        rt.direct.release_with_commit(None)
        rt.direct.release_slot(slot)
    except Exception:
        # The connection is gone, and with it the lock: nothing is held any more.
        log.warning("releasing %s failed; its connection is closed", slot, exc_info=True)


def defer(rt: Any, job_type: JobType, view: JobView) -> None:
    """Put a job back for later through the outbox, recording nothing.

    The job keeps its state and attempt; a relay publishes the row once due (a `queued`
    already recorded is then a duplicate, and records nothing).
    """
    settings = rt.settings
    cap = job_type.max_running_per_user
    per_round = settings.fair_share_backlog_per_slot * cap
    rounds = settings.fair_share_defer_max_seconds / settings.fair_share_defer_seconds
    backlog = rt.retrying(
        lambda: count_jobs(view.owner_id, view.queue, JobState.QUEUED, int(rounds + 1) * per_round),
        f"counting queued jobs of {view.owner_id}",
    )
    # Jittered, so the jobs of one flood do not all come back in the same instant.
    delay = deferral_seconds(settings, cap, backlog, random.uniform(*JITTER))
    due = utcnow() + timedelta(seconds=delay)
    # IntegrityError would be retried as an outage by rt.retrying: put_back handles it.
    rt.retrying(
        lambda: Outbox.put_back(view.id, view.attempt, view.type, due), f"deferring {view.id}"
    )
    metrics.JOBS_DEFERRED.labels(job_type.domain).inc()
    log.info(
        "job %s deferred %.1fs: its owner %s has %d job(s) running in %s (the cap)",
        view.id,
        delay,
        view.owner_id,
        cap,
        job_type.domain,
    )


def deferral_seconds(settings: Settings, cap: int, backlog: int, jitter: float = 1.0) -> float:
    """How long a deferred job waits before it is published again.

    Each deferral costs a read and a write. Up to `fair_share_backlog_per_slot` waiting
    jobs per slot come back after the base delay; a longer backlog comes back
    proportionally later, so a flood costs the workers a bounded number of deferrals per
    interval. Never more than `fair_share_defer_max_seconds`.
    """
    per_round = settings.fair_share_backlog_per_slot * cap
    base = settings.fair_share_defer_seconds * max(1.0, backlog / per_round)
    return min(settings.fair_share_defer_max_seconds, base * jitter)


async def count_jobs(owner_id: UUID | None, queue: str, state: JobState, limit: int) -> int:
    """An owner's jobs in one state on one queue, counted up to `limit` (an index range)."""
    db = connections.get("default")
    dialect = dialect_of(db)
    q, mark = dialect.ident, dialect.mark
    _, rows = await db.execute_query(
        f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM {q(meta(JobRow).db_table)} "
        f"WHERE {q('owner_id')} = {mark} AND {q('state')} = {mark} AND {q('queue')} = {mark} "
        f"LIMIT {mark}) AS found",
        [str(owner_id), state.value, queue, limit],
    )
    return int(rows[0]["n"])
