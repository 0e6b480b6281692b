"""A worker process's heartbeat: its proof of life in the `workers` table (jobs/workers.py).

The main process of a worker beats for the whole node, its pool included, from a thread of
its own: one UPDATE every JOBLINE_WORKER_HEARTBEAT_SECONDS, whatever it runs. Not each
prefork child: the node is what a `started` event names (the task's hostname), what holds
the broker connection and acks the messages, and what a supervisor restarts. Celery gives
its pool's children a parent-death signal (SIGKILL), so none outlives the main process;
a child that dies alone is noticed by the main process, which has the broker deliver the
message again (task_reject_on_worker_lost), and that delivery records `worker_lost`
(queueing/delivery.py). So one row and one write per node, not per child or per job.

The beat has its own event loop and connection (jobline.db.own_connection): it goes on
while the pool's jobs hold the task threads, and it is not the Tortoise of the process,
which a prefork child opens for itself after the fork (queueing/runtime.py). Under a green
pool (one OS thread, one running event loop) it is a greenlet that beats on the worker
runtime's loop instead: a job blocking in C code there stops the beats with everything else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from celery import signals
from tortoise import BaseDBAsyncClient, connections

from jobline.backoff import backoff
from jobline.config import Settings
from jobline.db import own_connection
from jobline.dialects import DATABASE_ERRORS
from jobline.jobs import workers
from jobline.jobs.workers import WorkerIdentity
from jobline.queueing import green
from jobline.queueing.runtime import runtime

log = logging.getLogger("jobline.worker")
T = TypeVar("T")

# The first beat, before the worker consumes, is retried at these waits (doubling, capped)
# until the database answers: a job must never run on a worker without a row.
FIRST_BEAT_RETRY_FIRST = 0.2
FIRST_BEAT_RETRY_MAX = 5.0


class Heartbeat:
    """The beating thread of one worker process."""

    def __init__(self, settings: Settings, me: WorkerIdentity) -> None:
        self.me = me
        self.interval = settings.worker_heartbeat_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own: tuple[asyncio.AbstractEventLoop, BaseDBAsyncClient] | None = None
        self.bound = settings.worker_lost_seconds
        self._call: Callable[[Coroutine[Any, Any, Any]], Any]
        if green.patched():
            # One OS thread, its "threads" greenlets: asyncio allows it one running loop,
            # the worker runtime's (there is no fork: the runtime is this process's).
            rt = runtime()
            self._call = rt.call
            self._db: Callable[[], BaseDBAsyncClient] = lambda: connections.get("default")
        else:
            loop = asyncio.new_event_loop()
            db = own_connection(settings, "jobline-heartbeat")
            self._own = (loop, db)
            self._call = loop.run_until_complete
            self._db = lambda: db

    def _beat(self) -> None:
        self._call(workers.beat(self._db(), self.me))

    def first(self) -> None:
        """Beat once, before the worker takes a message: retried until it is stored.

        A predecessor of the same name is first recorded stopped, and its jobs are given up
        to the bound to be recovered by the relays: they name this worker too, and its
        beats would otherwise keep them `running` for ever.
        """
        left = self._until_stored(
            lambda: self._call(workers.take_over(self._db(), self.me)), "taking over"
        )
        if left:
            deadline = time.monotonic() + self.bound
            log.warning(
                "%s: a previous process of this name left running jobs; waiting for the"
                " relays to recover them",
                self.me.name,
            )
            while time.monotonic() < deadline and self._until_stored(
                lambda: bool(self._call(workers.orphans(self._db(), [self.me.name]))),
                "looking for its predecessor's jobs",
            ):
                time.sleep(self.interval)
        self._until_stored(self._beat, "first heartbeat")

    def _until_stored(self, run: Callable[[], T], what: str) -> T:
        for retries in itertools.count():
            try:
                return run()
            except DATABASE_ERRORS as exc:
                delay = backoff(FIRST_BEAT_RETRY_FIRST, FIRST_BEAT_RETRY_MAX, retries)
                log.warning("%s of %s failed (%r); retrying", what, self.me.name, exc)
                time.sleep(delay)
        raise AssertionError("unreachable: the backoff never ends")

    def start(self) -> None:
        """Beat every interval from a thread, until stop()."""
        self._thread = threading.Thread(target=self._run, name="jobline-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except DATABASE_ERRORS as exc:
                # Missed beats are the point: past JOBLINE_WORKER_LOST_SECONDS of them, this
                # worker's jobs are taken for lost. Beating resumes with the database.
                log.warning("heartbeat of %s failed (%r)", self.me.name, exc)
            except Exception:
                log.exception("heartbeat of %s failed", self.me.name)

    def stop(self) -> None:
        """Stop beating and record the stop (the pool has finished its jobs by then)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval * 2)
        try:
            self._call(workers.mark_stopped(self._db(), self.me.name))
        except Exception as exc:  # the database away, or a beat stuck on the loop: at exit
            # Then its row goes silent instead: its jobs, if any, are found after the bound.
            log.warning("recording the stop of %s failed (%r)", self.me.name, exc)
        if self._own is not None and not self._own[0].is_running():
            loop, db = self._own
            try:
                loop.run_until_complete(db.close())
            except Exception:
                log.debug("closing the heartbeat's connection failed", exc_info=True)
            loop.close()


def install(settings: Settings, domain: str) -> None:
    """Have this process's Celery worker beat: a first beat before it consumes, then a
    thread once it is ready, stopped (and the stop recorded) when it shuts down."""
    beating: list[Heartbeat] = []

    def on_init(sender: Any = None, **_: Any) -> None:
        me = WorkerIdentity(sender.hostname, domain, socket.gethostname(), os.getpid())
        heartbeat = Heartbeat(settings, me)
        heartbeat.first()
        beating.append(heartbeat)

    def on_ready(**_: Any) -> None:
        for heartbeat in beating:
            heartbeat.start()

    def on_shutdown(**_: Any) -> None:
        while beating:
            beating.pop().stop()

    signals.worker_init.connect(on_init, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
