"""The outbox's contract, run unchanged against SQLite and MariaDB: a row commits with its
job, racing claimers never share a row, a claim holds for its lease, a release frees it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from jobline.errors import JobNotFound
from jobline.jobs.events import EventType
from jobline.jobs.models import DispatchRow
from jobline.jobs.outbox import Dispatch, Outbox, new_claim, task_id_for
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState
from jobline.jobs.store import JobStore, utcnow
from tests.integration.backends import BACKENDS, open_backend
from tests.integration.test_store_contract import job_data

pytestmark = pytest.mark.integration

LEASE = 60.0
RACERS = 6


@pytest.fixture(scope="module", params=BACKENDS)
async def outbox(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[JobStore, Outbox]]:
    async with open_backend(request, tmp_path_factory, "outbox"):
        try:
            yield (
                JobStore(),
                Outbox(),
            )
        finally:
            await DispatchRow.all().delete()


async def submit(store: JobStore, claim: str | None = None) -> tuple[JobView, list[Dispatch]]:
    write, written = Outbox.writer(1, utcnow(), claim, LEASE)
    view = await store.submit(job_id=uuid.uuid4(), data=job_data(uuid.uuid4()), also=write)
    return view, written


async def drain(outbox: Outbox) -> None:
    """Leave no free row behind for the next test (rows from other tests are discarded)."""
    while claimed := await outbox.claim(1000, LEASE):
        for d in claimed:
            await outbox.discard(d)


async def test_a_submitted_job_has_its_outbox_row_in_the_same_transaction(
    outbox: tuple[JobStore, Outbox],
) -> None:
    store, box = outbox
    await drain(box)
    view, written = await submit(store)
    assert [(d.job_id, d.attempt, d.task_id) for d in written] == [(view.id, 1, str(view.id))]
    claimed = await box.claim(10, LEASE)
    assert [d.job_id for d in claimed] == [view.id]

    async def broken(conn: object, locked: JobView) -> None:
        raise RuntimeError("the outbox write fails")

    job_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        await store.submit(job_id=job_id, data=job_data(uuid.uuid4()), also=broken)
    with pytest.raises(JobNotFound):  # rolled back with its outbox row: nothing half-stored
        await store.get(job_id)
    await box.discard(claimed[0])


async def test_the_backlog_counts_every_row_and_those_due(
    outbox: tuple[JobStore, Outbox],
) -> None:
    """The operations page: rows, rows due by now, the earliest due time; every type's."""
    store, box = outbox
    await drain(box)
    assert await box.backlog(utcnow()) == (0, 0, None)
    due_at = utcnow() - timedelta(seconds=30)
    later = utcnow() + timedelta(hours=1)
    views = []
    for at in (due_at, later):
        write, _ = Outbox.writer(1, at, None, LEASE)
        views.append(
            await store.submit(job_id=uuid.uuid4(), data=job_data(uuid.uuid4()), also=write)
        )
    total, due, oldest = await Outbox(types=["nobody.knows"]).backlog(utcnow())
    assert (total, due) == (2, 1)
    assert oldest is not None and abs(oldest - due_at) < timedelta(seconds=1)
    await DispatchRow.filter(job_id__in=[v.id for v in views]).delete()


async def test_racing_claimers_never_share_a_row(outbox: tuple[JobStore, Outbox]) -> None:
    store, box = outbox
    await drain(box)
    jobs = [(await submit(store))[0].id for _ in range(60)]
    rounds = await asyncio.gather(*(box.claim(15, LEASE) for _ in range(RACERS)))
    claimed = [d.job_id for batch in rounds for d in batch]
    assert max(Counter(claimed).values()) == 1
    # Claims with the lease running: nobody gets them again; the rest are still free.
    rest = await box.claim(1000, LEASE)
    assert set(claimed).isdisjoint(d.job_id for d in rest)
    assert set(claimed) | {d.job_id for d in rest} == set(jobs)
    assert await box.claim(1000, LEASE) == []
    for d in [d for batch in rounds for d in batch] + rest:
        await box.discard(d)


async def test_a_claim_holds_for_its_lease_and_a_release_frees_the_row(
    outbox: tuple[JobStore, Outbox],
) -> None:
    store, box = outbox
    await drain(box)
    view, written = await submit(store, claim=new_claim())  # the submitter holds it
    assert await box.claim(10, LEASE) == []
    await box.release(written[0], "ConnectionRefusedError()", 0)
    again = await box.claim(10, lease_seconds=0.001)
    assert [d.job_id for d in again] == [view.id] and again[0].tries == 1
    await asyncio.sleep(0.01)
    expired = await box.claim(10, LEASE)  # the short lease ran out: free again
    assert [d.job_id for d in expired] == [view.id]
    # A release by a claimer whose lease was taken over changes nothing.
    await box.release(again[0], "late", 0)
    assert await box.claim(10, LEASE) == []
    await box.discard(expired[0])


async def test_queued_deletes_the_row_and_a_retry_writes_the_next_attempt(
    outbox: tuple[JobStore, Outbox],
) -> None:
    store, box = outbox
    await drain(box)
    view, _ = await submit(store)
    await store.append(view.id, EventType.QUEUED, {"task_id": str(view.id)}, also=Outbox.remover(1))
    assert await box.claim(10, LEASE) == []
    await store.append(view.id, EventType.STARTED)
    await store.append(view.id, EventType.FAILED, {"error": {"type": "X", "message": "x"}})

    write, written = Outbox.writer(
        2,
        utcnow() + timedelta(hours=1),
        None,
        LEASE,
        only_if=lambda locked: locked.state is JobState.FAILED,
    )
    done = await store.append(view.id, EventType.RETRYING, {"by": "request"}, also=write)
    assert done.view.attempt == 2 and written[0].task_id == task_id_for(view.id, 2)
    assert await box.claim(10, LEASE) == []  # not due for an hour
    # The same retry again is a duplicate: its hook sees `retrying`, writes nothing.
    write_again, written_again = Outbox.writer(
        2, utcnow(), None, LEASE, only_if=lambda locked: locked.state is JobState.FAILED
    )
    again = await store.append(
        view.id, EventType.RETRYING, {"by": "request"}, attempt=1, also=write_again
    )
    assert again.event is None and written_again == []
    assert await DispatchRow.filter(job_id=view.id).count() == 1


async def test_a_relay_claims_only_the_types_it_can_publish(
    outbox: tuple[JobStore, Outbox],
) -> None:
    """A relay whose queues.yaml lacks a type leaves its rows to the relays that know it.

    It used to claim them, fail to publish and put them off with its backoff, so the
    relay that could publish them found them unavailable (jobs queued past a minute).
    """
    store, box = outbox
    await drain(box)
    write, _ = Outbox.writer(1, utcnow(), None, LEASE)
    other = await store.submit(
        job_id=uuid.uuid4(), data=job_data(uuid.uuid4(), "elsewhere.only"), also=write
    )
    write, _ = Outbox.writer(1, utcnow(), None, LEASE)
    mine = await store.submit(job_id=uuid.uuid4(), data=job_data(uuid.uuid4()), also=write)
    deferred = uuid.uuid4()
    await Outbox.put_back(deferred, 1, "elsewhere.only", utcnow())

    knows_music = Outbox(box.connection, types={"music.transcode"})
    assert [d.job_id for d in await knows_music.claim(10, LEASE)] == [mine.id]
    knows_other = Outbox(box.connection, types={"elsewhere.only", "music.transcode"})
    assert {d.job_id for d in await knows_other.claim(10, LEASE)} == {other.id, deferred}
    # A flat values_list is a list of values; tortoise annotates every values_list as tuples.
    rows: list[Any] = await DispatchRow.filter(job_id__in=[other.id, deferred]).values_list(
        "type", flat=True
    )
    assert rows == ["elsewhere.only", "elsewhere.only"]
    await DispatchRow.filter(job_id__in=[mine.id, other.id, deferred]).delete()
