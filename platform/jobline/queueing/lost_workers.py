"""The watch over workers: running jobs whose worker stopped beating are recovered.

It runs beside the outbox relay (queueing/relay.py: in every API process and in `jobline
relay`), which then publishes the recovered jobs' next attempts. Every
JOBLINE_WORKER_HEARTBEAT_SECONDS it reads the `workers` table (one row per worker
process) for workers stopped or silent longer than JOBLINE_WORKER_LOST_SECONDS; only when
there are some does it read their running jobs (the jobs' state index) and end each one's
attempt (jobs/workers.py, `recover`), one locked transaction per job, so several watches
at once record each loss once.

Silence is judged only by a watch that has itself read the database without a failure, and
without a pause longer than the bound, for the whole bound: after an outage of the
database every worker's last beat is old, and the workers need a beat's time to be seen
again. A worker known stopped (its own shutdown, or
`jobline dev` after killing it) needs no such wait.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tortoise import connections

from jobline.config import Settings
from jobline.dialects import DATABASE_ERRORS
from jobline.jobs import workers
from jobline.jobs.spec import Queues
from jobline.jobs.store import JobStore

log = logging.getLogger("jobline.relay")


class LostWorkers:
    """Finds the running jobs of workers gone and recovers them, until stopped."""

    def __init__(
        self, store: JobStore, queues: Queues, settings: Settings, connection: str = "default"
    ) -> None:
        self.store = store
        self.queues = queues
        self.bound = settings.worker_lost_seconds
        self.interval = settings.worker_heartbeat_seconds
        self.lease = settings.relay_lease_seconds
        self.connection = connection
        # Since when this watch has read the database without a failure (monotonic).
        self.watching_since: float | None = None
        # When it last read the database (monotonic).
        self.last_look: float | None = None
        self.recovered = 0

    def _db(self) -> Any:
        return connections.get(self.connection)

    async def run_once(self) -> int:
        """One look: the jobs of workers gone recovered now; how many."""
        now = time.monotonic()
        if self.watching_since is None or (
            self.last_look is not None and now - self.last_look > self.bound
        ):
            # Not watching, or not continuously (this process stalled): an outage of the
            # database may have gone unseen meanwhile.
            self.watching_since = now
        db = self._db()
        found = await workers.gone(db, self.bound)
        self.last_look = now
        names = judged(found, now - self.watching_since, self.bound)
        if not names:
            return 0
        stopped = {g.name for g in found if g.stopped}
        recovered = 0
        for orphan in await workers.orphans(db, names):
            job_type = self.queues.job_types.get(orphan.type)
            if job_type is None:
                # Not this process's queues.yaml: its retry policy, and the publish of its
                # next attempt, belong to a relay that knows the type (the worker's row
                # stays while the job names it).
                continue
            max_losses = job_type.policy.max_worker_losses
            reason = workers.STOPPED if orphan.worker in stopped else workers.SILENT
            view = await workers.recover(self.store, orphan, max_losses, self.lease, reason)
            if view is None:
                continue  # another watch, or a redelivery, ended that attempt first
            recovered += 1
            log.warning(
                "job %s (%s) attempt %d: %s (%s); now %s",
                orphan.job_id,
                orphan.type,
                orphan.attempt,
                reason,
                orphan.worker,
                view.state,
            )
        await workers.forget(db, names, self.bound)
        self.recovered += recovered
        return recovered

    async def run(self) -> None:
        """Look every interval until cancelled; database errors are logged and outlived."""
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except DATABASE_ERRORS as exc:
                if _cancelled():
                    # A cancelled query surfaces as a driver error, not CancelledError.
                    return
                # Silence is judged again only after a whole bound without failures.
                self.watching_since = None
                log.warning("looking for lost workers failed (%r)", exc)
            except Exception:
                self.watching_since = None
                log.exception("looking for lost workers failed")
            await asyncio.sleep(self.interval)


def judged(found: list[workers.Gone], watched_for: float, bound: float) -> list[str]:
    """The workers whose jobs to recover now: those known stopped, and the silent ones once
    the watch has read the database without failure for `watched_for` >= `bound` seconds
    (after an outage every last beat is old: the living need a beat's time to show)."""
    return [g.name for g in found if g.stopped or watched_for >= bound]


def _cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
