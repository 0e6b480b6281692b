"""The shared feed and the followers on an in-memory event table: ids that commit out of
order, gaps that never fill, followers that fall behind."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import pytest

from jobline.jobs.events import Event, EventType
from jobline.streaming.feed import EventFeed, FeedOptions
from jobline.streaming.follow import StartAt, follow_job, follow_user
from jobline.streaming.reader import EventReader, FeedEvent
from tests.support import stopped_within

T = TypeVar("T")
GAP_SECONDS = 5.0


class TableReader(EventReader):
    """`job_events` in memory: rows get their id when inserted, are seen once committed."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, FeedEvent] = {}
        self.committed: set[int] = set()
        self.next_id = 1
        self.seqs: dict[UUID, int] = {}
        self.id_reads = 0  # reads of ids only (each also counted in `queries`)

    def insert(self, job_id: UUID, owner_id: UUID, type: EventType = EventType.PROGRESS) -> int:
        seq = self.seqs[job_id] = self.seqs.get(job_id, 0) + 1
        row_id, self.next_id = self.next_id, self.next_id + 1
        event = Event(job_id, seq, type, 1, datetime.now(UTC), {"n": row_id})
        self.rows[row_id] = FeedEvent(row_id, owner_id, event)
        return row_id

    def commit(self, *row_ids: int) -> None:
        self.committed.update(row_ids)

    def append(self, job_id: UUID, owner_id: UUID, type: EventType = EventType.PROGRESS) -> int:
        row_id = self.insert(job_id, owner_id, type)
        self.commit(row_id)
        return row_id

    def _visible(self) -> list[FeedEvent]:
        return [self.rows[i] for i in sorted(self.committed)]

    async def max_id(self) -> int:
        self.queries += 1
        return max(self.committed, default=0)

    async def newer(self, after_id: int, also: Collection[int], limit: int) -> list[FeedEvent]:
        self.queries += 1
        found = [r for r in self._visible() if r.id > after_id or r.id in also]
        return found[: limit + len(also)]

    async def newer_ids(self, after_id: int, also: Collection[int], limit: int) -> list[int]:
        self.id_reads += 1
        return [r.id for r in await self.newer(after_id, also, limit)]

    async def of_job(self, job_id: UUID, after_seq: int, limit: int) -> list[FeedEvent]:
        self.queries += 1
        rows = [r for r in self._visible() if r.job_id == job_id and r.seq > after_seq]
        return sorted(rows, key=lambda r: r.seq)[:limit]

    async def of_owner(
        self, owner_id: UUID | None, after_id: int, up_to_id: int, limit: int
    ) -> list[FeedEvent]:
        self.queries += 1
        return [
            r
            for r in self._visible()
            if after_id < r.id <= up_to_id and owner_id in (None, r.owner_id)
        ][:limit]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> TableReader:
    return TableReader()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_feed(table: TableReader, clock: Clock, buffer_events: int = 100) -> EventFeed:
    options = FeedOptions(
        poll_seconds=60,
        idle_poll_seconds=60,
        min_read_interval=0,
        batch=10,
        gap_seconds=GAP_SECONDS,
        buffer_events=buffer_events,
    )
    return EventFeed(table, options, clock=clock)


async def started(feed: EventFeed) -> EventFeed:
    """A feed positioned after the table's newest row; reads are driven by the test."""
    feed._high = feed._watermark = await feed.reader.max_id()
    return feed


async def drain(stream: AsyncIterator[T], count: int) -> list[T]:
    out: list[T] = []
    async with asyncio.timeout(5):
        async for item in stream:
            out.append(item)
            if len(out) == count:
                break
    return out


async def test_a_late_committing_id_reaches_job_followers_and_holds_back_user_followers(
    table: TableReader, clock: Clock
) -> None:
    owner, job_a, job_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    feed = await started(make_feed(table, clock))
    sub_a = feed.subscribe_job(job_a)
    sub_b = feed.subscribe_job(job_b)
    user, watermark = feed.subscribe_user(owner)
    assert watermark == 0
    slow = table.insert(job_a, owner)  # id 1, committed later
    fast = table.append(job_b, owner)  # id 2
    await feed.read_once()
    assert [e.id for e in await sub_b.next_batch()] == [fast]
    assert feed.stats().watermark == 0, "id 1 may still commit: user streams wait"
    assert feed.stats().pending_gaps == 1
    table.commit(slow)
    await feed.read_once()
    assert [e.id for e in await sub_a.next_batch()] == [slow]
    assert [e.id for e in await user.next_batch()] == [slow, fast], "id order, nothing skipped"
    assert feed.stats().watermark == fast and feed.stats().pending_gaps == 0


async def test_while_nobody_follows_the_feed_reads_ids_only_and_keeps_its_watermark(
    table: TableReader, clock: Clock
) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    feed = await started(make_feed(table, clock))
    ids = [table.append(job, owner) for _ in range(3)]
    await feed.read_once()
    assert table.id_reads == 1
    assert feed.stats().watermark == ids[-1] and feed.stats().high_id == ids[-1]
    sub = feed.subscribe_job(job)
    new = table.append(job, owner)
    await feed.read_once()
    assert table.id_reads == 1, "a follower gets events read in full"
    assert [e.id for e in await sub.next_batch()] == [new]


async def test_a_user_follower_after_an_idle_read_with_a_gap_misses_nothing(
    table: TableReader, clock: Clock
) -> None:
    owner, job_a, job_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    feed = await started(make_feed(table, clock))
    slow = table.insert(job_a, owner)  # id 1, committed later
    fast = table.append(job_b, owner)  # id 2
    await feed.read_once()  # nobody follows: ids only; id 1 is a gap, id 2 held by no one
    assert feed.stats().watermark == 0 and feed.stats().high_id == fast
    user, watermark = feed.subscribe_user(owner)
    assert watermark == 0
    table.commit(slow)
    await feed.read_once()
    async with asyncio.timeout(5):  # a feed that skipped them would leave it waiting
        batch = await user.next_batch()
    assert [e.id for e in batch] == [slow, fast], "id order, nothing skipped"


async def test_a_gap_that_never_fills_stops_holding_back_after_gap_seconds(
    table: TableReader, clock: Clock
) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    feed = await started(make_feed(table, clock))
    user, _ = feed.subscribe_user(None)
    table.insert(job, owner)  # rolled back: never visible
    after = table.append(job, owner)
    await feed.read_once()
    assert feed.stats().watermark == 0
    clock.now += GAP_SECONDS
    await feed.read_once()
    assert [e.id for e in await user.next_batch()] == [after]
    assert feed.stats().pending_gaps == 0


async def test_one_read_serves_every_follower(table: TableReader, clock: Clock) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    feed = await started(make_feed(table, clock))
    subs = [feed.subscribe_job(job) for _ in range(50)]
    table.append(job, owner)
    before = table.queries
    await feed.read_once()
    assert table.queries - before == 1
    for sub in subs:
        assert len(await sub.next_batch()) == 1
        sub.close()
    assert feed.subscriber_count == 0


async def test_a_job_follower_replays_then_follows_live_without_duplicates(
    table: TableReader, clock: Clock
) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    for _ in range(3):
        table.append(job, owner)
    feed = await started(make_feed(table, clock))
    stream = follow_job(feed, job, after_seq=1)
    first = await drain(stream, 2)  # replayed: seq 2, 3
    # Committed after the subscription: in the next read, and already in the database.
    table.append(job, owner)
    table.append(job, owner, EventType.SUCCEEDED)
    await feed.read_once()
    rest = [e async for e in stream]
    assert [e.seq for e in first + rest] == [2, 3, 4, 5]
    assert rest[-1].event.type is EventType.SUCCEEDED
    assert feed.subscriber_count == 0, "the stream ended and unsubscribed"


async def test_a_follower_that_falls_behind_reads_the_database(
    table: TableReader, clock: Clock
) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    table.append(job, owner, EventType.SUBMITTED)
    feed = await started(make_feed(table, clock, buffer_events=2))
    stream = follow_job(feed, job)
    assert [e.seq for e in await drain(stream, 1)] == [1]
    for _ in range(6):
        table.append(job, owner)
    table.append(job, owner, EventType.FAILED)
    await feed.read_once()  # 7 events for a buffer of 2: the rest is dropped
    rest = [e.seq async for e in stream]
    assert rest == [2, 3, 4, 5, 6, 7, 8]


async def test_a_job_follower_fills_a_hole_from_the_database(
    table: TableReader, clock: Clock
) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    table.append(job, owner, EventType.SUBMITTED)
    feed = await started(make_feed(table, clock))
    stream = follow_job(feed, job)
    await drain(stream, 1)
    hidden = table.insert(job, owner)  # seq 2 commits so late the feed gives up on it
    table.append(job, owner, EventType.SUCCEEDED)
    await feed.read_once()
    clock.now += GAP_SECONDS
    await feed.read_once()
    table.commit(hidden)
    sub = next(iter(feed._jobs[job]))
    assert sub.has_after(1)
    rest = [e.seq async for e in stream]
    assert rest == [2, 3]


async def test_a_user_follower_replays_up_to_the_watermark_then_follows_live(
    table: TableReader, clock: Clock
) -> None:
    owner, other, job, foreign = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    early = [table.append(job, owner), table.append(foreign, other), table.append(job, owner)]
    feed = await started(make_feed(table, clock))
    stream = follow_user(feed, owner, after_id=early[0])
    replayed = await drain(stream, 1)
    late = [table.append(foreign, other), table.append(job, owner)]
    await feed.read_once()
    live = await drain(stream, 1)
    ids = [e.id for e in replayed + live if isinstance(e, FeedEvent)]
    assert ids == [early[2], late[1]]
    await stream.aclose()  # type: ignore[attr-defined]
    assert feed.subscriber_count == 0


async def test_a_user_follower_without_a_last_id_starts_live_and_says_where(
    table: TableReader, clock: Clock
) -> None:
    owner, job = uuid.uuid4(), uuid.uuid4()
    table.append(job, owner)
    feed = await started(make_feed(table, clock))
    stream = follow_user(feed, None)
    first: Any = (await drain(stream, 1))[0]
    assert first == StartAt(1)
    new = table.append(job, owner)
    await feed.read_once()
    assert [e.id for e in await drain(stream, 1)] == [new]  # type: ignore[union-attr]
    await stream.aclose()  # type: ignore[attr-defined]


async def test_stop_ends_the_feed_when_a_wake_arrives_with_the_cancel(
    table: TableReader, clock: Clock
) -> None:
    # A notice waking the feed in the loop iteration of its cancel: with asyncio.wait_for
    # (Python 3.11) the cancel was lost, the feed waited again, and the API's shutdown hung.
    feed = make_feed(table, clock)
    await feed.start()
    await asyncio.sleep(0.01)
    feed.wake()
    await stopped_within(feed.stop(), 5)
    assert feed._task is None
