"""Stopping a running job that was asked to cancel: first politely, then by force.

A CancelWatch runs beside each attempt, in the process executing it. When the job's row
shows a cancel request it raises the job's cancel flag, so `ctx.raise_if_cancelled()` stops
the job; once the domain's `cancel_grace_seconds` have passed with the job still running, it
records `cancelled` and terminates the execution: an async job's coroutine is cancelled, a
prefork pool child exits (Celery redelivers the message, and the worker skips a finished
job), a green pool's job greenlet gets JobCancelled at its next wait (a sleep, a socket). A
sync job in a thread pool cannot be stopped from outside: it is recorded cancelled, its
code runs on and its outcome is refused.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any
from uuid import UUID

from celery.signals import worker_process_init

from jobline.errors import InvalidTransition, JobCancelled
from jobline.jobs.events import EventType
from jobline.jobs.states import JobState
from jobline.queueing import green

if TYPE_CHECKING:
    from jobline.queueing.worker import WorkerRuntime

log = logging.getLogger("jobline.worker")

# Exit status of a pool child that terminated its cancelled job (EX_SOFTWARE).
EXIT_TERMINATED = 70
_in_pool_child = False


def _mark_pool_child(**_: Any) -> None:
    # Sent only in prefork pool children: there, exiting stops this one job and nothing else.
    global _in_pool_child
    _in_pool_child = True


worker_process_init.connect(_mark_pool_child, weak=False)


class CancelWatch:
    """Watches one running attempt for a cancel request, from a daemon thread."""

    def __init__(
        self,
        rt: WorkerRuntime,
        job_id: UUID,
        attempt: int,
        *,
        grace_seconds: float,
        poll_seconds: float,
        on_request: Callable[[], None],
    ) -> None:
        self.rt, self.job_id, self.attempt = rt, job_id, attempt
        self.grace_seconds = grace_seconds
        self.poll_seconds = poll_seconds
        self.on_request = on_request
        # Set for an async job: cancelling it stops the coroutine at its next await.
        self.future: Future[Any] | None = None
        # Made on the job's own greenlet under a green pool: the one to interrupt.
        self._greenlet = green.current_greenlet()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._done = False
        self._terminated = False
        self._thread = threading.Thread(
            target=self._run, name=f"jobline-cancel-{job_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> bool:
        """The runner is about to record the outcome: stop watching.

        False when the watch terminated the attempt already (its `cancelled` is recorded).
        """
        with self._lock:
            self._done = True
            self._stopped.set()
            return not self._terminated

    def _run(self) -> None:
        deadline: float | None = None
        while not self._stopped.wait(self.poll_seconds):
            try:
                view = self.rt.call(self.rt.store.get(self.job_id))
            except Exception as exc:
                # The database may be restarting: the job keeps running, we look again later.
                log.debug("cancel check of %s failed: %r", self.job_id, exc)
                continue
            if view.attempt != self.attempt:
                return  # this execution is stale: its writes are refused anyway
            if not (view.cancel_requested or view.state is JobState.CANCELLED):
                continue
            self.on_request()
            if deadline is None:
                deadline = time.monotonic() + self.grace_seconds
                log.info(
                    "job %s asked to cancel; terminated in %.1fs", self.job_id, self.grace_seconds
                )
            if time.monotonic() >= deadline:
                self._terminate()
                return

    def _terminate(self) -> None:
        with self._lock:
            if self._done:
                return
            try:
                self.rt.record(
                    self.job_id,
                    EventType.CANCELLED,
                    {
                        "reason": "terminated after the cancel grace period",
                        "grace_seconds": self.grace_seconds,
                    },
                    attempt=self.attempt,
                )
            except InvalidTransition:
                return  # it finished on its own meanwhile
            self._terminated = True
        if self.future is not None:
            self.future.cancel()
            return
        if self._greenlet is not None:
            log.warning("job %s ignored its cancellation; interrupting its greenlet", self.job_id)
            # Not once it reached finish(): its outcome is being refused, nothing to stop.
            green.interrupt(self._greenlet, JobCancelled(), still=lambda: not self._done)
            return
        if _in_pool_child:
            log.warning("job %s ignored its cancellation; exiting its pool process", self.job_id)
            logging.shutdown()
            os._exit(EXIT_TERMINATED)
        log.warning(
            "job %s ignored its cancellation and cannot be stopped in this pool; "
            "it is recorded cancelled and its outcome will be refused",
            self.job_id,
        )
