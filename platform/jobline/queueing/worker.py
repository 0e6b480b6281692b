"""The worker side: run a job function and record every transition it goes through.

Each worker process keeps one event loop (on its own thread) and one Tortoise pool for
its life; Celery's task threads hand coroutines to that loop.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar
from uuid import UUID

from celery import Celery, Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from pydantic import ValidationError
from pydantic_core import to_jsonable_python
from tortoise.exceptions import DBConnectionError, OperationalError

from jobline.config import Settings, get_settings
from jobline.db import open_db
from jobline.errors import InvalidTransition, JobCancelled
from jobline.jobs.events import EventType
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState
from jobline.jobs.store import Appended, JobStore
from jobline.queueing.app import create_celery, task_options
from jobline.queueing.context import TASK_REGISTRY, JobContext, JobFunction
from jobline.queueing.spec import JobType, Queues
from jobline.streaming.runtime import start_notifier

log = logging.getLogger("jobline.worker")
T = TypeVar("T")

DB_ERRORS = (OperationalError, DBConnectionError, ConnectionError, OSError)
RECORD_RETRY_FIRST_DELAY = 0.2
RECORD_RETRY_MAX_DELAY = 5.0
# How often raise_if_cancelled() may read the job row; it is called in tight loops.
CANCEL_CHECK_INTERVAL = 0.5


class WorkerRuntime:
    """One per process: the event loop thread, Tortoise on it, and the event store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="jobline-loop", daemon=True
        )
        self._thread.start()
        self.call(open_db(settings))
        self.store = JobStore(force_index=not settings.is_sqlite, listener=start_notifier(settings))

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the process's loop and wait for it (from a task thread)."""
        return self.submit(coro).result()

    def record(
        self, job_id: UUID, type: EventType, data: dict[str, Any] | None = None, *, attempt: int
    ) -> Appended:
        """Append an event, retrying with backoff while the database is unreachable.

        Safe to repeat: an append that did commit before the error is found as a duplicate.
        """
        delay = RECORD_RETRY_FIRST_DELAY
        while True:
            try:
                return self.call(self.store.append(job_id, type, data, attempt=attempt))
            except DB_ERRORS as exc:
                log.warning(
                    "recording %s of %s failed (%s); retrying in %.1fs", type, job_id, exc, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_DELAY)


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> WorkerRuntime:
    """This process's runtime, created on first use (after a prefork child is forked)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(get_settings())
        return _runtime


class ProgressReporter:
    """Coalesces a job's progress: at most one write per interval, the latest value wins."""

    def __init__(self, rt: WorkerRuntime, job_id: UUID, attempt: int, interval: float) -> None:
        self.rt, self.job_id, self.attempt, self.interval = rt, job_id, attempt, interval
        self._lock = threading.Lock()
        self._latest: tuple[int, str | None] | None = None
        self._flush: Future[None] | None = None
        self._flushing = False  # a _flush_later is running; it will write `_latest`
        self._last_write = 0.0
        self._cancel_requested = False
        self._last_cancel_check = time.monotonic()

    def progress(self, percent: int, message: str | None) -> None:
        with self._lock:
            self._latest = (percent, message)
            if self._flushing:
                return
            self._flushing = True
            self._flush = self.rt.submit(self._flush_later())

    def cancel_requested(self) -> bool:
        now = time.monotonic()
        if not self._cancel_requested and now - self._last_cancel_check >= CANCEL_CHECK_INTERVAL:
            self._last_cancel_check = now
            view = self.rt.call(self.rt.store.get(self.job_id))
            self._cancel_requested = view.cancel_requested or view.state is JobState.CANCELLED
        return self._cancel_requested

    def drain(self) -> None:
        """Write the last reported progress now; called before the terminal event."""
        if self._flush is not None:
            self._flush.result()
        with self._lock:
            latest, self._latest = self._latest, None
        if latest is not None:
            self._write(latest)

    async def _flush_later(self) -> None:
        # Loops until nothing new was reported: a value reported while a write was in
        # flight is written one interval later, not left until the job reports again.
        try:
            while True:
                wait = self._last_write + self.interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                with self._lock:
                    latest, self._latest = self._latest, None
                    if latest is None:
                        self._flushing = False
                        return
                await asyncio.to_thread(self._write, latest)
        except BaseException:
            with self._lock:
                self._flushing = False
            raise

    def _write(self, latest: tuple[int, str | None]) -> None:
        percent, message = latest
        try:
            done = self.rt.record(
                self.job_id,
                EventType.PROGRESS,
                {"progress": percent, "message": message},
                attempt=self.attempt,
            )
        except InvalidTransition:
            return  # the attempt ended meanwhile (cancelled): progress no longer applies
        self._last_write = time.monotonic()
        if done.view.cancel_requested:
            self._cancel_requested = True


def error_of(exc: BaseException, code: str | None = None) -> dict[str, Any]:
    """The `error` object of a failed event."""
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if code is not None:
        error["code"] = code
    return error


def begin_attempt(
    rt: WorkerRuntime, job_type: JobType, job_id: UUID, worker: str, redelivered: bool
) -> JobView | None:
    """Record `started`, or None when this delivery must not run the job.

    A delivery for a finished job, or a second copy of a message whose attempt is already
    running, does nothing. A redelivered message of a running attempt means its worker died.
    """
    view = rt.call(rt.store.get(job_id))
    if view.state.is_final:
        log.info("job %s is already %s; delivery ignored", job_id, view.state)
        return None
    if view.state is JobState.PENDING:
        # The broker delivered it, so it accepted it: the API's own `queued` may still be on its way.
        rt.record(job_id, EventType.QUEUED, {"by": worker}, attempt=view.attempt)
    elif view.state is JobState.RUNNING:
        if not redelivered:
            log.info(
                "job %s attempt %s is already running; duplicate delivery ignored",
                job_id,
                view.attempt,
            )
            return None
        lost = rt.record(job_id, EventType.WORKER_LOST, {"worker": worker}, attempt=view.attempt)
        losses = sum(
            1 for e in rt.call(rt.store.all_events(job_id)) if e.type is EventType.WORKER_LOST
        )
        if losses >= job_type.policy.max_worker_losses:
            message = f"the job's worker died {losses} times"
            rt.record(
                job_id,
                EventType.FAILED,
                {"error": {"type": "WorkerLost", "message": message, "code": "WORKER_LOST"}},
                attempt=lost.view.attempt,
            )
            return None
        view = lost.view
    started = rt.record(job_id, EventType.STARTED, {"worker": worker}, attempt=view.attempt)
    return started.view if started.event is not None else None


def run_job(
    task: Task, job_type: JobType, function: JobFunction, job_id: str, payload: dict[str, Any]
) -> None:
    """The body of every jobline Celery task."""
    rt = runtime()
    jid = UUID(job_id)
    delivery = task.request.delivery_info or {}
    view = begin_attempt(
        rt, job_type, jid, task.request.hostname or "worker", bool(delivery.get("redelivered"))
    )
    if view is None:
        return
    attempt = view.attempt
    reporter = ProgressReporter(rt, jid, attempt, rt.settings.progress_min_interval_ms / 1000)
    ctx = JobContext(jid, job_type.name, attempt, reporter)

    def finish(type: EventType, data: dict[str, Any]) -> None:
        reporter.drain()
        try:
            rt.record(jid, type, data, attempt=attempt)
        except InvalidTransition as exc:
            # Cancelled from outside while it ran: the job's outcome is already final.
            log.info("job %s: %s not recorded: %s", jid, type, exc)

    try:
        request = function.payload.model_validate(payload) if function.payload else payload
    except ValidationError as exc:
        finish(
            EventType.FAILED,
            {"error": {"type": "ValidationError", "message": str(exc), "code": "INVALID_PAYLOAD"}},
        )
        return
    try:
        result = rt.call(function(ctx, request)) if function.is_async else function(ctx, request)
        result = to_jsonable_python(result)
    except JobCancelled:
        finish(EventType.CANCELLED, {"reason": "cancelled by request"})
    except SoftTimeLimitExceeded as exc:
        finish(EventType.FAILED, {"error": error_of(exc, "TIME_LIMIT")})
    except Retry:
        raise
    except Exception as exc:
        if isinstance(exc, job_type.retry_exceptions()) and attempt <= job_type.policy.max_retries:
            delay = job_type.policy.backoff(attempt)
            finish(
                EventType.RETRYING,
                {"error": error_of(exc), "delay_seconds": delay, "next_attempt": attempt + 1},
            )
            raise task.retry(countdown=delay, max_retries=None) from exc
        log.exception("job %s failed", jid)
        finish(EventType.FAILED, {"error": error_of(exc)})
    else:
        finish(EventType.SUCCEEDED, {"result": result})


def register_tasks(app: Celery, queues: Queues, domains: list[str] | None = None) -> None:
    """Register a Celery task for each job type of `domains` (all by default)."""
    for name, domain in queues.domains.items():
        if domains is not None and name not in domains:
            continue
        for module in domain.imports:
            importlib.import_module(module)
        for job_type in queues.domain_types(name):
            function = job_type.load() if job_type.importable else TASK_REGISTRY.get(job_type.name)
            if function is None:
                raise LookupError(f"no @job(name={job_type.name!r}) in domain {name}'s imports")
            _register(app, job_type, function)


def _register(app: Celery, job_type: JobType, function: JobFunction) -> None:
    def body(task: Task, job_id: str, payload: dict[str, Any]) -> None:
        run_job(task, job_type, function, job_id, payload)

    body.__name__ = job_type.name.replace(".", "_")
    # Not shared: each app runs its own registration, never another app's (see dispatch.py).
    app.task(**task_options(job_type), shared=False)(body)


def worker_app(settings: Settings, queues: Queues, domain: str) -> Celery:
    """A Celery app with the tasks of one domain registered."""
    app = create_celery(settings, queues)
    register_tasks(app, queues, [domain])
    return app
