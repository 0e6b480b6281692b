"""Progress coalescing: at most one write per interval, the latest value wins.

A job reports from its own thread (or, async, from the worker's loop) as often as it
likes; `progress` never blocks it. The writes happen on the worker's event loop, in one
coroutine per burst of reports, which awaits the write itself: no hop to a thread and back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import NamedTuple

from jobline.queueing.limits import clip
from jobline.waiting import wait_event


class Wrote(NamedTuple):
    """What writing one report came to."""

    stored: bool  # False: refused, nothing was stored (the interval does not restart)
    stop: bool  # the job is asked to stop: cancelled, or it may no longer run


# Writes one report on the loop. It knows nothing of the reporter: a reporter and its
# attempt refer to each other through no cycle, so both go when the attempt ends, without
# waiting for the garbage collector.
WriteProgress = Callable[[int, str | None], Awaitable[Wrote]]


class ProgressReporter:
    """Coalesces a job's progress: at most one write per interval, the latest value wins.

    It is the worker's side of a JobContext (jobs/context.py's Reporter): progress goes
    out through it, and the cancellation flag that the attempt's CancelWatch (or a progress
    write) raises is read from it.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        write: WriteProgress,
        interval: float,
        max_message: int,
    ) -> None:
        self.loop, self.write, self.interval = loop, write, interval
        # A job cannot bloat its events with a huge message: it is cut (queueing/limits.py).
        self.max_message = max_message
        self._lock = threading.Lock()
        self._latest: tuple[int, str | None] | None = None
        self._flush: Future[None] | None = None
        self._flushing = False  # a _flush_later is running; it will write `_latest`
        self._last_write = float("-inf")  # never written: the first report goes out at once
        # Set by drain(): the flusher stops waiting out the interval and writes at once.
        self._wake = asyncio.Event()
        self._cancel_requested = False

    def progress(self, percent: int, message: str | None) -> None:
        """Take a report (JobContext has rounded and clamped it); never blocks the job."""
        message = clip(message, self.max_message)
        with self._lock:
            self._latest = (percent, message)
            if self._flushing:
                return
            self._flushing = True
            self._flush = asyncio.run_coroutine_threadsafe(self._flush_later(), self.loop)

    def cancel_requested(self) -> bool:
        """Whether the job was asked to stop (what ctx.cancelled and raise_if_cancelled read)."""
        # Set by the attempt's CancelWatch (or a progress write): no database read here, so a
        # job calling raise_if_cancelled() in a tight loop costs nothing and never sees a DB error.
        return self._cancel_requested

    def mark_cancel_requested(self) -> None:
        """Raise the job's cancellation flag."""
        self._cancel_requested = True

    def drain(self) -> None:
        """Write the last reported progress now (from the job's thread, before its outcome)."""
        if self._flush is None:
            return  # never reported: nothing to write, and no visit to the loop
        asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result()

    async def _drain(self) -> None:
        # Unwoken, the flusher would first sleep out the rest of the interval and every
        # job that reports progress would finish up to one interval late.
        self._wake.set()
        assert self._flush is not None
        await asyncio.wrap_future(self._flush)
        latest = self._take()
        if latest is not None:
            await self._write(latest)

    def _take(self) -> tuple[int, str | None] | None:
        with self._lock:
            latest, self._latest = self._latest, None
            return latest

    async def _flush_later(self) -> None:
        # Loops until nothing new was reported: a value reported while a write was in
        # flight is written one interval later, not left until the job reports again.
        try:
            while True:
                wait = self._last_write + self.interval - time.monotonic()
                if wait > 0:
                    await wait_event(self._wake, wait)
                with self._lock:
                    latest, self._latest = self._latest, None
                    if latest is None:
                        self._flushing = False
                        return
                await self._write(latest)
        except BaseException:
            with self._lock:
                self._flushing = False
            raise

    async def _write(self, latest: tuple[int, str | None]) -> None:
        wrote = await self.write(*latest)
        if wrote.stored:
            self._last_write = time.monotonic()
        if wrote.stop:
            self._cancel_requested = True
