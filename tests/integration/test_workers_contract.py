"""Workers' heartbeats and the recovery of their running jobs, against SQLite and MariaDB.

The statements of jobs/workers.py and the watch of queueing/lost_workers.py on a migrated
database: a beat makes and refreshes a row, a worker stopped or silent past the bound
loses its running jobs (worker_lost and the next attempt's outbox row in one transaction;
failed past max_worker_losses; cancelled when a cancel was asked), several watches at once
record each loss once, a watch judges silence only after a whole bound of its own, and a
cancel of a running job whose worker is gone completes at once. Silence is made by moving
a row's last beat back, not by waiting.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from tortoise import connections

from jobline.config import Settings
from jobline.jobs import workers
from jobline.jobs.events import EventType
from jobline.jobs.models import DispatchRow, WorkerRow
from jobline.jobs.outbox import task_id_for
from jobline.jobs.projection import JobView
from jobline.jobs.service import Caller, JobService
from jobline.jobs.spec import Queues, load_queues
from jobline.jobs.states import JobState
from jobline.jobs.store import JobStore
from jobline.jobs.workers import WorkerIdentity
from jobline.queueing.lost_workers import LostWorkers
from tests.chaos import CHAOS_QUEUES
from tests.integration.backends import BACKENDS, open_backend

pytestmark = pytest.mark.integration

E = EventType
BOUND = 30.0


@dataclass
class Backend:
    settings: Settings
    store: JobStore
    queues: Queues


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    async with open_backend(request, tmp_path_factory, "workers") as settings:
        yield Backend(
            settings.model_copy(update={"worker_lost_seconds": BOUND}),
            JobStore(),
            load_queues(CHAOS_QUEUES),
        )


def db() -> Any:
    return connections.get("default")


def identity() -> WorkerIdentity:
    pid = uuid.uuid4().int % 1_000_000
    return WorkerIdentity(f"chaos@test-host:{pid}", "chaos", "test-host", pid)


async def running_on(store: JobStore, worker: str, type: str = "chaos.steady") -> JobView:
    """A job started by `worker`, as a worker records it."""
    job_id = uuid.uuid4()
    data = {"type": type, "queue": type.split(".")[0], "payload": {}, "owner_id": str(uuid.uuid4())}
    await store.submit(job_id=job_id, data=data)
    await store.append(job_id, E.QUEUED, {"task_id": task_id_for(job_id, 1)})
    return (await store.append(job_id, E.STARTED, {"worker": worker, "delivery": "d"})).view


async def silence(name: str, seconds: float) -> None:
    """Move the worker's last beat `seconds` back."""
    row = await WorkerRow.get(name=name)
    row.beat_ms -= int(seconds * 1000)
    await row.save(update_fields=["beat_ms"])


def watch(backend: Backend, *, trusted: bool = True) -> LostWorkers:
    """A watch; `trusted`: it has read the database without failure for a whole bound."""
    lost = LostWorkers(backend.store, backend.queues, backend.settings)
    if trusted:
        lost.watching_since = time.monotonic() - BOUND - 1
    return lost


def types(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def test_a_beat_makes_the_row_then_refreshes_it(backend: Backend) -> None:
    me = identity()
    await workers.beat(db(), me)
    first = await WorkerRow.get(name=me.name)
    assert (first.domain, first.host, first.pid, first.stopped_ms) == (
        "chaos",
        "test-host",
        me.pid,
        None,
    )
    await silence(me.name, 60)
    await workers.beat(db(), me)
    again = await WorkerRow.get(name=me.name)
    assert again.beat_ms >= first.beat_ms and again.started_ms == first.started_ms
    assert me.name not in {g.name for g in await workers.gone(db(), BOUND)}
    assert not await workers.is_gone(db(), me.name, BOUND)


async def test_the_job_of_a_stopped_worker_is_requeued_with_its_next_attempt_published(
    backend: Backend,
) -> None:
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name)
    assert job.worker == me.name
    await workers.mark_stopped(db(), me.name)

    assert await watch(backend, trusted=False).run_once() == 1  # stopped: no wait needed

    view = await backend.store.get(job.id)
    assert (view.state, view.attempt, view.task_id) == (
        JobState.QUEUED,
        2,
        task_id_for(job.id, 2),
    )
    events = await backend.store.all_events(job.id)
    assert types(events)[-1] == "worker_lost"
    assert events[-1].data == {
        "worker": me.name,
        "reason": workers.STOPPED,
        "task_id": task_id_for(job.id, 2),
    }
    row = await DispatchRow.get(job_id=job.id)
    assert (row.attempt, row.task_id, row.claim) == (2, task_id_for(job.id, 2), None)
    # The worker's row goes once no running job names it.
    assert not await WorkerRow.filter(name=me.name).exists()
    assert await watch(backend).run_once() == 0


async def test_silence_is_judged_only_after_a_whole_bound_of_watching(backend: Backend) -> None:
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name)
    await silence(me.name, BOUND + 5)

    fresh = watch(backend, trusted=False)
    assert await fresh.run_once() == 0  # just started: every beat may be old after an outage
    assert (await backend.store.get(job.id)).state is JobState.RUNNING

    fresh.watching_since = time.monotonic() - BOUND - 1
    assert await fresh.run_once() == 1
    events = await backend.store.all_events(job.id)
    assert events[-1].type is E.WORKER_LOST and events[-1].data["reason"] == workers.SILENT


async def test_a_worker_that_beats_keeps_its_jobs(backend: Backend) -> None:
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name)
    await silence(me.name, BOUND - 10)
    assert await watch(backend).run_once() == 0
    assert (await backend.store.get(job.id)).state is JobState.RUNNING


async def test_watches_racing_record_each_loss_once(backend: Backend) -> None:
    me = identity()
    await workers.beat(db(), me)
    jobs = [await running_on(backend.store, me.name) for _ in range(5)]
    await workers.mark_stopped(db(), me.name)

    counts = await asyncio.gather(*(watch(backend).run_once() for _ in range(4)))

    assert sum(counts) == len(jobs)
    for job in jobs:
        events = await backend.store.all_events(job.id)
        assert types(events).count("worker_lost") == 1
        assert await DispatchRow.filter(job_id=job.id).count() == 1


async def test_a_job_that_lost_too_many_workers_fails(backend: Backend) -> None:
    # fragile.steady allows 2 losses (tests/chaos_queues.yaml).
    job_id = None
    for attempt in (1, 2):
        me = identity()
        await workers.beat(db(), me)
        if job_id is None:
            job = await running_on(backend.store, me.name, "fragile.steady")
            job_id = job.id
        else:
            done = await backend.store.append(job_id, E.STARTED, {"worker": me.name})
            assert done.view.attempt == attempt
        await workers.mark_stopped(db(), me.name)
        assert await watch(backend).run_once() == 1
    assert job_id is not None
    view = await backend.store.get(job_id)
    assert view.state is JobState.FAILED and view.error is not None
    assert view.error["code"] == "WORKER_LOST"
    assert types(await backend.store.all_events(job_id))[-2:] == ["worker_lost", "failed"]
    # Failed: no next attempt waits in the outbox (only the first loss's row, published or not).
    assert await DispatchRow.filter(job_id=job_id, attempt=3).count() == 0


async def test_a_job_asked_to_stop_is_cancelled_when_its_worker_is_lost(backend: Backend) -> None:
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name)
    await backend.store.append(job.id, E.CANCEL_REQUESTED, {})
    await workers.mark_stopped(db(), me.name)
    assert await watch(backend).run_once() == 1
    view = await backend.store.get(job.id)
    assert view.state is JobState.CANCELLED
    assert not await DispatchRow.filter(job_id=job.id).exists()


class NoBroker:
    """A publisher that is never healthy: the service leaves publishing to the relay."""

    lease = 60.0
    healthy = False
    batches = False

    async def revoke(self, task_id: str) -> None:
        raise AssertionError("nothing to revoke on a job nobody runs")


async def test_cancel_of_a_job_whose_worker_is_gone_completes_at_once_and_retry_works(
    backend: Backend,
) -> None:
    service = JobService(backend.store, backend.queues, NoBroker(), 1 << 20)  # type: ignore[arg-type]
    alive, dead = identity(), identity()
    for me in (alive, dead):
        await workers.beat(db(), me)
    on_alive = await running_on(backend.store, alive.name)
    on_dead = await running_on(backend.store, dead.name)
    await silence(dead.name, BOUND + 5)
    caller = Caller(uuid.uuid4(), is_superuser=True)

    asked = await service.cancel(caller, on_alive.id)
    assert asked.state is JobState.RUNNING and asked.cancel_requested  # its worker stops it

    cancelled = await service.cancel(caller, on_dead.id)
    assert cancelled.state is JobState.CANCELLED
    events = await backend.store.all_events(on_dead.id)
    assert events[-1].type is E.CANCELLED and events[-1].data["worker"] == dead.name

    retried = await service.retry(caller, on_dead.id)
    assert (retried.state, retried.attempt) == (JobState.RETRYING, 2)
    assert await DispatchRow.filter(job_id=on_dead.id, attempt=2).exists()


async def test_dev_marks_the_workers_it_killed_and_finds_their_jobs(backend: Backend) -> None:
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name)
    names = await workers.mark_killed(db(), me.host, [me.pid])
    assert names == [me.name]
    assert [o.job_id for o in await workers.orphans(db(), names)] == [job.id]
    assert await workers.is_gone(db(), me.name, BOUND)


async def test_a_watch_leaves_the_jobs_of_types_its_queues_do_not_declare(backend: Backend) -> None:
    # Their retry policy and the publish of their next attempt belong to a relay that knows
    # them (relays claim only the outbox rows of their own types).
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name, "elsewhere.thing")
    await workers.mark_stopped(db(), me.name)
    await watch(backend).run_once()  # (it may recover jobs other tests left behind)
    assert (await backend.store.get(job.id)).state is JobState.RUNNING
    assert await WorkerRow.filter(name=me.name).exists()


async def test_a_watch_that_paused_longer_than_the_bound_watches_a_whole_bound_again(
    backend: Backend,
) -> None:
    # A database outage may have stopped every beat while this process was not looking.
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name)
    await silence(me.name, BOUND + 5)
    paused = watch(backend)
    paused.last_look = time.monotonic() - BOUND - 1
    await paused.run_once()
    assert (await backend.store.get(job.id)).state is JobState.RUNNING
    paused.watching_since = time.monotonic() - BOUND - 1
    await paused.run_once()
    assert (await backend.store.get(job.id)).state is JobState.QUEUED


async def test_a_process_reusing_a_name_has_its_predecessors_jobs_recovered_first(
    backend: Backend,
) -> None:
    # A fixed --name, or a container restarted with the same host name and pid: the jobs the
    # dead predecessor left name the newcomer too, whose beats would keep them running.
    me = identity()
    await workers.beat(db(), me)
    job = await running_on(backend.store, me.name)
    assert await workers.take_over(db(), me)  # before the newcomer's first beat
    await watch(backend, trusted=False).run_once()  # recorded stopped: no wait needed
    assert (await backend.store.get(job.id)).state is JobState.QUEUED
    assert not await workers.take_over(db(), me)
    await workers.beat(db(), me)
    assert not await workers.is_gone(db(), me.name, BOUND)
