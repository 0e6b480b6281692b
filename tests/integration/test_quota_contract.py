"""The active-jobs cap (jobs/quotas.py) in the store's submit transactions, run unchanged
against SQLite and MariaDB: concurrent admissions never pass the cap, and finished jobs
free their places once counted again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from jobline.jobs.events import EventType
from jobline.jobs.models import ActiveJobsBound, JobRow
from jobline.jobs.quotas import ActiveJobsCap
from jobline.jobs.store import JobStore, NewJob, NotAdmitted
from tests.integration.backends import BACKENDS, open_backend
from tests.integration.test_store_contract import job_data

pytestmark = pytest.mark.integration

CAP = 7


@pytest.fixture(scope="module", params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[JobStore]:
    async with open_backend(request, tmp_path_factory, "quota"):
        yield JobStore()


async def submit(store: JobStore, owner: uuid.UUID, cap: ActiveJobsCap) -> bool:
    try:
        await store.submit(job_id=uuid.uuid4(), data=job_data(owner), admit=cap.admit)
    except NotAdmitted:
        return False
    return True


async def test_concurrent_submits_never_pass_the_cap(store: JobStore) -> None:
    owner, cap = uuid.uuid4(), ActiveJobsCap(CAP, recheck_seconds=60.0)
    admitted = await asyncio.gather(*(submit(store, owner, cap) for _ in range(5 * CAP)))
    assert admitted.count(True) == CAP
    assert await JobRow.filter(owner_id=owner).count() == CAP
    assert (await ActiveJobsBound.get(owner_id=owner)).bound == CAP


async def test_a_batch_stores_each_owners_earliest_jobs_up_to_the_cap(store: JobStore) -> None:
    full, empty = uuid.uuid4(), uuid.uuid4()
    cap = ActiveJobsCap(CAP, recheck_seconds=60.0)
    for _ in range(CAP - 2):
        assert await submit(store, full, cap)
    jobs = [NewJob(uuid.uuid4(), job_data(owner)) for owner in [full, empty] * 4]
    stored = await store.submit_many(jobs, admit=cap.admit)
    wanted_full = [j.job_id for j in jobs if j.data["owner_id"] == str(full)][:2]
    wanted_empty = [j.job_id for j in jobs if j.data["owner_id"] == str(empty)]
    assert {v.id for v in stored} == {*wanted_full, *wanted_empty}
    assert await JobRow.filter(owner_id=full).count() == CAP
    # All refused: nothing stored, nothing fails.
    assert await store.submit_many([NewJob(uuid.uuid4(), job_data(full))], admit=cap.admit) == []


async def test_finished_jobs_free_their_places_once_counted_again(store: JobStore) -> None:
    owner = uuid.uuid4()
    # Recounted at the cap: the bound alone would refuse.
    cap = ActiveJobsCap(CAP, recheck_seconds=3600.0)
    ids = []
    for _ in range(CAP):
        job_id = uuid.uuid4()
        await store.submit(job_id=job_id, data=job_data(owner), admit=cap.admit)
        ids.append(job_id)
    assert not await submit(store, owner, cap)
    for job_id in ids[:3]:
        await store.append(job_id, EventType.CANCELLED, {"reason": "test"})
    admitted = [await submit(store, owner, cap) for _ in range(4)]
    assert admitted == [True, True, True, False]
    assert await JobRow.filter(owner_id=owner).exclude(state="cancelled").count() == CAP


async def test_a_stale_bound_is_counted_again_though_it_shows_room(store: JobStore) -> None:
    owner = uuid.uuid4()
    cap = ActiveJobsCap(CAP, recheck_seconds=60.0)
    ids = [uuid.uuid4() for _ in range(3)]
    for job_id in ids:
        await store.submit(job_id=job_id, data=job_data(owner), admit=cap.admit)
    for job_id in ids:
        await store.append(job_id, EventType.CANCELLED, {"reason": "test"})
    # Fresh, the bound (3) only grows: the fourth job makes it 4.
    assert await submit(store, owner, cap)
    assert (await ActiveJobsBound.get(owner_id=owner)).bound == 4
    # Counted more than recheck_seconds ago: the jobs are counted again (1 unfinished).
    old = datetime.now(UTC) - timedelta(seconds=61)
    await ActiveJobsBound.filter(owner_id=owner).update(counted_at=old)
    assert await submit(store, owner, cap)
    row = await ActiveJobsBound.get(owner_id=owner)
    assert row.bound == 2
    assert row.counted_at > old + timedelta(seconds=30)
