"""Reconciliation's database side on SQLite and MariaDB: the round's counts and choice,
one republish per decision, and `started` refusing a stale generation in its transaction.

The broker is a stand-in here (its counts are the test's); tests/integration/
test_reconcile.py runs the whole thing on RabbitMQ.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from jobline.config import Settings
from jobline.errors import InvalidTransition
from jobline.jobs.events import EventType
from jobline.jobs.models import DispatchRow
from jobline.jobs.outbox import Outbox
from jobline.jobs.projection import JobView, project
from jobline.jobs.spec import DomainSpec, Queues, load_queues
from jobline.jobs.states import JobState
from jobline.jobs.store import JobStore, Step, utcnow
from jobline.queueing.delivery import StaleMessage, generation_guard, started_data
from jobline.queueing.late_start import LateStart
from jobline.queueing.reconcile import BrokerCount, Candidate, Reconciler
from tests.integration.backends import BACKENDS, open_backend

pytestmark = pytest.mark.integration

E = EventType
GRACE = 0.05


@pytest.fixture(scope="module", params=BACKENDS)
async def settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    async with open_backend(request, tmp_path_factory, "reconcile") as opened:
        yield opened.model_copy(update={"reconcile_grace_seconds": GRACE})


class Broker:
    """What the broker says of each queue: set by the test."""

    def __init__(self) -> None:
        self.counts: dict[str, BrokerCount] = {}

    async def count(self, domains: Sequence[DomainSpec]) -> dict[str, BrokerCount]:
        return {d.queue: self.counts.get(d.queue, BrokerCount(0, 0)) for d in domains}


def one_domain(tmp_path: Path, concurrency: int = 2) -> tuple[Queues, str]:
    """A queues.yaml of one domain on a queue no other test uses."""
    queue = f"lost{uuid.uuid4().hex[:8]}"
    path = tmp_path / "queues.yaml"
    path.write_text(
        f"domains:\n  lost:\n    queue: {queue}\n    concurrency: {concurrency}\n"
        "    job_types:\n      steady: {task_name: lost.steady}\n"
    )
    return load_queues(path, check_imports=False), queue


async def queued_jobs(store: JobStore, queue: str, n: int) -> list[JobView]:
    views = []
    for _ in range(n):
        job_id = uuid.uuid4()
        data = {"type": "lost.steady", "queue": queue, "payload": {}, "owner_id": str(uuid.uuid4())}
        await store.submit(job_id=job_id, data=data)
        views.append((await store.append(job_id, E.QUEUED, {"task_id": str(job_id)})).view)
    return views


def reconciler(store: JobStore, queues: Queues, settings: Settings, broker: Broker) -> Reconciler:
    return Reconciler(store, queues, settings, broker)  # type: ignore[arg-type]


async def assert_replays(store: JobStore, job_id: uuid.UUID) -> None:
    """The projection is what its events say (what `replay --verify` checks)."""
    assert project(await store.all_events(job_id)) == await store.get(job_id)


async def test_the_oldest_surplus_over_what_the_broker_holds_is_published_again(
    settings: Settings, tmp_path: Path
) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path, concurrency=2)
    views = await queued_jobs(store, queue, 10)
    await asyncio.sleep(GRACE * 2)
    # 3 ready and one consumer that may hold 2 unacked (concurrency 2 x prefetch 1): 5 held.
    broker.counts[queue] = BrokerCount(ready=3, consumers=1)
    done = await reconciler(store, queues, settings, broker).run_once()
    (part,) = done.domains
    assert (part.held, part.queued, part.republished) == (5, 10, 5)
    assert [c.job_id for c in part.chosen] == [v.id for v in views[:5]]
    for view in views[:5]:
        job = await store.get(view.id)
        assert (job.state, job.generation, job.attempt) == (JobState.QUEUED, 2, 1)
        (last,) = (await store.all_events(view.id))[-1:]
        assert last.type is E.REQUEUED and last.data["generation"] == 2
        assert "lost by the broker" in last.data["reason"]
        assert await DispatchRow.filter(job_id=view.id, attempt=1).exists()
        await assert_replays(store, view.id)
    for view in views[5:]:
        assert (await store.get(view.id)).generation == 1
    # The next round: those just published again are within the grace period, the others
    # are held: nothing more.
    again = await reconciler(store, queues, settings, broker).run_once()
    assert again.republished == 0


async def test_a_relay_publishes_a_job_once_two_rounds_found_it_lost_unmoved(
    settings: Settings, tmp_path: Path
) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    views = await queued_jobs(store, queue, 3)
    await asyncio.sleep(GRACE * 2)
    ours = reconciler(store, queues, settings, broker)
    first = await ours.run_once(confirm=True)
    assert (first.republished, first.domains[0].waiting) == (0, 3)
    # Meanwhile a worker started one: its message was not lost after all.
    await store.append(views[0].id, E.STARTED, {"worker": "w@h"})
    second = await ours.run_once(confirm=True)
    assert (second.republished, second.domains[0].waiting) == (2, 0)
    assert [(await store.get(v.id)).generation for v in views] == [1, 2, 2]


async def test_a_backlog_the_broker_holds_is_no_loss(settings: Settings, tmp_path: Path) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    await queued_jobs(store, queue, 6)
    await asyncio.sleep(GRACE * 2)
    broker.counts[queue] = BrokerCount(ready=6, consumers=0)
    assert (await reconciler(store, queues, settings, broker).run_once()).republished == 0
    # The management API's sample counts what workers hold unacked.
    broker.counts[queue] = BrokerCount(ready=0, consumers=3, sampled_ready=2, sampled_unacked=4)
    assert (await reconciler(store, queues, settings, broker).run_once()).republished == 0


async def test_a_dry_run_counts_and_changes_nothing(settings: Settings, tmp_path: Path) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    views = await queued_jobs(store, queue, 3)
    await asyncio.sleep(GRACE * 2)
    done = await reconciler(store, queues, settings, broker).run_once(dry_run=True)
    assert [len(d.chosen) for d in done.domains] == [3] and done.republished == 0
    for view in views:
        assert (await store.get(view.id)).generation == 1


async def test_a_deferred_job_waiting_in_the_outbox_is_not_lost(
    settings: Settings, tmp_path: Path
) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    (view,) = await queued_jobs(store, queue, 1)
    await Outbox.put_back(
        view.id, view.attempt, view.type, utcnow()
    )  # what a fair-share deferral does
    await asyncio.sleep(GRACE * 2)
    assert (await reconciler(store, queues, settings, broker).run_once()).republished == 0


async def test_two_reconcilers_deciding_on_one_job_publish_it_once(
    settings: Settings, tmp_path: Path
) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    (view,) = await queued_jobs(store, queue, 1)
    candidate = Candidate(view.id, view.attempt, view.generation, view.updated_at)
    ours = reconciler(store, queues, settings, broker)
    outcomes = await asyncio.gather(*(ours.requeue(candidate, "test") for _ in range(5)))
    assert sorted(outcomes) == [False] * 4 + [True]
    events = await store.all_events(view.id)
    assert [e.type for e in events].count(E.REQUEUED) == 1
    assert await DispatchRow.filter(job_id=view.id).count() == 1


async def test_a_job_that_started_meanwhile_is_not_published_again(
    settings: Settings, tmp_path: Path
) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    (view,) = await queued_jobs(store, queue, 1)
    candidate = Candidate(view.id, view.attempt, view.generation, view.updated_at)
    await store.append(view.id, E.STARTED, {"worker": "w@h"})
    assert not await reconciler(store, queues, settings, broker).requeue(candidate, "test")
    assert (await store.get(view.id)).generation == 1
    assert not await DispatchRow.filter(job_id=view.id).exists()


def late_start(view: JobView, generation: int) -> LateStart:
    """The late start of a delivery of `view`'s job as a message of `generation` (its
    runtime is not needed to write `started`: the test writes it)."""
    data = started_data("w@h", uuid.uuid4().hex, generation)
    return LateStart(cast(Any, None), view, data, 0.05, generation=generation)


async def test_started_refuses_a_stale_generation_in_its_transaction(
    settings: Settings, tmp_path: Path
) -> None:
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    (view,) = await queued_jobs(store, queue, 1)
    candidate = Candidate(view.id, view.attempt, view.generation, view.updated_at)
    assert await reconciler(store, queues, settings, broker).requeue(candidate, "test")
    # The full path: the guard sees the locked row.
    with pytest.raises(StaleMessage):
        await store.append(view.id, E.STARTED, {"worker": "w@h"}, also=generation_guard(1))
    # The late start, on the view read before the republish: the compare-and-set on
    # last_seq fails, and the locked path's check refuses it.
    old = late_start(view, 1)
    with pytest.raises(StaleMessage):
        await store.append_chain(
            view.id, old._start_steps(), attempt=1, check=old._check_started, expect=view
        )
    assert (await store.get(view.id)).state is JobState.QUEUED
    assert [e.type for e in await store.all_events(view.id)][-1] is E.REQUEUED


async def test_the_double_run_window_a_late_start_taken_over_by_a_republish(
    settings: Settings, tmp_path: Path
) -> None:
    """The one way a job runs twice: a worker took the old message and runs the body in
    the late start's window (nothing written yet) when the reconciler publishes it again.
    The old run's `started` and outcome are refused, so its body's effects are the ones
    that happen twice; the history records one run, the new generation's."""
    store, broker = JobStore(), Broker()
    queues, queue = one_domain(tmp_path)
    (view,) = await queued_jobs(store, queue, 1)
    old = late_start(view, 1)  # the old message's delivery read the job: the body runs
    candidate = Candidate(view.id, view.attempt, view.generation, view.updated_at)
    assert await reconciler(store, queues, settings, broker).requeue(candidate, "test")
    fresh = await store.get(view.id)
    new = late_start(fresh, 2)  # the new generation's delivery
    await store.append_chain(
        view.id,
        [*new._start_steps(), Step(E.SUCCEEDED, {"result": {"run": "new"}})],
        attempt=1,
        check=new._check_started,
        expect=fresh,
    )
    with pytest.raises(InvalidTransition):  # the old run ends: its outcome is refused
        await store.append_chain(
            view.id,
            [*old._start_steps(), Step(E.SUCCEEDED, {"result": {"run": "old"}})],
            attempt=1,
            check=old._check_started,
            expect=view,
        )
    events = await store.all_events(view.id)
    assert [e.type for e in events] == [E.SUBMITTED, E.QUEUED, E.REQUEUED, E.STARTED, E.SUCCEEDED]
    assert events[-1].data == {"result": {"run": "new"}}
    assert events[3].data["generation"] == 2
    await assert_replays(store, view.id)
