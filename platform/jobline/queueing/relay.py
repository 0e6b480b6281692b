"""The broker side of publishing: the domain's Publisher port over Celery/RabbitMQ and the outbox.

OutboxPublisher publishes claimed outbox rows (one, or a batch on a confirming channel) and
keeps the broker's health; Relay is the loop that drains the outbox; wire() is the one
place that builds them. The submitting request publishes its own job at once when the
broker looks healthy; the relay, running inside every API process and as `jobline relay`,
publishes whatever is left: jobs stored while RabbitMQ was down or slow, delayed jobs once
due, rows whose publisher died. This module imports the domain (jobs/); the domain sees
only `jobline.jobs.ports.Publisher`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Protocol
from uuid import UUID

import anyio
from celery import Celery

from jobline.backoff import backoff
from jobline.config import Settings
from jobline.dialects import DATABASE_ERRORS
from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs.events import EventType
from jobline.jobs.outbox import Dispatch, Outbox
from jobline.jobs.projection import JobView
from jobline.jobs.spec import Queues
from jobline.jobs.states import AWAITING_BROKER, JobState
from jobline.jobs.store import Appended, Change, JobStore
from jobline.queueing.confirms import ConfirmingPublisher, JobMessage
from jobline.queueing.dispatch import CeleryDispatcher
from jobline.queueing.lost_workers import LostWorkers
from jobline.queueing.reconcile import BrokerCounts, ReconcileLoop, Reconciler, reconcilable

log = logging.getLogger("jobline.relay")

# The database restarting: expected, logged without a traceback, outlived.
# A job in these states is waiting for the publish of its current attempt. A queued one
# has a row when a worker deferred it (queueing/fairness.py): published again, its
# `queued` is then a duplicate and records nothing.
AWAITING_PUBLISH = AWAITING_BROKER | {JobState.QUEUED}


class Dispatcher(Protocol):
    """What publishing needs from the queueing side (CeleryDispatcher)."""

    async def publish(
        self, view: JobView, delay_seconds: float | None = None, *, task_id: str | None = None
    ) -> str: ...

    async def revoke(self, task_id: str) -> None: ...


class BrokerHealth:
    """Whether publishing lately worked: after a failure, requests leave publishing to the relay.

    A request then answers at once with its job `pending` instead of waiting out a broker
    that is down; the relay keeps trying and marks the broker healthy again.
    """

    def __init__(self, recheck_seconds: float) -> None:
        self.recheck_seconds = recheck_seconds
        self._suspect_until = 0.0

    @property
    def ok(self) -> bool:
        return time.monotonic() >= self._suspect_until

    def failed(self) -> None:
        self._suspect_until = time.monotonic() + self.recheck_seconds

    def succeeded(self) -> None:
        self._suspect_until = 0.0


class OutboxPublisher:
    """Publishes claimed outbox rows and records `queued` with the rows' deletion.

    Implements jobline.jobs.ports.Publisher.
    """

    def __init__(
        self,
        store: JobStore,
        outbox: Outbox,
        dispatcher: Dispatcher,
        settings: Settings,
        confirming: ConfirmingPublisher | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.dispatcher = dispatcher
        # Publishes batches on one channel (AMQP brokers); publish_many needs it.
        self.confirming = confirming
        self.timeout = settings.broker_publish_timeout_seconds
        self.lease = settings.relay_lease_seconds
        self.retry_first = settings.relay_interval_seconds
        self.retry_max = settings.relay_retry_max_seconds
        self.health = BrokerHealth(settings.broker_recheck_seconds)

    @property
    def healthy(self) -> bool:
        """Whether publishing lately worked (BrokerHealth)."""
        return self.health.ok

    @property
    def batches(self) -> bool:
        """Whether publish_many is available: only on a confirming (AMQP) channel."""
        return self.confirming is not None

    async def revoke(self, task_id: str) -> None:
        """Broadcast a revoke, waiting at most the publish timeout."""
        with anyio.fail_after(self.timeout):
            await self.dispatcher.revoke(task_id)

    async def publish(self, dispatch: Dispatch, view: JobView | None = None) -> JobView | None:
        """Publish a claimed row; the job's view afterwards, or None when the broker failed.

        `view`, when the caller just stored the job, spares reading it again; a view of
        another attempt or state is not trusted, the job is read then.
        """
        if view is None or not _awaits(view, dispatch):
            try:
                view = await self.store.get(dispatch.job_id)
            except JobNotFound:
                await self.outbox.discard(dispatch)
                return None
        if not _awaits(view, dispatch):
            # Cancelled, or delivered already (a worker records `queued` for a pending job,
            # then `started`; a second message in between is ignored by the worker).
            await self.outbox.discard(dispatch)
            return view
        try:
            with anyio.fail_after(self.timeout):
                await self.dispatcher.publish(view, task_id=dispatch.task_id)
        except TimeoutError:
            # The abandoned publish may still go through: the claim stays until its lease
            # ends, so nobody publishes the row again before then.
            self.health.failed()
            log.warning(
                "publishing job %s timed out after %.1fs; retried after the lease",
                view.id,
                self.timeout,
            )
            return None
        except Exception as exc:
            self.health.failed()
            delay = backoff(self.retry_first, self.retry_max, dispatch.tries)
            log.warning("publishing job %s failed (%r); retried in %.1fs", view.id, exc, delay)
            await self.outbox.release(dispatch, repr(exc), delay)
            return None
        self.health.succeeded()
        try:
            done = await self.store.append(
                view.id,
                EventType.QUEUED,
                {"task_id": dispatch.task_id},
                attempt=dispatch.attempt,
                also=Outbox.remover(dispatch.attempt, dispatch.claim),
            )
        except InvalidTransition:
            # Cancelled while it was being published: the worker ignores a finished job's message.
            await self.outbox.discard(dispatch)
            return await self.store.get(view.id)
        return done.view

    async def publish_many(
        self,
        dispatches: Sequence[Dispatch],
        views: Mapping[UUID, JobView],
        request_ids: Mapping[UUID, str] | None = None,
    ) -> dict[UUID, JobView | None]:
        """publish() for many claimed rows: one pipelined publish, one transaction of `queued`.

        `views` are the jobs as their caller just stored them (pending, this attempt). Per
        job: its view afterwards, or None when the broker failed (as publish() returns).
        The outcomes per row are publish()'s: a confirm timeout keeps the claim until the
        lease ends, any other failure releases the row for a later try, and a job
        cancelled meanwhile only loses its row.
        """
        assert self.confirming is not None, "publish_many needs a ConfirmingPublisher"
        request_ids = request_ids or {}
        messages = [
            JobMessage(views[d.job_id], d.task_id, request_ids.get(d.job_id)) for d in dispatches
        ]
        outcomes = await self.confirming.publish_many(messages)
        result: dict[UUID, JobView | None] = {}
        confirmed: list[Dispatch] = []
        for dispatch, outcome in zip(dispatches, outcomes, strict=True):
            if outcome is None:
                confirmed.append(dispatch)
                continue
            result[dispatch.job_id] = None
            self.health.failed()
            if isinstance(outcome, TimeoutError):
                log.warning(
                    "publishing job %s timed out after %.1fs; retried after the lease",
                    dispatch.job_id,
                    self.timeout,
                )
                continue
            delay = backoff(self.retry_first, self.retry_max, dispatch.tries)
            log.warning(
                "publishing job %s failed (%r); retried in %.1fs", dispatch.job_id, outcome, delay
            )
            await self.outbox.release(dispatch, repr(outcome), delay)
        if not confirmed:
            return result
        self.health.succeeded()
        changes = [
            Change(d.job_id, EventType.QUEUED, {"task_id": d.task_id}, d.attempt) for d in confirmed
        ]
        remove = Outbox.remover_many(confirmed)
        # Most jobs are still as their caller stored them: written by compare-and-set on
        # those views, without reading and locking the rows; if one moved, the locking path.
        at_views = await self.store.append_many_at(
            [(change, views[change.job_id]) for change in changes], also=remove
        )
        appended: Sequence[Appended | Exception] = (
            at_views if at_views is not None else await self.store.append_many(changes, also=remove)
        )
        for dispatch, done in zip(confirmed, appended, strict=True):
            if isinstance(done, Appended):
                result[dispatch.job_id] = done.view
            elif isinstance(done, InvalidTransition):
                # Cancelled while it was being published (its row is gone with the others):
                # the worker ignores a finished job's message.
                result[dispatch.job_id] = await self.store.get(dispatch.job_id)
            else:
                result[dispatch.job_id] = None
        return result


def _awaits(view: JobView, dispatch: Dispatch) -> bool:
    """Whether the job still waits for this row's publish (not cancelled, not delivered)."""
    return view.attempt == dispatch.attempt and view.state in AWAITING_PUBLISH


class Relay:
    """Claims due outbox rows in batches and publishes them, until stopped.

    Beside it run the watch over workers (`watch`, queueing/lost_workers.py): the jobs it
    recovers from a lost worker have their next attempt in the outbox, published here; and
    the reconciliation of lost messages (`reconcile`, queueing/reconcile.py).
    """

    def __init__(
        self,
        publisher: OutboxPublisher,
        settings: Settings,
        watch: LostWorkers | None = None,
        reconcile: ReconcileLoop | None = None,
    ) -> None:
        self.publisher = publisher
        self.watch = watch
        self.reconcile = reconcile
        self.interval = settings.relay_interval_seconds
        self.batch = settings.relay_batch
        self.lease = settings.relay_lease_seconds
        self.limiter = anyio.CapacityLimiter(settings.relay_concurrency)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0

    async def run_once(self) -> int:
        """One round: claim a batch and publish it; returns how many rows were claimed."""
        claimed = await self.publisher.outbox.claim(self.batch, self.lease)

        async def one(dispatch: Dispatch) -> None:
            async with self.limiter:
                if await self.publisher.publish(dispatch) is not None:
                    self.published += 1

        async with anyio.create_task_group() as group:
            for dispatch in claimed:
                group.start_soon(one, dispatch)
        return len(claimed)

    async def run(self) -> None:
        """Relay until cancelled; database and broker errors are logged and outlived."""
        log.info("relay %s started", self.name)
        watch = None
        if self.watch is not None:
            watch = asyncio.get_running_loop().create_task(
                self.watch.run(), name="jobline-lost-workers"
            )
        reconciling = None
        if self.reconcile is not None:
            reconciling = asyncio.get_running_loop().create_task(
                self.reconcile.run(), name="jobline-reconcile"
            )
        try:
            await self._relay()
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError, *DATABASE_ERRORS):
                    await watch
            if reconciling is not None and self.reconcile is not None:
                self.reconcile.stopping = True
                reconciling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reconciling

    async def _relay(self) -> None:
        while not self._stopping:
            try:
                claimed = await self.run_once()
            except DATABASE_ERRORS as exc:
                if self._stopping:
                    # A cancelled query surfaces as a driver error ("Cancelled during
                    # execution"), not CancelledError: without this the loop never ends.
                    return
                log.warning("relay round failed (%r); retrying in %.1fs", exc, self.interval)
                claimed = 0
            except Exception:
                if self._stopping:
                    return
                log.exception("relay round failed; retrying in %.1fs", self.interval)
                claimed = 0
            if claimed < self.batch:
                await asyncio.sleep(self.interval)

    def start(self) -> None:
        """Run in the background of the current event loop (the API's lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="jobline-relay")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def wire(
    settings: Settings, queues: Queues, celery: Celery, store: JobStore
) -> tuple[OutboxPublisher, Relay]:
    """The publisher and relay of one process, sharing one broker health, and the watch over
    workers the relay runs: the one wiring site."""
    dispatcher = CeleryDispatcher(celery, queues, settings.broker_publish_timeout_seconds)
    confirming = None
    if settings.broker_url.startswith("amqp"):
        confirming = ConfirmingPublisher(
            celery,
            queues,
            settings.broker_url,
            settings.broker_publish_timeout_seconds,
            settings.publish_idle_reconnect_seconds,
        )
    # The relay claims only rows of the types this process's queues.yaml can publish; its
    # watch over workers recovers only jobs of those types too.
    outbox = Outbox(types=queues.job_types)
    publisher = OutboxPublisher(store, outbox, dispatcher, settings, confirming)
    reconcile = None
    if settings.reconcile_interval_seconds > 0 and reconcilable(settings) is None:
        reconciler = Reconciler(store, queues, settings, BrokerCounts(settings))
        reconcile = ReconcileLoop(reconciler, settings.reconcile_interval_seconds)
    watch = LostWorkers(store, queues, settings)
    return publisher, Relay(publisher, settings, watch, reconcile)
