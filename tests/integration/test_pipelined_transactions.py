"""jobs/pipeline.py on MariaDB: the batch paths' transactions in two requests each, the same
outcome as statement by statement, and a failure that leaves the pool's connections sound.

(SQLite runs each statement at once: the contract tests in test_batch_contract.py and
test_quota_contract.py run the same paths on both databases.)
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiomysql
import pytest
from pymysql.constants import COMMAND
from tortoise import connections

from jobline.dialects import refused_data
from jobline.jobs.events import EventType
from jobline.jobs.models import ActiveJobsBound, DispatchRow, JobEventRow, JobRow
from jobline.jobs.outbox import Outbox, new_claim, task_id_for
from jobline.jobs.pipeline import Pipelined, transaction
from jobline.jobs.quotas import ActiveJobsCap
from jobline.jobs.store import Change, DuplicateIdempotencyKey, JobStore, NewJob, utcnow
from tests.integration.backends import open_backend
from tests.integration.test_store_contract import job_data

pytestmark = pytest.mark.integration

LEASE = 60.0


@pytest.fixture(scope="module", params=["mariadb"])
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[JobStore]:
    async with open_backend(request, tmp_path_factory, "pipelined"):
        yield JobStore()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The text of every query request aiomysql sends (one per round trip)."""
    texts: list[str] = []
    original = aiomysql.Connection._execute_command

    async def counting(self: Any, command: int, sql: Any) -> Any:
        if command == COMMAND.COM_QUERY:
            texts.append(sql.decode() if isinstance(sql, bytes) else str(sql))
        return await original(self, command, sql)

    monkeypatch.setattr(aiomysql.Connection, "_execute_command", counting)
    yield texts


def jobs(count: int, owner: uuid.UUID, **extra: Any) -> list[NewJob]:
    return [NewJob(uuid.uuid4(), job_data(owner, **extra)) for _ in range(count)]


async def test_a_batch_is_stored_in_two_requests(store: JobStore, sent: list[str]) -> None:
    owner, cap = uuid.uuid4(), ActiveJobsCap(100, recheck_seconds=60.0)
    await store.submit_many(jobs(1, owner), admit=cap.admit)  # counts the owner's jobs once
    write, written = Outbox.writer_many(utcnow(), new_claim(), LEASE)
    sent.clear()

    views = await store.submit_many(jobs(5, owner), also=write, admit=cap.admit)

    assert len(views) == 5 and len(written) == 5
    # START TRANSACTION with the cap's UPDATE, whose count decides; then the jobs, their
    # events and their outbox rows with the COMMIT.
    assert len(sent) == 2, sent
    assert sent[0].startswith("START TRANSACTION;UPDATE `active_jobs_bounds`")
    assert sent[1].count("INSERT INTO") == 3 and sent[1].endswith(";COMMIT")
    ids = [v.id for v in views]
    assert await JobRow.filter(id__in=ids).count() == 5
    assert await JobEventRow.filter(job_id__in=ids).count() == 5
    assert await DispatchRow.filter(job_id__in=ids).count() == 5
    assert (await ActiveJobsBound.get(owner_id=owner)).bound == 6


async def test_queued_events_are_recorded_in_two_requests(store: JobStore, sent: list[str]) -> None:
    write, written = Outbox.writer_many(utcnow(), new_claim(), LEASE)
    views = await store.submit_many(jobs(4, uuid.uuid4()), also=write)
    changes = [Change(v.id, EventType.QUEUED, {"task_id": task_id_for(v.id, 1)}, 1) for v in views]
    sent.clear()

    done = await store.append_many_at(
        list(zip(changes, views, strict=True)), also=Outbox.remover_many(written)
    )

    assert done is not None and len(done) == 4
    assert len(sent) == 2, sent
    assert sent[0].startswith("START TRANSACTION;UPDATE `jobs`")
    assert sent[1].startswith("DELETE FROM `job_dispatch`") and sent[1].endswith(";COMMIT")
    ids = [v.id for v in views]
    assert await DispatchRow.filter(job_id__in=ids).count() == 0
    assert await JobEventRow.filter(job_id__in=ids, type="queued").count() == 4


async def test_a_failing_statement_rolls_everything_back(store: JobStore, sent: list[str]) -> None:
    owner = uuid.uuid4()
    (first,) = await store.submit_many([NewJob(uuid.uuid4(), job_data(owner), "key-1")])
    again = [NewJob(uuid.uuid4(), job_data(owner)), NewJob(uuid.uuid4(), job_data(owner), "key-1")]
    write, _ = Outbox.writer_many(utcnow(), None, LEASE)
    sent.clear()

    with pytest.raises(DuplicateIdempotencyKey):
        await store.submit_many(again, also=write)

    # The jobs' INSERT failed, so MariaDB ran nothing after it (the COMMIT included); the
    # transaction was rolled back on its own request.
    assert sent[-1] == "ROLLBACK", sent
    ids = [j.job_id for j in again]
    assert await JobRow.filter(id__in=ids).count() == 0
    assert await JobEventRow.filter(job_id__in=ids).count() == 0
    assert await DispatchRow.filter(job_id__in=ids).count() == 0
    assert await JobRow.filter(id=first.id).count() == 1
    # The pool's connections are sound: every one of them stores a batch.
    size = connections.get("default")._pool.maxsize  # type: ignore[attr-defined]
    for _ in range(size + 1):
        assert len(await store.submit_many(jobs(2, owner))) == 2


async def test_a_value_the_database_refuses_is_still_told_apart(store: JobStore) -> None:
    # jobs/batching.py splits a batch whose data the database refuses (refused_data).
    # MariaDB refuses NaN in a JSON column (the API refuses it at parse; not the store).
    owner = uuid.uuid4()
    good, bad = NewJob(uuid.uuid4(), job_data(owner)), NewJob(uuid.uuid4(), job_data(owner))
    bad.data["payload"] = {"at": [float("nan")]}

    with pytest.raises(Exception) as caught:
        await store.submit_many([good, bad])

    assert refused_data(caught.value), repr(caught.value)
    assert await JobRow.filter(id__in=[good.job_id, bad.job_id]).count() == 0


async def test_a_block_that_raises_before_sending_sends_nothing(
    store: JobStore, sent: list[str]
) -> None:
    sent.clear()

    with pytest.raises(RuntimeError):
        async with transaction(store.connection) as tx:
            assert isinstance(tx, Pipelined)
            tx.defer("DELETE FROM `jobs` WHERE 1=0")
            raise RuntimeError("before any request")

    assert sent == []
