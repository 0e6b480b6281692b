"""Whether a delivered message may run its job: the full path of an attempt's start.

A delivery for a finished job, a second copy of a message whose attempt is already
running, or a message of an attempt the job has left behind (left_behind()) does nothing. A
redelivered message of a running attempt means its worker died, or, past the soft time
limit, that Celery killed it at the hard one: the attempt is recorded lost (and the job
failed once it lost too many) or failed at its time limit.
The common case, a first delivery of a queued job, takes the late start instead
(queueing/late_start.py).

A message of an older dispatch generation than the job's (the reconciler published the job
again: queueing/reconcile.py) is acked and dropped, recording nothing; `started` refuses it
in the transaction that locks the job's row, so a republish and a start of the old message
are serialized by that lock and exactly one of them wins.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from jobline.errors import InvalidTransition
from jobline.jobs.events import FIRST_GENERATION, Event, EventType, job_error
from jobline.jobs.outbox import attempt_of_task
from jobline.jobs.projection import JobView
from jobline.jobs.spec import JobType
from jobline.jobs.states import AWAITING_BROKER, JobState
from jobline.jobs.store import TxHook, utcnow
from jobline.queueing.runtime import WorkerRuntime

log = logging.getLogger("jobline.worker")


def stale(view: JobView, generation: int) -> bool:
    """Whether a message of dispatch `generation` is older than the job's current one."""
    return generation < view.generation


def dropped_as_stale(job_id: UUID, view: JobView, generation: int) -> bool:
    """stale(), logged: whether a delivery of a message of `generation` is dropped."""
    if not stale(view, generation):
        return False
    log.info(
        "job %s: a message of generation %d, the job is at %d; dropped",
        job_id,
        generation,
        view.generation,
    )
    return True


class StaleMessage(InvalidTransition):
    """The message is of an older dispatch generation than the job's: it must not run."""


def generation_guard(generation: int) -> TxHook:
    """A hook refusing (StaleMessage) an append once the locked job is past `generation`."""

    async def guard(_: Any, locked: JobView) -> None:
        if stale(locked, generation):
            raise StaleMessage(f"generation {generation}, the job is at {locked.generation}")

    return guard


def started_data(worker: str, delivery: str, generation: int) -> dict[str, Any]:
    """The data of a `started` event: the worker, the delivery, and the generation once
    the job was published again (the first is not spelled out)."""
    data: dict[str, Any] = {"worker": worker, "delivery": delivery}
    if generation > FIRST_GENERATION:
        data["generation"] = generation
    return data


def begin_attempt(
    rt: WorkerRuntime,
    job_type: JobType,
    job_id: UUID,
    worker: str,
    redelivered: bool,
    delivery: str = "",
    task_id: str | None = None,
    generation: int = FIRST_GENERATION,
) -> JobView | None:
    """Record `started`, or None when this delivery must not run the job.

    `delivery` marks this delivery's `started`, so a write that committed before a lost
    connection is recognised as ours when repeated. `task_id` is the message's: one of an
    attempt the job has left behind is dropped (left_behind()); so is a message of an older
    `generation` than the job's, recording nothing.
    """
    data = started_data(worker, delivery, generation)
    guard = generation_guard(generation)

    async def only_if_current(conn: Any, locked: JobView) -> None:
        await guard(conn, locked)
        await _only_if_queued_or_running(conn, locked)
        if left_behind(locked, task_id):
            raise _NotQueued("a message of an attempt left behind")

    # The common case, a queued job starting, in one transaction: no read first. A running
    # one goes through too, for a `started` of our own written before a lost connection to
    # be found; any other state is sorted out below.
    try:
        first = rt.retrying(
            lambda: rt.store.append(job_id, EventType.STARTED, data, also=only_if_current),
            f"recording started of {job_id}",
        )
    except StaleMessage as exc:
        log.info("job %s: a message of an older dispatch (%s); dropped", job_id, exc)
        return None
    except (InvalidTransition, _NotQueued):
        first = None
    if first is not None and (first.event is not None or ours(first.existing, delivery)):
        return first.view
    view = rt.retrying(lambda: rt.store.get(job_id), f"reading job {job_id}")
    if dropped_as_stale(job_id, view, generation):
        return None
    if view.state.is_final:
        log.info("job %s is already %s; delivery ignored", job_id, view.state)
        return None
    if left_behind(view, task_id):
        log.info(
            "job %s: message %s is of an attempt it left behind (now %s, attempt %d); dropped",
            job_id,
            task_id,
            view.state,
            view.attempt,
        )
        return None
    try:
        if view.state in AWAITING_BROKER:
            # The broker delivered it, so it accepted it: the `queued` of its publisher may
            # still be on its way (a retry's next attempt waits in the outbox as `retrying`).
            rt.record(job_id, EventType.QUEUED, {"by": worker}, attempt=view.attempt)
        elif view.state is JobState.RUNNING:
            if not redelivered:
                log.info(
                    "job %s attempt %s is already running; duplicate delivery ignored",
                    job_id,
                    view.attempt,
                )
                return None
            if _past_soft_limit(view, job_type):
                limit = job_type.policy.time_limit
                rt.record(
                    job_id,
                    EventType.FAILED,
                    {
                        "error": job_error(
                            "TimeLimitExceeded",
                            f"the job was killed at its hard time limit ({limit}s)",
                            "TIME_LIMIT",
                        )
                    },
                    attempt=view.attempt,
                )
                return None
            requeued = _worker_lost(rt, job_type, view, worker)
            if requeued is None:
                return None
            view = requeued
        started = rt.record(job_id, EventType.STARTED, data, attempt=view.attempt, also=guard)
    except InvalidTransition as exc:
        # Cancelled (or moved on) between our read and our write.
        log.info("job %s changed while starting (%s); delivery ignored", job_id, exc)
        return None
    if started.event is not None or ours(started.existing, delivery):
        return started.view
    return None


class _NotQueued(Exception):
    """The job is not queued (or running): the delivery takes begin_attempt's full path."""


async def _only_if_queued_or_running(_: Any, locked: JobView) -> None:
    # Running too: a `started` of our own, written before a lost connection, is then found.
    if locked.state is not JobState.QUEUED and locked.state is not JobState.RUNNING:
        raise _NotQueued(str(locked.state))


def left_behind(view: JobView, task_id: str | None) -> bool:
    """Whether a message (its task id) is of an attempt the job has left behind.

    Each attempt published through the outbox has a task id of its own (task_id_for), and
    the job's `task_id` is its latest message's: set by the publisher's `queued`, or by a
    `worker_lost` whose next attempt went out as a new message (jobs/workers.py). A message
    of an earlier attempt - the lost worker's, redelivered once the broker noticed - must
    not start the current one: it would run beside the new message's delivery, or take it
    for its own lost worker. A redelivery that the broker itself made of the current
    attempt's message keeps its id, and runs.
    """
    if not task_id or view.task_id is None:
        return False
    return attempt_of_task(task_id) < attempt_of_task(view.task_id)


def ours(earlier: Event | None, delivery: str) -> bool:
    """Whether a `started` found recorded is this delivery's own, committed before the
    connection dropped (the write was then repeated)."""
    return bool(delivery) and earlier is not None and earlier.data.get("delivery") == delivery


def _past_soft_limit(view: JobView, job_type: JobType) -> bool:
    """Whether the running attempt started longer ago than its soft time limit.

    Celery kills a job at its hard limit and requeues the message (acks_on_timeout off);
    the attempt then shows up here, redelivered, older than any attempt that died early.
    """
    if view.started_at is None:
        return False
    elapsed = (utcnow() - view.started_at).total_seconds()
    return elapsed >= job_type.policy.soft_time_limit


def _worker_lost(
    rt: WorkerRuntime, job_type: JobType, view: JobView, worker: str
) -> JobView | None:
    """Record that the running attempt's worker died; None once it died too often (failed)."""
    job_id = view.id
    lost = rt.record(job_id, EventType.WORKER_LOST, {"worker": worker}, attempt=view.attempt)
    events = rt.retrying(lambda: rt.store.all_events(job_id), f"reading events of {job_id}")
    losses = sum(1 for e in events if e.type is EventType.WORKER_LOST)
    if losses >= job_type.policy.max_worker_losses:
        message = f"the job's worker died {losses} times"
        rt.record(
            job_id,
            EventType.FAILED,
            {"error": job_error("WorkerLost", message, "WORKER_LOST")},
            attempt=lost.view.attempt,
        )
        return None
    return lost.view
