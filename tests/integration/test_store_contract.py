"""The event store's contract, run unchanged against SQLite and MariaDB.

One module-scoped store per backend (Tortoise has one global context per process), opened
with jobline.db.open_db on a database migrated by `jobline migrate`'s code. Each test works
on its own owner id and its own span of time, so tests never see each other's jobs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from tortoise.exceptions import IntegrityError

from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs import sql as sql_module
from jobline.jobs import store as store_module
from jobline.jobs.events import EventType
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState
from jobline.jobs.store import JobQuery, JobStore, Step
from tests.integration.backends import BACKENDS, open_backend

pytestmark = pytest.mark.integration

E = EventType
CONCURRENT_APPENDS = 40


@pytest.fixture(scope="module", params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[JobStore]:
    async with open_backend(request, tmp_path_factory, "store"):
        yield JobStore()


def job_data(owner: uuid.UUID, type: str = "music.transcode", **extra: Any) -> dict[str, Any]:
    return {
        "type": type,
        "queue": type.split(".")[0],
        "payload": {"source": "song.wav"},
        "priority": 0,
        "owner_id": str(owner),
        **extra,
    }


async def new_job(
    store: JobStore,
    owner: uuid.UUID,
    type: str = "music.transcode",
    job_id: uuid.UUID | None = None,
) -> JobView:
    return await store.submit(job_id=job_id or uuid.uuid4(), data=job_data(owner, type))


async def running(store: JobStore, owner: uuid.UUID) -> JobView:
    view = await new_job(store, owner)
    await store.append(view.id, E.QUEUED, {"task_id": str(view.id)})
    return (await store.append(view.id, E.STARTED, {"worker": "w@h"})).view


async def seqs(store: JobStore, job_id: uuid.UUID) -> list[int]:
    return [e.seq for e in await store.all_events(job_id)]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """Pins the store's clock: submit() stamps created_at with clock[0]."""
    now = [datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=uuid.uuid4().int % 10_000)]
    monkeypatch.setattr(store_module, "utcnow", lambda: now[0])
    return now


async def test_submit_stores_the_job_and_its_submitted_event(store: JobStore) -> None:
    owner = uuid.uuid4()
    view = await new_job(store, owner)
    assert view.state is JobState.PENDING
    assert await store.get(view.id) == view
    [event] = await store.all_events(view.id)
    assert (event.seq, event.type, event.attempt) == (1, E.SUBMITTED, 1)
    assert event.data == job_data(owner)


async def test_append_writes_the_event_and_the_projection_together(store: JobStore) -> None:
    view = await new_job(store, uuid.uuid4())
    done = await store.append(view.id, E.QUEUED, {"task_id": "t-1"})
    assert done.event is not None
    assert (done.event.seq, done.event.type, done.event.data) == (2, E.QUEUED, {"task_id": "t-1"})
    stored = await store.get(view.id)
    assert stored == done.view
    assert (stored.state, stored.last_seq, stored.task_id) == (JobState.QUEUED, 2, "t-1")
    assert await store.events(view.id, after_seq=1) == [done.event]


async def test_append_chain_records_several_events_in_one_transaction(store: JobStore) -> None:
    view = await new_job(store, uuid.uuid4())
    await store.append(view.id, E.QUEUED, {})
    began = datetime.now(UTC) - timedelta(seconds=1)
    seen: list[JobState] = []

    async def also(_: Any, locked: JobView) -> None:
        seen.append(locked.state)  # the view before the last step: the job is running

    done = await store.append_chain(
        view.id,
        [Step(E.STARTED, {"worker": "w"}, began), Step(E.SUCCEEDED, {"result": 7})],
        attempt=1,
        also=also,
    )
    assert [d.event.type for d in done if d.event] == [E.STARTED, E.SUCCEEDED]
    assert seen == [JobState.RUNNING]
    stored = await store.get(view.id)
    assert (stored.state, stored.last_seq, stored.result) == (JobState.SUCCEEDED, 4, 7)
    # `started` keeps the time it was given: when the job began, not when it was committed.
    assert stored.started_at is not None and abs(stored.started_at - began) < timedelta(
        milliseconds=1
    )
    assert [e.type for e in await store.events(view.id, after_seq=2)] == [E.STARTED, E.SUCCEEDED]
    # Repeated (a commit whose acknowledgement was lost): both are found, nothing written.
    again = await store.append_chain(
        view.id, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {"result": 7})], attempt=1
    )
    assert [d.event for d in again] == [None, None]
    assert [d.existing.seq for d in again if d.existing] == [3, 4]
    assert await seqs(store, view.id) == [1, 2, 3, 4]


class Committed:
    """A commit listener that keeps what it is told: (event, row id)."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, int]] = []

    def committed(self, event: Any, owner_id: uuid.UUID | None, row_id: int) -> None:
        self.seen.append((event, row_id))


async def test_append_chain_on_an_expected_view_writes_without_reading_first(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = await new_job(store, uuid.uuid4())
    queued = (await store.append(view.id, E.QUEUED, {})).view
    listener = Committed()
    writer = JobStore(listener=listener)
    reads: list[bool] = []
    read_view = sql_module.read_view

    async def counted(conn: Any, job_id: uuid.UUID, *, lock: bool = False) -> JobView | None:
        reads.append(lock)
        return await read_view(conn, job_id, lock=lock)

    monkeypatch.setattr(sql_module, "read_view", counted)
    done = await writer.append_chain(
        view.id,
        [Step(E.STARTED, {}), Step(E.SUCCEEDED, {"result": 1})],
        attempt=1,
        expect=queued,
    )
    monkeypatch.undo()
    assert reads == []  # the conditional UPDATE locked and checked the row
    assert [d.event.seq for d in done if d.event] == [3, 4]
    assert await store.get(view.id) == done[-1].view
    # Each notice names the row its event went to (one INSERT of both rows on MariaDB).
    stored = {e.seq: e for e in await store.all_events(view.id)}
    assert [(e.seq, stored[e.seq].type) for e, _ in listener.seen] == [
        (3, E.STARTED),
        (4, E.SUCCEEDED),
    ]
    ids = [row_id for _, row_id in listener.seen]
    assert ids[1] == ids[0] + 1
    page = await store.events(view.id, after_seq=2)
    assert [e.type for e in page] == [E.STARTED, E.SUCCEEDED]


async def test_append_chain_on_a_stale_view_decides_on_the_row_as_it_is(store: JobStore) -> None:
    pending = await new_job(store, uuid.uuid4())
    # The row moved on after the caller read it: queued by its publisher meanwhile.
    await store.append(pending.id, E.QUEUED, {"task_id": "t"})
    done = await store.append_chain(
        pending.id,
        [Step(E.QUEUED, {"by": "worker"}), Step(E.STARTED, {})],
        attempt=1,
        expect=pending,
    )
    assert done[0].event is None and done[0].existing is not None  # the publisher's queued
    assert done[1].event is not None and done[1].event.seq == 3
    assert [e.type for e in await store.all_events(pending.id)] == [
        E.SUBMITTED,
        E.QUEUED,
        E.STARTED,
    ]
    # Cancelled after it was read: the stale view's chain is refused, nothing written.
    other = await new_job(store, uuid.uuid4())
    read = (await store.append(other.id, E.QUEUED, {})).view
    await store.append(other.id, E.CANCELLED, {})
    with pytest.raises(InvalidTransition):
        await store.append_chain(
            other.id, [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})], attempt=1, expect=read
        )
    assert (await store.get(other.id)).state is JobState.CANCELLED
    assert await seqs(store, other.id) == [1, 2, 3]


async def test_append_chain_is_all_or_nothing(store: JobStore) -> None:
    view = await new_job(store, uuid.uuid4())
    await store.append(view.id, E.QUEUED, {})

    def refuse_the_second(index: int, _: Any) -> None:
        if index == 1:
            raise InvalidTransition("refused by the caller")

    with pytest.raises(InvalidTransition):
        await store.append_chain(
            view.id,
            [Step(E.STARTED, {}), Step(E.SUCCEEDED, {})],
            attempt=1,
            check=refuse_the_second,
        )
    with pytest.raises(InvalidTransition):  # the second step is illegal after the first
        await store.append_chain(view.id, [Step(E.STARTED, {}), Step(E.STARTED, {})], attempt=1)
    assert await seqs(store, view.id) == [1, 2]
    assert (await store.get(view.id)).state is JobState.QUEUED


async def test_a_failing_projection_update_rolls_the_event_back(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = await new_job(store, uuid.uuid4())

    def broken(_: JobView) -> dict[str, Any]:
        raise RuntimeError("projection update failed")

    # The event row is inserted first; the update that follows fails inside the transaction.
    monkeypatch.setattr(sql_module, "row_fields", broken)
    with pytest.raises(RuntimeError):
        await store.append(view.id, E.QUEUED, {})
    monkeypatch.undo()
    assert await seqs(store, view.id) == [1]
    assert await store.get(view.id) == view


async def test_a_failing_event_insert_leaves_no_job(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_: Any) -> None:
        raise RuntimeError("event insert failed")

    monkeypatch.setattr(JobStore, "_insert_events", broken)
    job_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        await store.submit(job_id=job_id, data=job_data(uuid.uuid4()))
    monkeypatch.undo()
    with pytest.raises(JobNotFound):
        await store.get(job_id)


async def test_an_illegal_transition_is_not_recorded(store: JobStore) -> None:
    view = await new_job(store, uuid.uuid4())
    for illegal in (E.STARTED, E.SUCCEEDED, E.PROGRESS, E.WORKER_LOST, E.CANCEL_REQUESTED):
        with pytest.raises(InvalidTransition):
            await store.append(view.id, illegal, {"result": "nope"})
    # A second `submitted` is the same transition delivered twice: ignored, not an error.
    assert (await store.append(view.id, E.SUBMITTED, {})).event is None
    assert await seqs(store, view.id) == [1]
    assert (await store.get(view.id)).last_seq == 1


async def test_an_unknown_job_is_not_found(store: JobStore) -> None:
    with pytest.raises(JobNotFound):
        await store.append(uuid.uuid4(), E.QUEUED, {})
    with pytest.raises(JobNotFound):
        await store.get(uuid.uuid4())


async def test_the_same_transition_twice_in_one_attempt_is_recorded_once(store: JobStore) -> None:
    view = await running(store, uuid.uuid4())
    again = await store.append(view.id, E.STARTED, {"worker": "other@h"})
    assert again.event is None
    assert again.view == view
    # A late `queued` (the API's, after the worker already started) is a duplicate too.
    late = await store.append(view.id, E.QUEUED, {})
    assert late.event is None
    assert await seqs(store, view.id) == [1, 2, 3]
    done = await store.append(view.id, E.SUCCEEDED, {"result": 1})
    assert done.event is not None
    twice = await store.append(view.id, E.SUCCEEDED, {"result": 2})
    assert twice.event is None and twice.view.result == 1
    assert await seqs(store, view.id) == [1, 2, 3, 4]


async def test_progress_is_repeatable(store: JobStore) -> None:
    view = await running(store, uuid.uuid4())
    for pct in (10, 10, 20):
        assert (await store.append(view.id, E.PROGRESS, {"progress": pct})).event is not None
    assert await seqs(store, view.id) == [1, 2, 3, 4, 5, 6]
    assert (await store.get(view.id)).progress == 20


async def test_an_event_for_a_stale_attempt_is_refused(store: JobStore) -> None:
    view = await running(store, uuid.uuid4())
    retrying = await store.append(view.id, E.RETRYING, {"error": {"type": "T", "message": "m"}})
    assert retrying.view.attempt == 2
    for stale in (E.PROGRESS, E.SUCCEEDED, E.FAILED):
        with pytest.raises(InvalidTransition, match="attempt 1"):
            await store.append(view.id, stale, {"progress": 5}, attempt=1)
    assert await seqs(store, view.id) == [1, 2, 3, 4]
    started = await store.append(view.id, E.STARTED, {}, attempt=2)
    assert started.event is not None and started.event.attempt == 2
    assert started.view.state is JobState.RUNNING


async def test_seq_counts_one_to_n_through_a_whole_life(store: JobStore) -> None:
    view = await running(store, uuid.uuid4())
    await store.append(view.id, E.PROGRESS, {"progress": 50})
    await store.append(view.id, E.RETRYING, {"error": {"type": "T", "message": "m"}})
    await store.append(view.id, E.STARTED, {}, attempt=2)
    await store.append(view.id, E.SUCCEEDED, {"result": {"ok": True}}, attempt=2)
    events = await store.all_events(view.id)
    assert [e.seq for e in events] == list(range(1, 8))
    assert [e.type for e in events] == [
        E.SUBMITTED,
        E.QUEUED,
        E.STARTED,
        E.PROGRESS,
        E.RETRYING,
        E.STARTED,
        E.SUCCEEDED,
    ]
    assert [e.attempt for e in events] == [1, 1, 1, 1, 1, 2, 2]
    final = await store.get(view.id)
    assert (final.state, final.last_seq, final.attempt) == (JobState.SUCCEEDED, 7, 2)
    assert await store.events(view.id, after_seq=3, limit=2) == events[3:5]


async def test_concurrent_appends_get_distinct_consecutive_seqs(store: JobStore) -> None:
    view = await running(store, uuid.uuid4())
    results = await asyncio.gather(
        *(store.append(view.id, E.PROGRESS, {"progress": i}) for i in range(CONCURRENT_APPENDS))
    )
    appended = sorted(r.event.seq for r in results if r.event is not None)
    assert appended == list(range(4, 4 + CONCURRENT_APPENDS))
    assert await seqs(store, view.id) == list(range(1, 4 + CONCURRENT_APPENDS))
    assert (await store.get(view.id)).last_seq == 3 + CONCURRENT_APPENDS


async def test_the_database_refuses_a_second_event_with_the_same_seq(store: JobStore) -> None:
    from jobline.jobs.models import JobEventRow

    view = await new_job(store, uuid.uuid4())
    with pytest.raises(IntegrityError):
        await JobEventRow.create(
            job_id=view.id,
            seq=1,
            type=E.QUEUED,
            attempt=1,
            at=datetime.now(UTC),
            data={},
            owner_id=view.owner_id,
        )


async def walk(store: JobStore, query: JobQuery, size: int) -> list[JobView]:
    """Every page of a listing, following the keyset the way the API does."""
    out: list[JobView] = []
    after = None
    while True:
        page = await store.list_jobs(query, after, size)
        out.extend(page)
        if len(page) < size:
            return out
        after = (page[-1].created_at, page[-1].id)


async def test_list_jobs_is_newest_first_and_ties_break_on_id(
    store: JobStore, clock: list[datetime]
) -> None:
    owner = uuid.uuid4()
    start = clock[0]
    made = []
    # Three jobs share one created_at; their ids are given out of order on purpose.
    for offset, id_low in [(0, 5), (1, 9), (1, 2), (1, 7), (2, 1), (3, 3)]:
        clock[0] = start + timedelta(seconds=offset)
        made.append(
            await new_job(store, owner, job_id=uuid.UUID(int=(owner.int >> 8 << 8) + id_low))
        )
    expected = sorted(made, key=lambda v: (v.created_at, v.id), reverse=True)
    assert [v.id.int & 0xFF for v in expected] == [3, 1, 9, 7, 2, 5]
    query = JobQuery(owner_id=owner)
    assert [v.id for v in await store.list_jobs(query, None, 100)] == [v.id for v in expected]
    for size in (1, 2, 4):
        assert [v.id for v in await walk(store, query, size)] == [v.id for v in expected]
    # Starting inside the tie returns only the rest of the tie, then older jobs.
    after = (expected[2].created_at, expected[2].id)
    rest = await store.list_jobs(query, after, 100)
    assert [v.id for v in rest] == [v.id for v in expected[3:]]


async def test_newer_keys_walk_back_up_a_listing_through_a_tie(
    store: JobStore, clock: list[datetime]
) -> None:
    """The dashboard's Previous page: the keys just newer than a page's first job, oldest
    first, in the listing's own (created_at, id) order."""
    owner = uuid.uuid4()
    start = clock[0]
    made = []
    for offset, id_low in [(0, 5), (1, 9), (1, 2), (1, 7), (2, 1)]:
        clock[0] = start + timedelta(seconds=offset)
        made.append(
            await new_job(store, owner, job_id=uuid.UUID(int=(owner.int >> 8 << 8) + id_low))
        )
    oldest_first = sorted(made, key=lambda v: (v.created_at, v.id))
    query = JobQuery(owner_id=owner)
    # From inside the tie: the rest of the tie, then newer jobs, capped at the limit.
    newer = await store.newer_keys(query, (oldest_first[1].created_at, oldest_first[1].id), 2)
    assert newer == [(v.created_at, v.id) for v in oldest_first[2:4]]
    assert all(at.tzinfo is not None for at, _ in newer)
    newest = oldest_first[-1]
    assert await store.newer_keys(query, (newest.created_at, newest.id), 10) == []
    # The listing's filters hold: another owner's newer jobs are not counted.
    clock[0] = start + timedelta(seconds=5)
    await new_job(store, uuid.uuid4())
    assert await store.newer_keys(query, (newest.created_at, newest.id), 10) == []


async def test_list_jobs_filters(store: JobStore, clock: list[datetime]) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    start = clock[0]

    async def at(seconds: int, type: str, who: uuid.UUID = owner) -> JobView:
        clock[0] = start + timedelta(seconds=seconds)
        return await new_job(store, who, type)

    a = await at(0, "music.transcode")
    b = await at(1, "video.thumbnail")
    c = await at(2, "music.fingerprint")
    d = await at(3, "video.thumbnail")
    foreign = await at(4, "music.transcode", other)
    await store.append(b.id, E.QUEUED, {})
    await store.append(c.id, E.QUEUED, {})
    await store.append(c.id, E.STARTED, {})
    await store.append(d.id, E.CANCELLED, {})

    async def ids(**filters: Any) -> list[uuid.UUID]:
        query = JobQuery(owner_id=filters.pop("owner_id", owner), **filters)
        return [v.id for v in await walk(store, query, 2)]

    assert await ids() == [d.id, c.id, b.id, a.id]
    assert await ids(state=JobState.PENDING) == [a.id]
    assert await ids(state=JobState.QUEUED) == [b.id]
    assert await ids(state=JobState.RUNNING) == [c.id]
    assert await ids(state=JobState.CANCELLED) == [d.id]
    assert await ids(state=JobState.SUCCEEDED) == []
    assert await ids(type="video.thumbnail") == [d.id, b.id]
    assert await ids(queue="music") == [c.id, a.id]
    assert await ids(queue="video", state=JobState.QUEUED) == [b.id]
    assert await ids(created_after=start + timedelta(seconds=1)) == [d.id, c.id]
    assert await ids(created_before=start + timedelta(seconds=2)) == [b.id, a.id]
    assert await ids(created_after=start, created_before=start + timedelta(seconds=3)) == [
        c.id,
        b.id,
    ]
    assert await ids(owner_id=other) == [foreign.id]
    # An offset other than UTC, or none (taken as UTC), names the same instant.
    tokyo = timezone(timedelta(hours=9))
    assert await ids(created_after=(start + timedelta(seconds=1)).astimezone(tokyo)) == [d.id, c.id]
    assert await ids(created_before=(start + timedelta(seconds=2)).replace(tzinfo=None)) == [
        b.id,
        a.id,
    ]
    window = {
        "created_after": start - timedelta(seconds=1),
        "created_before": start + timedelta(seconds=5),
    }
    assert await ids(owner_id=None, **window) == [foreign.id, d.id, c.id, b.id, a.id]
    assert await ids(owner_id=None, state=JobState.PENDING, **window) == [foreign.id, a.id]


async def test_idempotency_keys_are_compared_exactly(store: JobStore) -> None:
    """Regression (issue 13.6): MariaDB's default collation matched `ORDER-ABC` to `Order-abc`."""
    owner = uuid.uuid4()
    keys = [
        "Order-abc",
        "ORDER-ABC",
        "Órder-abc",
        "Order-abc ",
        "\uff2frder-abc",
    ]  # the last: a fullwidth O
    views = [
        await store.submit(job_id=uuid.uuid4(), data=job_data(owner), idempotency_key=key)
        for key in keys
    ]
    for key, view in zip(keys, views, strict=True):
        found = await store.find_by_idempotency_key(owner, key)
        assert found is not None and found[0].id == view.id, key
    assert await store.find_by_idempotency_key(owner, "order-abc") is None
    with pytest.raises(store_module.DuplicateIdempotencyKey):
        await store.submit(job_id=uuid.uuid4(), data=job_data(owner), idempotency_key="Order-abc")
