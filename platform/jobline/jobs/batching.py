"""Group commit of submits: concurrent POSTs share their writes and their publish.

Stored one by one, a submit costs about fifteen database round trips and a broker round
trip (job, event and outbox row; the publish; the `queued` event with the row's
deletion). Here the submits waiting at one moment form a batch: one transaction stores
all their jobs, events and outbox rows with a multi-row INSERT per table, one pipelined
publish sends their messages, one transaction records their `queued` events. Nothing
waits for a batch to fill: a batch is whatever arrived while the previous ones were busy,
so a lone submit goes at once and a burst shares the work. The guarantees are those of
the single path (jobs/service.py): the outbox rows commit with the jobs, a publish the
broker did not confirm is left to the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass, field
from uuid import UUID

from jobline.dialects import refused_data
from jobline.jobs.outbox import Outbox, new_claim
from jobline.jobs.ports import Publisher
from jobline.jobs.projection import JobView
from jobline.jobs.store import (
    AdmitHook,
    DuplicateIdempotencyKey,
    JobStore,
    NewJob,
    NotAdmitted,
    utcnow,
)

log = logging.getLogger("jobline.jobs")


class SubmitAlone(Exception):
    """The batch had a repeated Idempotency-Key: this job is to be submitted on its own."""


@dataclass
class _Waiting:
    job: NewJob
    request_id: str | None
    done: asyncio.Future[JobView] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SubmitBatcher:
    """Stores and publishes the submits of one API process in batches; see the module docstring."""

    def __init__(
        self,
        store: JobStore,
        publisher: Publisher,
        *,
        max_batch: int,
        in_flight: int,
        answer_at_commit: bool = False,
    ) -> None:
        assert publisher.batches, "batches are published on a confirming channel"
        self.store = store
        # JOBLINE_SUBMIT_ANSWER=commit: each job is answered when its transaction commits
        # (its outbox row with it), not after the broker's confirm and the `queued` commit.
        self.answer_at_commit = answer_at_commit
        self.publisher = publisher
        self.max_batch = max_batch
        self._slots = asyncio.Semaphore(in_flight)
        self._waiting: deque[_Waiting] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        # The active-jobs cap (jobs/quotas.py), set by the service that submits through it.
        self.admit: AdmitHook | None = None
        self.batches = 0
        self.jobs = 0
        # Batches the database refused a value of, whose jobs were then submitted one by one.
        self.split = 0

    async def submit(self, job: NewJob, request_id: str | None = None) -> JobView:
        """Store the job and publish it with whichever others are waiting; its view after.

        The view is `queued` once the broker confirmed it, else `pending` (the relay
        publishes it); answering at commit, `pending` as stored. Raises SubmitAlone when
        the caller must use the single path, NotAdmitted when the owner's cap left no room.
        """
        waiting = _Waiting(job, request_id)
        self._waiting.append(waiting)
        self._arrived.set()
        return await waiting.done

    def start(self) -> None:
        """Run in the background of the current event loop (the API's lifespan)."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="jobline-submits")

    async def stop(self) -> None:
        """Finish the batches under way, then stop taking new ones."""
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.done.done():
                waiting.done.set_exception(SubmitAlone("the API is stopping"))

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            # Waiting for a free slot is what lets a batch grow while others are busy.
            await self._slots.acquire()
            batch: list[_Waiting] = []
            while self._waiting and len(batch) < self.max_batch:
                batch.append(self._waiting.popleft())
            if not self._waiting:
                self._arrived.clear()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._process(batch))
            self._batches.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._slots.release()

    async def _process(self, batch: list[_Waiting]) -> None:
        try:
            views = await self._store_and_publish(batch)
        except DuplicateIdempotencyKey:
            # A key used before (or twice in this batch): nothing was stored; each job goes
            # alone, so only the repeated one gets its first job back.
            for waiting in batch:
                _settle(waiting, exc=SubmitAlone("a repeated Idempotency-Key in the batch"))
            return
        except Exception as exc:
            if refused_data(exc):
                # One job's data the database cannot store (nothing was stored): each goes
                # alone, so only that one fails and the others of the batch are stored.
                log.warning("the database refused a batch of %d jobs: %s", len(batch), exc)
                self.split += 1
                for waiting in batch:
                    _settle(waiting, exc=SubmitAlone("the database refused a value in the batch"))
                return
            for waiting in batch:
                _settle(waiting, exc=exc)
            return
        except BaseException as exc:
            for waiting in batch:
                _settle(waiting, exc=exc)
            raise
        _settle_all(batch, views)

    async def _store_and_publish(self, batch: list[_Waiting]) -> dict[UUID, JobView]:
        publish_now = self.publisher.healthy
        write_outbox, written = Outbox.writer_many(
            utcnow(), new_claim() if publish_now else None, self.publisher.lease
        )
        stored = await self.store.submit_many(
            [w.job for w in batch], also=write_outbox, admit=self.admit
        )
        views = {view.id: view for view in stored}
        self.batches += 1
        self.jobs += len(batch)
        if self.answer_at_commit:
            # Stored with their outbox rows: from here a job is published whatever happens
            # to this process (the relay takes a row whose claim ran out).
            _settle_all(batch, views)
        if not publish_now or not views:
            return views
        request_ids = {w.job.job_id: w.request_id for w in batch if w.request_id is not None}
        try:
            published = await self.publisher.publish_many(written, views, request_ids)
        except Exception:
            # Stored already: failing the requests now would invite second submits.
            log.exception("publishing a batch of %d jobs failed; the relay will", len(batch))
            return views
        for job_id, view in published.items():
            if view is not None:
                views[job_id] = view
        return views


def _settle_all(batch: list[_Waiting], views: dict[UUID, JobView]) -> None:
    for waiting in batch:
        view = views.get(waiting.job.job_id)
        if view is None:
            _settle(waiting, exc=NotAdmitted(waiting.job.job_id))
        else:
            _settle(waiting, view=view)


def _settle(
    waiting: _Waiting, *, view: JobView | None = None, exc: BaseException | None = None
) -> None:
    if waiting.done.done():
        return  # its request went away
    if exc is not None:
        waiting.done.set_exception(exc)
    else:
        assert view is not None
        waiting.done.set_result(view)
