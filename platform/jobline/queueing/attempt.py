"""One attempt of a job on a worker: its start, its progress, its outcome.

An Attempt is made for a delivery that may run (`Attempt.begin`): the late start (the
common case) or the full path (queueing/delivery.py) decides that. It owns what stands
beside the running job - the late start's window, the progress reporter the job's context
writes to, the CancelWatch - and records the one event that ends the attempt (`finish`).
Every event a run of a job records on the worker goes through here, but for those of a
delivery that does not run (delivery.py) and the CancelWatch's `cancelled` (cancel.py).
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

from celery.exceptions import Retry
from pydantic import ValidationError

from jobline.errors import InvalidTransition
from jobline.jobs.context import JobContext, JobFunction
from jobline.jobs.events import FIRST_GENERATION, EventType
from jobline.jobs.outbox import Outbox
from jobline.jobs.projection import JobView
from jobline.jobs.spec import JobType
from jobline.jobs.states import JobState
from jobline.jobs.store import TxHook, utcnow
from jobline.queueing import outcome
from jobline.queueing.cancel import CancelWatch
from jobline.queueing.delivery import begin_attempt, dropped_as_stale, started_data
from jobline.queueing.late_start import LateStart, begin_late
from jobline.queueing.outcome import Outcome
from jobline.queueing.progress import ProgressReporter, Wrote
from jobline.queueing.runtime import WorkerRuntime

log = logging.getLogger("jobline.worker")


class Attempt:
    """A started attempt: the job's context, and the recording of how it ends."""

    def __init__(
        self, rt: WorkerRuntime, job_type: JobType, view: JobView, late: LateStart | None
    ) -> None:
        self.rt, self.job_type, self.job_id, self.number = rt, job_type, view.id, view.attempt
        # Set while `started` waits to be written with the outcome (late_start.py).
        self.late = late
        settings = rt.settings
        self.reporter = ProgressReporter(
            rt.loop,
            functools.partial(_write_progress, rt, self.job_id, self.number, late),
            settings.progress_min_interval_ms / 1000,
            settings.max_progress_message_chars,
        )
        self.watch = CancelWatch(
            rt,
            self.job_id,
            self.number,
            grace_seconds=job_type.policy.cancel_grace_seconds,
            poll_seconds=settings.cancel_poll_seconds,
            on_request=self.reporter.mark_cancel_requested,
        )

    @classmethod
    def begin(
        cls,
        rt: WorkerRuntime,
        job_type: JobType,
        job_id: UUID,
        worker: str,
        redelivered: bool,
        read: JobView | None = None,
        task_id: str | None = None,
        generation: int = FIRST_GENERATION,
    ) -> Attempt | None:
        """Start an attempt for a delivery; None when the delivery must not run the job.

        `read`: the job as already read on delivery (queueing/fairness.py), if it was.
        `task_id`: the message's (one of an attempt left behind is dropped:
        delivery.left_behind()). `generation`: the message's dispatch generation; an older
        one than the job's is dropped, recording nothing.
        """
        delivery = uuid.uuid4().hex
        late: LateStart | None = None
        defer = rt.settings.started_defer_ms / 1000
        if defer > 0 and not redelivered:
            # A read, no lock, no commit: the job's `started` is written late (LateStart).
            started = started_data(worker, delivery, generation)
            view, late = begin_late(rt, job_id, started, defer, read, task_id, generation)
            if dropped_as_stale(job_id, view, generation):
                return None
            if view.state.is_final:
                log.info("job %s is already %s; delivery ignored", job_id, view.state)
                return None
        if late is None:
            found = begin_attempt(
                rt, job_type, job_id, worker, redelivered, delivery, task_id, generation
            )
            if found is None:
                return None
            view = found
        # With the request id on the line (telemetry.py), one grep follows the job from its POST.
        log.info("job %s (%s) attempt %d started", job_id, job_type.name, view.attempt)
        return cls(rt, job_type, view, late)

    def context(self) -> JobContext:
        """The context the job function gets: its identity, progress and cancellation."""
        return JobContext(self.job_id, self.job_type.name, self.number, self.reporter)

    def run(self, function: JobFunction, payload: dict[str, Any]) -> None:
        """Run the job function on the payload and record how the attempt ended."""
        try:
            request = function.parse(payload)
        except ValidationError as exc:
            self.finish(outcome.of_invalid_payload(exc))
            return
        self.watch.start()
        try:
            self.finish(self._execute(function, request))
        finally:
            self.watch.finish()

    def _execute(self, function: JobFunction, request: Any) -> Outcome:
        ctx = self.context()
        try:
            if function.is_async:
                self.watch.future = self.rt.submit(function(ctx, request))
                result = self.watch.future.result()
            else:
                result = function(ctx, request)
            # Sorted here, inside the try: an unstorable result fails the job.
            ended = outcome.of_result(result, self.rt.settings)
        except Retry:
            raise
        except (*outcome.CANCELLATIONS, Exception) as exc:
            ended = outcome.of_error(exc, self.job_type, self.number)
            if ended.unexpected:
                log.exception("job %s failed", self.job_id)
            return ended
        if ended.type is EventType.FAILED:
            log.warning("job %s: %s", self.job_id, ended.data["error"]["message"])
        return ended

    def finish(self, ended: Outcome) -> None:
        """Record the event that ends the attempt (unless the CancelWatch recorded it)."""
        if not self.watch.finish():
            return  # the watch terminated it: `cancelled` is recorded
        self.reporter.drain()
        also = self._next_attempt(ended.retry_delay) if ended.retry_delay is not None else None
        try:
            if self.late is not None:
                self.late.record(ended.type, ended.data, also)
            else:
                self.rt.record(self.job_id, ended.type, ended.data, attempt=self.number, also=also)
        except InvalidTransition as exc:
            # Cancelled from outside while it ran: the job's outcome is already final.
            log.info("job %s: %s not recorded: %s", self.job_id, ended.type, exc)
        else:
            log.info("job %s attempt %d %s", self.job_id, self.number, ended.type)

    def _next_attempt(self, delay: float) -> TxHook:
        # The next attempt goes through the outbox, written with `retrying`: a broker
        # outage at this moment cannot lose it, and no ETA message waits in RabbitMQ.
        attempt = self.number
        write_next, _ = Outbox.writer(
            attempt + 1,
            utcnow() + timedelta(seconds=delay),
            None,
            self.rt.settings.relay_lease_seconds,
            only_if=lambda locked: locked.state is JobState.RUNNING and locked.attempt == attempt,
        )
        return write_next


async def _write_progress(
    rt: WorkerRuntime,
    job_id: UUID,
    attempt: int,
    late: LateStart | None,
    percent: int,
    message: str | None,
) -> Wrote:
    """One progress report of an attempt, on the loop (after its late `started`, if due)."""
    if late is not None and not await late.ensure():
        return Wrote(stored=False, stop=True)  # it may not run on: cancelled or taken
    try:
        done = await rt.retrying_on_loop(
            lambda: rt.store.append(
                job_id,
                EventType.PROGRESS,
                {"progress": percent, "message": message},
                attempt=attempt,
            ),
            f"recording {EventType.PROGRESS} of {job_id}",
        )
    except InvalidTransition:
        # The attempt ended meanwhile (cancelled): progress no longer applies.
        return Wrote(stored=False, stop=False)
    if late is not None:
        late.view = done.view  # so the outcome is written on it without a read
    return Wrote(stored=True, stop=done.view.cancel_requested)
