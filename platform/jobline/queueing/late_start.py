"""The late start: an attempt's `started` written late, so a fast job commits it with its outcome.

A job that ends within `defer` seconds (JOBLINE_STARTED_DEFER_MS) records `started` and
its outcome in one transaction: one commit (an fsync) per job instead of two. Temporal does
the same with an activity's started event. A longer job gets its `started` written once
`defer` has run out (within half a window more: Windows), or sooner when it first reports
progress; `started` always carries the time the job began. Only a first delivery of a job
found queued (or still pending) comes this way. A worker dying inside the window leaves no
`started`: the message comes back redelivered, and a redelivery takes the full path
(queueing/delivery.py), so a job that keeps killing its worker is still counted
(worker_lost) and stopped.

The late `started` is where a message of an older dispatch generation is refused (the
reconciler published the job again meanwhile: queueing/reconcile.py): its check runs in
the transaction that writes it, on the locked row (or the compare-and-set on last_seq,
which a `requeued` moves on). The job's body has then run for up to 1.5 x `defer` seconds,
or to its first progress report, unrecorded: the one window in which a republished job runs
twice (docs/architecture.md, "Lost messages").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs.events import FIRST_GENERATION, EventType
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState, may_start
from jobline.jobs.store import Appended, Step, TxHook, utcnow
from jobline.queueing.delivery import StaleMessage, left_behind, ours, stale
from jobline.queueing.runtime import WorkerRuntime

log = logging.getLogger("jobline.worker")


class LateStart:
    """An attempt's `started`, written by the loop when its window ends, or with the outcome.

    `ensure` and the write run on the worker's event loop; `arm` and `record` on the task's
    thread (the process's Windows watches the window).
    """

    def __init__(
        self,
        rt: WorkerRuntime,
        view: JobView,
        data: dict[str, Any],
        defer: float,
        *,
        queued: dict[str, Any] | None = None,
        generation: int = FIRST_GENERATION,
    ) -> None:
        self.rt, self.data, self.defer = rt, data, defer
        self.job_id, self.attempt = view.id, view.attempt
        # The message's dispatch generation: `started` is refused once the job is past it.
        self.generation = generation
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
        """Start the window: `started` is written once it runs out (see Windows)."""
        windows().open(self)

    def window_ran_out(self) -> None:
        """Called by Windows, from its thread: have the loop write `started`."""
        # A loop already closed: the worker is stopping, and the message comes back.
        with contextlib.suppress(RuntimeError):
            self.rt.loop.call_soon_threadsafe(self._start_write)

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
            merged = self._merged
        windows().close(self)
        return merged

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
        if stale(done.view, self.generation):
            raise StaleMessage(
                f"generation {self.generation}, the job is at {done.view.generation}"
            )
        is_started = index == (0 if self.queued is None else 1)
        if is_started and done.event is None and not ours(done.existing, self.data["delivery"]):
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


class Windows:
    """One thread per process: has `started` written for each attempt whose window ran out.

    A window per job on the event loop (`call_soon_threadsafe` to arm it, then its
    `call_later` firing) woke the loop thread twice per job, taking the GIL from the job's
    thread each time. Here opening and closing a window only takes a lock; the thread looks
    at the open windows no more often than every `defer / 2` (so a job that outlives its
    window gets `started` between `defer` and `1.5 x defer` after it began) and sleeps while
    none is open.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        # id(late) -> (deadline on the monotonic clock, late), in opening order: with the
        # one `defer` of the process, also the order of their deadlines.
        self._open: dict[int, tuple[float, LateStart]] = {}
        self.idle = False  # the thread waits for a window to open: wake it
        self._thread: threading.Thread | None = None
        self.opened = 0
        self.ran_out = 0

    def open(self, late: LateStart) -> None:
        with self._cond:
            self._open[id(late)] = (time.monotonic() + late.defer, late)
            self.opened += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="jobline-started-windows", daemon=True
                )
                self._thread.start()
            elif self.idle:
                self._cond.notify()

    def close(self, late: LateStart) -> None:
        with self._cond:
            self._open.pop(id(late), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._open:
                    self.idle = True
                    self._cond.wait()
                    self.idle = False
                deadline, late = next(iter(self._open.values()))
            # Never sooner than half a window: one look serves every window ending meanwhile.
            time.sleep(max(deadline - time.monotonic(), late.defer / 2))
            now = time.monotonic()
            with self._cond:
                due = [late for deadline, late in self._open.values() if deadline <= now]
                for late in due:
                    del self._open[id(late)]
                self.ran_out += len(due)
            for late in due:
                late.window_ran_out()


_windows: dict[int, Windows] = {}
_windows_lock = threading.Lock()


def windows() -> Windows:
    """This process's Windows (a prefork child gets its own, not its parent's)."""
    with _windows_lock:
        found = _windows.get(os.getpid())
        if found is None:
            found = _windows[os.getpid()] = Windows()
        return found


def begin_late(
    rt: WorkerRuntime,
    job_id: UUID,
    started: dict[str, Any],
    defer: float,
    read: JobView | None = None,
    task_id: str | None = None,
    generation: int = FIRST_GENERATION,
) -> tuple[JobView, LateStart | None]:
    """Read a delivered job (unless `read` already); a LateStart, its window running, when
    it is queued or pending and the message is its current one: of its current attempt
    (`task_id`) and dispatch generation."""
    if read is not None:
        late = _late_for(rt, read, started, defer, task_id, generation)
        if late is not None:
            late.arm()
        return read, late
    direct = rt.direct
    if direct is None:
        return rt.retrying(
            lambda: _late_start(rt, job_id, started, defer, task_id, generation),
            f"reading {job_id}",
        )
    found = rt.retrying_here(lambda: direct.get(job_id), f"reading job {job_id}")
    if found is None:
        raise JobNotFound(job_id=str(job_id))
    late = _late_for(rt, found, started, defer, task_id, generation)
    if late is not None:
        late.arm()
    return found, late


def _late_for(
    rt: WorkerRuntime,
    view: JobView,
    started: dict[str, Any],
    defer: float,
    task_id: str | None,
    generation: int,
) -> LateStart | None:
    # The late start serves the common case, a queued or pending job; a retry's next
    # attempt (`retrying`) and a message of an attempt left behind take the full path. A
    # message of an older generation starts nothing.
    if (
        not may_start(view.state)
        or view.state is JobState.RETRYING
        or left_behind(view, task_id)
        or stale(view, generation)
    ):
        return None
    # Pending: the broker delivered it, so it accepted it; the publisher's `queued` may
    # still be on its way and is then written here, with `started`.
    queued = {"by": started["worker"]} if view.state is JobState.PENDING else None
    return LateStart(rt, view, started, defer, queued=queued, generation=generation)


async def _late_start(
    rt: WorkerRuntime,
    job_id: UUID,
    started: dict[str, Any],
    defer: float,
    task_id: str | None,
    generation: int,
) -> tuple[JobView, LateStart | None]:
    """begin_late() on the loop: read and armed in one visit to it (each wakes it)."""
    view = await rt.store.get(job_id)
    late = _late_for(rt, view, started, defer, task_id, generation)
    if late is not None:
        late.arm()
    return view, late
