"""One worker process's runtime: its event loop thread, Tortoise on it, the event store.

Celery's task threads hand coroutines to that loop (`call`, `submit`); every write made
while the database may be away goes through `retrying`, which waits it out with backoff so
that a task does not return, and its message is not acked, until its work is stored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar
from uuid import UUID

from jobline.backoff import backoff
from jobline.config import Settings, get_settings
from jobline.db import open_db
from jobline.dialects import UNAVAILABLE
from jobline.jobs.direct import DirectWriter
from jobline.jobs.events import EventType
from jobline.jobs.store import Appended, JobStore, TxHook
from jobline.queueing import green
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
        """Schedule a coroutine on the process's loop (from any thread); its future."""
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
