"""The worker side: run a job function and record every transition it goes through.

Each worker process keeps one event loop (on its own thread) and one Tortoise pool for
its life; Celery's task threads hand coroutines to that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import CancelledError, Future
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID

from celery import Celery, Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from pydantic import ValidationError

from jobline.backoff import backoff
from jobline.config import Settings, get_settings
from jobline.db import open_db
from jobline.dialects import UNAVAILABLE
from jobline.errors import InvalidTransition, JobCancelled, JobNotFound
from jobline.jobs.direct import DirectWriter
from jobline.jobs.events import Event, EventType, job_error
from jobline.jobs.outbox import Outbox
from jobline.jobs.projection import JobView
from jobline.jobs.states import AWAITING_BROKER, JobState, may_start
from jobline.jobs.store import Appended, JobStore, Step, TxHook, utcnow
from jobline.queueing import fairness, green, telemetry
from jobline.queueing.app import create_celery, task_options
from jobline.queueing.cancel import CancelWatch
from jobline.queueing.context import INVALID_PAYLOAD, TASK_REGISTRY, JobContext, JobFunction
from jobline.queueing.limits import clip, error_of, storable_result
from jobline.queueing.spec import JobType, Queues
from jobline.streaming.runtime import start_notifier

log = logging.getLogger("jobline.worker")
T = TypeVar("T")

RECORD_RETRY_FIRST_DELAY = 0.2
RECORD_RETRY_MAX_DELAY = 5.0


def _backoff() -> Iterator[float]:
    """The waits between attempts to store while the database is away: doubling, capped."""
    for retries in itertools.count():
        yield backoff(RECORD_RETRY_FIRST_DELAY, RECORD_RETRY_MAX_DELAY, retries)


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
        self.store = JobStore(listener=start_notifier(settings))
        # The common case from the task's thread (jobs/direct.py). Not under a green pool:
        # there each job is a greenlet of its own, and a connection per greenlet would be
        # a connection per job.
        self.direct: DirectWriter | None = None
        dialect = settings.database
        connect = dialect.sync_connector(settings.database_url)
        if connect is not None and green.patched() is None:
            self.direct = DirectWriter(connect, self.store, dialect)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the process's loop and wait for it (from a task thread)."""
        return self.submit(coro).result()

    def record(
        self,
        job_id: UUID,
        type: EventType,
        data: dict[str, Any] | None = None,
        *,
        attempt: int,
        also: TxHook | None = None,
    ) -> Appended:
        """Append an event, retrying with backoff while the database is unreachable.

        Safe to repeat: an append that did commit before the error is found as a duplicate.
        """
        return self.retrying(
            lambda: self.store.append(job_id, type, data, attempt=attempt, also=also),
            f"recording {type} of {job_id}",
        )

    async def retrying_on_loop(self, make: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
        """retrying() for a coroutine already on the loop: it waits without blocking it."""
        for delay in _backoff():
            try:
                return await make()
            except UNAVAILABLE as exc:
                log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the backoff never ends")

    def retrying(self, make: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
        """Run a coroutine on the loop, again and again with backoff while the database is away.

        The task does not return, so its message is not acked, until the work is stored.
        """
        return self.retrying_here(lambda: self.call(make()), what)

    def retrying_here(self, run: Callable[[], T], what: str) -> T:
        """retrying() for a call made on the task's own thread (jobs/direct.py)."""
        for delay in _backoff():
            try:
                return run()
            except UNAVAILABLE as exc:
                log.warning("%s failed (%r); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable: the backoff never ends")


_runtime: WorkerRuntime | None = None
_runtime_lock = threading.Lock()


def runtime() -> WorkerRuntime:
    """This process's runtime, created on first use (after a prefork child is forked)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(get_settings())
        return _runtime


class LateStart:
    """An attempt's `started`, written late so that a fast job commits it with its outcome.

    A job that ends within `defer` seconds records `started` and its outcome in one
    transaction: one commit (an fsync) per job instead of two. Temporal does the same with
    an activity's started event. A longer job gets its `started` written when `defer`
    runs out, or sooner when it first reports progress; `started` always carries the time
    the job began. Only a first delivery of a job found queued (or still pending) comes
    this way (run_job). A worker dying inside the window leaves no `started`: the message
    comes back redelivered, and a redelivery takes begin_attempt's path, so a job that
    keeps killing its worker is still counted (worker_lost) and stopped.

    Its methods run on the worker's event loop.
    """

    def __init__(
        self,
        rt: WorkerRuntime,
        view: JobView,
        data: dict[str, Any],
        defer: float,
        *,
        queued: dict[str, Any] | None = None,
    ) -> None:
        self.rt, self.data, self.defer = rt, data, defer
        self.job_id, self.attempt = view.id, view.attempt
        # The job as last read or written here: the store writes on it without reading it
        # again while the row has not moved on (append_chain's `expect`).
        self.view = view
        # The `queued` to record first (its data), when the job was found still pending.
        self.queued = queued
        self.at = utcnow()  # the job starts running now, whenever `started` is committed
        # Who writes `started`: the loop (the window ran out, or a progress report came:
        # `_write`) or the outcome's transaction (`_merged`); decided once, under the lock,
        # since the outcome is recorded from the task's thread.
        self._lock = threading.Lock()
        self._write: asyncio.Task[bool] | None = None
        self._merged = False

    def arm(self) -> None:
        """Start the window (on the loop)."""
        self.rt.loop.call_later(self.defer, self._start_write)

    def _start_write(self) -> asyncio.Task[bool] | None:
        with self._lock:
            if self._write is None and not self._merged:
                self._write = self.rt.loop.create_task(self._write_started())
            return self._write

    async def ensure(self) -> bool:
        """Have `started` recorded now; False when the job may no longer run (refused)."""
        write = self._start_write()
        # None: the outcome is being recorded, with `started`; nothing reports after it.
        return True if write is None else await asyncio.shield(write)

    def _claim(self) -> bool:
        """Whether `started` goes with the outcome (True from then on), or was written."""
        with self._lock:
            if self._write is None:
                self._merged = True
            return self._merged

    async def _started(self) -> bool:
        assert self._write is not None
        return await asyncio.shield(self._write)

    async def _write_started(self) -> bool:
        try:
            done = await self.rt.retrying_on_loop(
                lambda: self.rt.store.append_chain(
                    self.job_id,
                    self._start_steps(),
                    attempt=self.attempt,
                    check=self._check_started,
                    expect=self.view,
                ),
                f"recording started of {self.job_id}",
            )
            self.view = done[-1].view
        except InvalidTransition as exc:
            log.info("job %s: started refused (%s); its outcome will be too", self.job_id, exc)
            return False
        return True

    def _start_steps(self) -> list[Step]:
        started = Step(EventType.STARTED, self.data, self.at)
        return (
            [started]
            if self.queued is None
            else [Step(EventType.QUEUED, self.queued, self.at), started]
        )

    def _check_started(self, index: int, done: Appended) -> None:
        # A `queued` found recorded is the publisher's, as expected; a `started` found
        # recorded must be this delivery's own (written before a lost connection).
        is_started = index == (0 if self.queued is None else 1)
        if is_started and done.event is None and not _ours(done.existing, self.data["delivery"]):
            raise InvalidTransition("another delivery of this attempt started it")

    def record(self, type: EventType, data: dict[str, Any], also: TxHook | None) -> Appended:
        """Record the attempt's outcome (from the task's thread), with `started` if not written."""
        rt = self.rt
        check: Callable[[int, Appended], None] | None = None
        if self._claim():
            steps = [*self._start_steps(), Step(type, data)]
            check = self._check_started
        elif rt.call(self._started()):
            steps = [Step(type, data)]
        else:
            raise InvalidTransition(f"{type} refused: the attempt's started was")
        what = f"recording {type} of {self.job_id}"
        direct = rt.direct
        if direct is not None and also is None:
            done = rt.retrying_here(
                lambda: direct.append_expected(self.view, steps, self.attempt, check), what
            )
            if done is not None:
                return done[-1]
        outcomes = rt.retrying(
            lambda: rt.store.append_chain(
                self.job_id, steps, attempt=self.attempt, also=also, check=check, expect=self.view
            ),
            what,
        )
        return outcomes[-1]


def begin_late(
    rt: WorkerRuntime,
    job_id: UUID,
    started: dict[str, Any],
    defer: float,
    read: JobView | None = None,
) -> tuple[JobView, LateStart | None]:
    """Read a delivered job (unless `read` already); a LateStart, its window running, when
    it is queued or pending."""
    if read is not None:
        late = _late_for(rt, read, started, defer)
        if late is not None:
            rt.loop.call_soon_threadsafe(late.arm)
        return read, late
    direct = rt.direct
    if direct is None:
        return rt.retrying(lambda: _late_start(rt, job_id, started, defer), f"reading {job_id}")
    found = rt.retrying_here(lambda: direct.get(job_id), f"reading job {job_id}")
    if found is None:
        raise JobNotFound(job_id=str(job_id))
    late = _late_for(rt, found, started, defer)
    if late is not None:
        rt.loop.call_soon_threadsafe(late.arm)
    return found, late


def _late_for(
    rt: WorkerRuntime, view: JobView, started: dict[str, Any], defer: float
) -> LateStart | None:
    # The late start serves the common case, a queued or pending job; a retry's next
    # attempt (`retrying`) takes begin_attempt's full path.
    if not may_start(view.state) or view.state is JobState.RETRYING:
        return None
    # Pending: the broker delivered it, so it accepted it; the publisher's `queued` may
    # still be on its way and is then written here, with `started`.
    queued = {"by": started["worker"]} if view.state is JobState.PENDING else None
    return LateStart(rt, view, started, defer, queued=queued)


async def _late_start(
    rt: WorkerRuntime, job_id: UUID, started: dict[str, Any], defer: float
) -> tuple[JobView, LateStart | None]:
    """begin_late() on the loop: read and armed in one visit to it (each wakes it)."""
    view = await rt.store.get(job_id)
    late = _late_for(rt, view, started, defer)
    if late is not None:
        late.arm()
    return view, late


class ProgressReporter:
    """Coalesces a job's progress: at most one write per interval, the latest value wins."""

    def __init__(
        self,
        rt: WorkerRuntime,
        job_id: UUID,
        attempt: int,
        interval: float,
        late: LateStart | None = None,
    ) -> None:
        self.rt, self.job_id, self.attempt, self.interval = rt, job_id, attempt, interval
        # Progress follows `started` in the history: a late one is written first.
        self.late = late
        self._lock = threading.Lock()
        self._latest: tuple[int, str | None] | None = None
        self._flush: Future[None] | None = None
        self._flushing = False  # a _flush_later is running; it will write `_latest`
        self._last_write = float("-inf")  # never written: the first report goes out at once
        # Set by drain(): the flusher stops waiting out the interval and writes at once.
        self._wake = asyncio.Event()
        self._cancel_requested = False
        # A job cannot bloat its events with a huge message: it is cut (queueing/limits.py).
        self.max_message = get_settings().max_progress_message_chars

    def progress(self, percent: int, message: str | None) -> None:
        message = clip(message, self.max_message)
        with self._lock:
            self._latest = (percent, message)
            if self._flushing:
                return
            self._flushing = True
            self._flush = self.rt.submit(self._flush_later())

    def cancel_requested(self) -> bool:
        # Set by the attempt's CancelWatch (or a progress write): no database read here, so a
        # job calling raise_if_cancelled() in a tight loop costs nothing and never sees a DB error.
        return self._cancel_requested

    def mark_cancel_requested(self) -> None:
        self._cancel_requested = True

    def drain(self) -> None:
        """Write the last reported progress now; called before the terminal event."""
        if self._flush is not None:
            # Unwoken, the flusher would first sleep out the rest of the interval and every
            # job that reports progress would finish up to one interval late.
            self.rt.loop.call_soon_threadsafe(self._wake.set)
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
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
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
        if self.late is not None and not self.rt.call(self.late.ensure()):
            self._cancel_requested = True  # the job may not run on: it was cancelled or taken
            return
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
        if self.late is not None:
            self.late.view = done.view  # so the outcome is written on it without a read
        if done.view.cancel_requested:
            self._cancel_requested = True


def begin_attempt(
    rt: WorkerRuntime,
    job_type: JobType,
    job_id: UUID,
    worker: str,
    redelivered: bool,
    delivery: str = "",
) -> JobView | None:
    """Record `started`, or None when this delivery must not run the job.

    A delivery for a finished job, or a second copy of a message whose attempt is already
    running, does nothing. A redelivered message of a running attempt means its worker died,
    or, past the soft time limit, that Celery killed it at the hard one. `delivery` marks
    this delivery's `started`, so a write that committed before a lost connection is
    recognised as ours when repeated.
    """
    started_data = {"worker": worker, "delivery": delivery}
    # The common case, a queued job starting, in one transaction: no read first. A running
    # one goes through too, for a `started` of our own written before a lost connection to
    # be found; any other state is sorted out below.
    try:
        first = rt.retrying(
            lambda: rt.store.append(
                job_id, EventType.STARTED, started_data, also=_only_if_queued_or_running
            ),
            f"recording started of {job_id}",
        )
    except (InvalidTransition, _NotQueued):
        first = None
    if first is not None and (first.event is not None or _ours(first.existing, delivery)):
        return first.view
    view = rt.retrying(lambda: rt.store.get(job_id), f"reading job {job_id}")
    if view.state.is_final:
        log.info("job %s is already %s; delivery ignored", job_id, view.state)
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
        started = rt.record(job_id, EventType.STARTED, started_data, attempt=view.attempt)
    except InvalidTransition as exc:
        # Cancelled (or moved on) between our read and our write.
        log.info("job %s changed while starting (%s); delivery ignored", job_id, exc)
        return None
    if started.event is not None or _ours(started.existing, delivery):
        return started.view
    return None


class _NotQueued(Exception):
    """The job is not queued (or running): the delivery takes begin_attempt's full path."""


async def _only_if_queued_or_running(_: Any, locked: JobView) -> None:
    # Running too: a `started` of our own, written before a lost connection, is then found.
    if locked.state is not JobState.QUEUED and locked.state is not JobState.RUNNING:
        raise _NotQueued(str(locked.state))


def _ours(earlier: Event | None, delivery: str) -> bool:
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


def run_job(
    task: Task, job_type: JobType, function: JobFunction, job_id: str, payload: dict[str, Any]
) -> None:
    """The body of every jobline Celery task."""
    rt = runtime()
    jid = UUID(job_id)
    read: JobView | None = None
    slot: str | None = None
    if job_type.max_running_per_user:
        # The owner's share of the domain (queueing/fairness.py): read with a slot taken.
        try:
            read, slot = fairness.admit(rt, job_type, jid)
        except fairness.Deferred:
            return
    try:
        _run_admitted(rt, task, job_type, function, jid, payload, read)
    finally:
        if slot is not None:
            fairness.release(rt, slot)


def _run_admitted(
    rt: WorkerRuntime,
    task: Task,
    job_type: JobType,
    function: JobFunction,
    jid: UUID,
    payload: dict[str, Any],
    read: JobView | None,
) -> None:
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    worker, delivery = task.request.hostname or "worker", uuid.uuid4().hex
    late: LateStart | None = None
    defer = rt.settings.started_defer_ms / 1000
    if defer > 0 and not redelivered:
        # A read, no lock, no commit: the job's `started` is written late (LateStart).
        started = {"worker": worker, "delivery": delivery}
        view, late = begin_late(rt, jid, started, defer, read)
        if view.state.is_final:
            log.info("job %s is already %s; delivery ignored", jid, view.state)
            return
    if late is None:
        found = begin_attempt(rt, job_type, jid, worker, redelivered, delivery)
        if found is None:
            return
        view = found
    attempt = view.attempt
    # With the request id on the line (telemetry.py), one grep follows the job from its POST.
    log.info("job %s (%s) attempt %d started", jid, job_type.name, attempt)
    interval = rt.settings.progress_min_interval_ms / 1000
    reporter = ProgressReporter(rt, jid, attempt, interval, late)
    ctx = JobContext(jid, job_type.name, attempt, reporter)
    watch = CancelWatch(
        rt,
        jid,
        attempt,
        grace_seconds=job_type.policy.cancel_grace_seconds,
        poll_seconds=rt.settings.cancel_poll_seconds,
        on_request=reporter.mark_cancel_requested,
    )

    def finish(type: EventType, data: dict[str, Any], also: TxHook | None = None) -> None:
        if not watch.finish():
            return  # the watch terminated it: `cancelled` is recorded
        reporter.drain()
        try:
            if late is not None:
                late.record(type, data, also)
            else:
                rt.record(jid, type, data, attempt=attempt, also=also)
        except InvalidTransition as exc:
            # Cancelled from outside while it ran: the job's outcome is already final.
            log.info("job %s: %s not recorded: %s", jid, type, exc)
        else:
            log.info("job %s attempt %d %s", jid, attempt, type)

    try:
        request = function.parse(payload)
    except ValidationError as exc:
        finish(EventType.FAILED, {"error": error_of(exc, INVALID_PAYLOAD)})
        return
    watch.start()
    try:
        if function.is_async:
            watch.future = rt.submit(function(ctx, request))
            result = watch.future.result()
        else:
            result = function(ctx, request)
        # Checked here, not after the except clauses: an unstorable result fails the job.
        refused, result = storable_result(
            result,
            max_bytes=rt.settings.max_result_bytes,
            max_depth=rt.settings.max_json_depth - 1,  # stored as {"result": ...}
        )
    except (JobCancelled, CancelledError, asyncio.CancelledError):
        finish(EventType.CANCELLED, {"reason": "cancelled by request"})
    except SoftTimeLimitExceeded as exc:
        finish(EventType.FAILED, {"error": error_of(exc, "TIME_LIMIT")})
    except Retry:
        raise
    except Exception as exc:
        if isinstance(exc, job_type.retry_exceptions()) and attempt <= job_type.policy.max_retries:
            delay = job_type.policy.backoff(attempt)
            # The next attempt goes through the outbox, written with `retrying`: a broker
            # outage at this moment cannot lose it, and no ETA message waits in RabbitMQ.
            write_next, _ = Outbox.writer(
                attempt + 1,
                utcnow() + timedelta(seconds=delay),
                None,
                rt.settings.relay_lease_seconds,
                only_if=lambda locked: (
                    locked.state is JobState.RUNNING and locked.attempt == attempt
                ),
            )
            finish(
                EventType.RETRYING,
                {"error": error_of(exc), "delay_seconds": delay, "next_attempt": attempt + 1},
                also=write_next,
            )
            return
        log.exception("job %s failed", jid)
        finish(EventType.FAILED, {"error": error_of(exc)})
    else:
        if refused is not None:
            code, message = refused
            log.warning("job %s: %s", jid, message)
            finish(
                EventType.FAILED,
                {"error": job_error("ResultRefused", message, code)},
            )
        else:
            finish(EventType.SUCCEEDED, {"result": result})
    finally:
        watch.finish()


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
    # A worker publishes only Celery's monitoring events (task-received, -started, ...):
    # jobs and retries go out through the outbox, from the API or a relay, with confirms.
    # Confirms here made the worker's main process wait a broker round trip per event,
    # three per job, on the thread that also hands jobs to the pool (half its time).
    options = dict(app.conf.broker_transport_options or {})
    options.pop("confirm_publish", None)
    app.conf.broker_transport_options = options
    register_tasks(app, queues, [domain])
    telemetry.install(settings)
    return app
