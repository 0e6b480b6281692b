"""Stopping a running job that was asked to cancel: first politely, then by force.

A CancelWatch stands beside each attempt, in the process executing it; one thread per
process (the Watcher) reads the rows of every attempt watched there, once per poll
interval. A thread per attempt cost a thread start per job, and the job waited for it to
be scheduled (17% of a no-op job's time in the worker). When the job's row
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
    from jobline.jobs.projection import JobView
    from jobline.queueing.runtime import WorkerRuntime

log = logging.getLogger("jobline.worker")

# Exit status of a pool child that terminated its cancelled job (EX_SOFTWARE).
EXIT_TERMINATED = 70
_in_pool_child = False


def _mark_pool_child(**_: Any) -> None:
    # Sent only in prefork pool children: there, exiting stops this one job and nothing else.
    global _in_pool_child
    _in_pool_child = True


worker_process_init.connect(_mark_pool_child, weak=False)


class Watcher:
    """One thread per process: reads the watched attempts' rows every `poll_seconds`."""

    def __init__(self, rt: WorkerRuntime, poll_seconds: float) -> None:
        self.rt, self.poll_seconds = rt, poll_seconds
        self._lock = threading.Lock()
        self._watches: dict[UUID, CancelWatch] = {}
        self._thread: threading.Thread | None = None

    def add(self, watch: CancelWatch) -> None:
        with self._lock:
            self._watches[watch.job_id] = watch
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobline-cancel-watch", daemon=True
                )
                self._thread.start()

    def remove(self, watch: CancelWatch) -> None:
        with self._lock:
            if self._watches.get(watch.job_id) is watch:
                del self._watches[watch.job_id]

    def _run(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            with self._lock:
                # Watched for a whole interval: a job that just started is read next time.
                due = [w for w in self._watches.values() if w.due(self.poll_seconds)]
            if not due:
                continue
            try:
                views = self.rt.call(self.rt.store.get_many([w.job_id for w in due]))
            except Exception as exc:
                # The database may be restarting: the jobs keep running, we look again later.
                log.debug("cancel check of %d jobs failed: %r", len(due), exc)
                continue
            for watch in due:
                view = views.get(watch.job_id)
                if view is not None and watch.check(view):
                    self.remove(watch)


_watchers: dict[int, Watcher] = {}
_watchers_lock = threading.Lock()


def watcher(rt: WorkerRuntime, poll_seconds: float) -> Watcher:
    """This process's Watcher (a prefork child gets its own, not its parent's)."""
    with _watchers_lock:
        found = _watchers.get(os.getpid())
        if found is None or found.rt is not rt:
            found = _watchers[os.getpid()] = Watcher(rt, poll_seconds)
        return found


class CancelWatch:
    """Watches one running attempt for a cancel request (through the process's Watcher)."""

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
        self._done = False
        self._terminated = False
        self._since = time.monotonic()
        self._deadline: float | None = None

    def start(self) -> None:
        self._since = time.monotonic()
        watcher(self.rt, self.poll_seconds).add(self)

    def finish(self) -> bool:
        """The runner is about to record the outcome: stop watching.

        False when the watch terminated the attempt already (its `cancelled` is recorded).
        """
        with self._lock:  # waits for a _terminate under way: its outcome decides
            self._done = True
            terminated = self._terminated
        watcher(self.rt, self.poll_seconds).remove(self)
        return not terminated

    def due(self, interval: float) -> bool:
        return time.monotonic() - self._since >= interval

    def check(self, view: JobView) -> bool:
        """Act on the job's row as read now; True once there is nothing more to watch."""
        if self._done:
            return True
        if view.attempt != self.attempt:
            return True  # this execution is stale: its writes are refused anyway
        if not (view.cancel_requested or view.state is JobState.CANCELLED):
            return False
        self.on_request()
        if self._deadline is None:
            self._deadline = time.monotonic() + self.grace_seconds
            log.info("job %s asked to cancel; terminated in %.1fs", self.job_id, self.grace_seconds)
        if time.monotonic() < self._deadline:
            return False
        self._terminate()
        return True

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
