"""The batch writes of the submit path (submit_many, append_many, the outbox's batch hooks),
run unchanged against SQLite and MariaDB: each must leave exactly what the one-job
operations leave, outcome by outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs.events import Event, EventType
from jobline.jobs.models import DispatchRow, JobEventRow, JobRow
from jobline.jobs.outbox import Outbox, new_claim, task_id_for
from jobline.jobs.projection import project
from jobline.jobs.states import JobState
from jobline.jobs.store import (
    Appended,
    Change,
    DuplicateIdempotencyKey,
    JobStore,
    NewJob,
    utcnow,
)
from tests.integration.backends import BACKENDS, open_backend
from tests.integration.test_store_contract import job_data

pytestmark = pytest.mark.integration

E = EventType
LEASE = 60.0


class Recorder:
    """A CommitListener keeping what it was told: (job id, seq) -> event row id."""

    def __init__(self) -> None:
        self.told: dict[tuple[UUID, int], int] = {}

    def committed(self, event: Event, owner_id: UUID | None, row_id: int) -> None:
        self.told[event.job_id, event.seq] = row_id


@pytest.fixture(scope="module", params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[JobStore]:
    async with open_backend(request, tmp_path_factory, "batch"):
        yield JobStore(listener=Recorder())


def recorder(store: JobStore) -> Recorder:
    assert isinstance(store.listener, Recorder)
    return store.listener


def new_jobs(count: int, owner: UUID | None = None, **extra: Any) -> list[NewJob]:
    owner = owner or uuid.uuid4()
    return [NewJob(uuid.uuid4(), job_data(owner, **extra)) for _ in range(count)]


async def row_ids(job_ids: list[UUID]) -> dict[tuple[UUID, int], int]:
    rows = await JobEventRow.filter(job_id__in=job_ids).values_list("id", "job_id", "seq")
    return {(UUID(str(j)), int(s)): int(i) for i, j, s in rows}


async def test_submit_many_stores_what_submit_stores(store: JobStore) -> None:
    owner = uuid.uuid4()
    batch = new_jobs(5, owner)
    single = await store.submit(job_id=uuid.uuid4(), data=job_data(owner))

    views = await store.submit_many(batch)

    assert [v.id for v in views] == [j.job_id for j in batch]
    for job, view in zip(batch, views, strict=True):
        stored = await store.get(job.job_id)
        assert stored == view
        assert stored.state is JobState.PENDING and stored.last_seq == 1
        # Field for field what the one-job path stores, but for the id and the times.
        assert {
            k: v for k, v in vars_of(stored).items() if k not in ("id", "created_at", "updated_at")
        } == {
            k: v for k, v in vars_of(single).items() if k not in ("id", "created_at", "updated_at")
        }
        events = await store.all_events(job.job_id)
        assert [(e.seq, e.type, e.attempt, e.data) for e in events] == [
            (1, E.SUBMITTED, 1, job.data)
        ]
        assert project(events) == stored
    ids = [j.job_id for j in batch]
    told = {key: rid for key, rid in recorder(store).told.items() if key[0] in ids}
    assert told == await row_ids(ids), "the listener is told each event's own row id"


def vars_of(view: Any) -> dict[str, Any]:
    return {name: getattr(view, name) for name in view.__slots__}


async def test_submit_many_writes_the_outbox_rows_in_its_transaction(store: JobStore) -> None:
    claim = new_claim()
    write, written = Outbox.writer_many(utcnow(), claim, LEASE)
    views = await store.submit_many(new_jobs(3), also=write)

    assert [(d.job_id, d.attempt, d.task_id) for d in written] == [
        (v.id, 1, task_id_for(v.id, 1)) for v in views
    ]
    rows = await DispatchRow.filter(job_id__in=[v.id for v in views])
    assert len(rows) == 3
    assert {r.claim for r in rows} == {claim}
    assert {r.tries for r in rows} == {0}, "left-out fields get the model default"
    assert all(r.available_at > utcnow() for r in rows), "claimed rows wait one lease"
    await DispatchRow.filter(job_id__in=[v.id for v in views]).delete()


async def test_a_repeated_key_fails_the_whole_batch_and_stores_nothing(store: JobStore) -> None:
    owner = uuid.uuid4()
    first = await store.submit(job_id=uuid.uuid4(), data=job_data(owner), idempotency_key="k1")
    batch = [
        NewJob(uuid.uuid4(), job_data(owner), "k2"),
        NewJob(uuid.uuid4(), job_data(owner), "k1"),
        NewJob(uuid.uuid4(), job_data(owner)),
    ]
    write, _ = Outbox.writer_many(utcnow(), None, LEASE)

    with pytest.raises(DuplicateIdempotencyKey):
        await store.submit_many(batch, also=write)

    ids = [j.job_id for j in batch]
    assert await JobRow.filter(id__in=ids).count() == 0
    assert await JobEventRow.filter(job_id__in=ids).count() == 0
    assert await DispatchRow.filter(job_id__in=ids).count() == 0
    assert (await store.find_by_idempotency_key(owner, "k1")) is not None
    assert first.id not in ids


async def test_append_many_gives_each_change_the_outcome_append_gives(store: JobStore) -> None:
    fresh, again, stale, finished = await store.submit_many(new_jobs(4))
    await store.append(again.id, E.QUEUED, {"task_id": "earlier"}, attempt=1)
    await store.append(finished.id, E.CANCELLED, {"reason": "test"}, attempt=1)
    unknown = uuid.uuid4()

    outcomes = await store.append_many(
        [
            Change(fresh.id, E.QUEUED, {"task_id": "t-fresh"}, 1),
            Change(again.id, E.QUEUED, {"task_id": "t-again"}, 1),
            Change(stale.id, E.QUEUED, {"task_id": "t-stale"}, 2),
            Change(finished.id, E.QUEUED, {"task_id": "t-finished"}, 1),
            Change(unknown, E.QUEUED, {"task_id": "t-unknown"}, 1),
        ]
    )

    done, duplicate, refused_stale, refused_final, not_found = outcomes
    assert isinstance(done, Appended) and done.event is not None
    assert done.view.state is JobState.QUEUED and done.view.task_id == "t-fresh"
    assert done.view == await store.get(fresh.id), "the projection row is rewritten"
    assert isinstance(duplicate, Appended) and duplicate.event is None
    assert duplicate.existing is not None and duplicate.existing.data == {"task_id": "earlier"}
    assert isinstance(refused_stale, InvalidTransition)
    assert isinstance(refused_final, InvalidTransition)
    assert isinstance(not_found, JobNotFound)

    for job in (fresh, again, stale, finished):
        events = await store.all_events(job.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert project(events) == await store.get(job.id), "the row is the fold of its events"
    assert [e.type for e in await store.all_events(fresh.id)] == [E.SUBMITTED, E.QUEUED]
    assert [e.type for e in await store.all_events(again.id)] == [E.SUBMITTED, E.QUEUED]
    assert [e.type for e in await store.all_events(stale.id)] == [E.SUBMITTED]
    told = recorder(store).told
    assert told[fresh.id, 2] == (await row_ids([fresh.id]))[fresh.id, 2]


async def test_append_many_rewrites_every_projection_column(store: JobStore) -> None:
    jobs = await store.submit_many(new_jobs(3))
    for job in jobs:
        await store.append(job.id, E.QUEUED, {"task_id": str(job.id)})
        await store.append(job.id, E.STARTED, {"worker": "w@h"})

    outcomes = await store.append_many(
        [
            Change(jobs[0].id, E.SUCCEEDED, {"result": {"out": [1, "two"]}}),
            Change(jobs[1].id, E.FAILED, {"error": {"type": "Boom", "message": "no"}}),
            Change(jobs[2].id, E.PROGRESS, {"progress": 40, "message": "almost"}),
        ]
    )

    assert all(isinstance(o, Appended) and o.event is not None for o in outcomes)
    for job in jobs:
        assert project(await store.all_events(job.id)) == await store.get(job.id)
    assert (await store.get(jobs[0].id)).result == {"out": [1, "two"]}
    assert (await store.get(jobs[1].id)).error == {"type": "Boom", "message": "no"}
    assert (await store.get(jobs[2].id)).message == "almost"


async def test_append_many_takes_one_change_per_job(store: JobStore) -> None:
    (job,) = await store.submit_many(new_jobs(1))
    with pytest.raises(ValueError, match="one change per job"):
        await store.append_many([Change(job.id, E.QUEUED), Change(job.id, E.CANCELLED)])


async def test_remover_many_deletes_the_rows_of_every_change_whatever_its_outcome(
    store: JobStore,
) -> None:
    write, written = Outbox.writer_many(utcnow(), new_claim(), LEASE)
    queued, cancelled = await store.submit_many(new_jobs(2), also=write)
    await store.append(cancelled.id, E.CANCELLED, {"reason": "test"})
    other_write, other = Outbox.writer_many(utcnow(), None, LEASE)
    (bystander,) = await store.submit_many(new_jobs(1), also=other_write)

    outcomes = await store.append_many(
        [Change(d.job_id, E.QUEUED, {"task_id": d.task_id}, d.attempt) for d in written],
        also=Outbox.remover_many(written),
    )

    assert isinstance(outcomes[0], Appended) and isinstance(outcomes[1], InvalidTransition)
    assert await DispatchRow.filter(job_id__in=[queued.id, cancelled.id]).count() == 0
    assert await DispatchRow.filter(job_id=bystander.id).count() == 1, "only the batch's rows"
    await DispatchRow.filter(job_id=bystander.id).delete()
    assert other[0].job_id == bystander.id


async def test_append_many_at_writes_what_append_many_writes(store: JobStore) -> None:
    write, written = Outbox.writer_many(utcnow(), new_claim(), LEASE)
    stored = await store.submit_many(new_jobs(3), also=write)
    other = await store.submit_many(new_jobs(3))

    def queued(views: list[Any]) -> list[Change]:
        return [Change(v.id, E.QUEUED, {"task_id": task_id_for(v.id, 1)}, 1) for v in views]

    done = await store.append_many_at(
        list(zip(queued(stored), stored, strict=True)), also=Outbox.remover_many(written)
    )
    by_lock = await store.append_many(queued(other))

    assert done is not None
    ids = [v.id for v in stored]
    assert await DispatchRow.filter(job_id__in=ids).count() == 0, "the hook ran"
    for view, outcome, locked in zip(stored, done, by_lock, strict=True):
        assert isinstance(locked, Appended) and locked.event is not None
        assert outcome.event is not None and outcome.event.type is E.QUEUED
        events = await store.all_events(view.id)
        assert [e.type for e in events] == [E.SUBMITTED, E.QUEUED]
        assert outcome.view == await store.get(view.id) == project(events)
        # The same transition as the locking path's, field by field but the job's own.
        mine, theirs = vars_of(outcome.view), vars_of(locked.view)
        differ = {n for n in mine if mine[n] != theirs[n]}
        assert differ <= {"id", "task_id", "created_at", "updated_at", "queued_at", "owner_id"}
    told = recorder(store).told
    assert {k: told[k] for k in await row_ids(ids)} == await row_ids(ids)


async def test_append_many_at_writes_nothing_when_any_job_moved(store: JobStore) -> None:
    write, written = Outbox.writer_many(utcnow(), new_claim(), LEASE)
    still, moved = await store.submit_many(new_jobs(2), also=write)
    await store.append(moved.id, E.CANCELLED, {"reason": "test"})
    changes = [Change(v.id, E.QUEUED, {"task_id": "t"}, 1) for v in (still, moved)]

    done = await store.append_many_at(
        list(zip(changes, (still, moved), strict=True)), also=Outbox.remover_many(written)
    )

    assert done is None
    assert [e.type for e in await store.all_events(still.id)] == [E.SUBMITTED]
    assert [e.type for e in await store.all_events(moved.id)] == [E.SUBMITTED, E.CANCELLED]
    assert await store.get(still.id) == still, "the UPDATE of the other job was rolled back"
    assert await DispatchRow.filter(job_id__in=[still.id, moved.id]).count() == 2


async def test_append_many_at_refuses_a_change_its_view_does_not_allow(store: JobStore) -> None:
    (view,) = await store.submit_many(new_jobs(1))
    cancelled = await store.append(view.id, E.CANCELLED, {"reason": "test"})

    done = await store.append_many_at([(Change(view.id, E.QUEUED, {}, 1), cancelled.view)])

    assert done is None
    assert [e.type for e in await store.all_events(view.id)] == [E.SUBMITTED, E.CANCELLED]
