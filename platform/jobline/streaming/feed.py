"""One shared event feed per API process: new events are read once and fanned out in memory.

The feed reads `job_events` by row id when something wakes it (a notification from the
broker, a new follower) and on a slow safety-net timer, so its database work depends on
the rate of events, never on the number of followers. The database stays the truth: a
lost notification only delays an event until the next read.

Row ids are allocated at insert but become visible at commit, so they can appear out of
order: id 101 may be read while 100 is still uncommitted. The feed remembers such gaps
and asks for those ids again on every read until they show up, or until
`gap_seconds` have passed (a rolled-back insert leaves a hole forever).

- A job follower gets each event as soon as it is read. Its events arrive in seq order
  (appends of one job are serialized by the job row's lock); a follower still checks
  seq continuity and fills any hole from the database.
- A per-user follower gets events in id order, and only up to the *watermark*: the
  highest id below which every id was read or given up on. A client resuming after id
  N therefore never misses an event with an id below N that committed late.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from types import TracebackType
from uuid import UUID

from jobline.streaming.reader import EventReader, FeedEvent
from jobline.waiting import wait_event

log = logging.getLogger("jobline.streaming")


@dataclass(frozen=True)
class FeedOptions:
    """How the feed reads: see the `feed_*` settings."""

    poll_seconds: float  # read at least this often while anybody follows
    idle_poll_seconds: float  # ... and this often while nobody does
    min_read_interval: float
    batch: int
    gap_seconds: float
    buffer_events: int


class Subscription:
    """One follower's inbox: the events the feed read for its job or owner, oldest first.

    A follower that falls `limit` events behind loses the overflow and is told so
    (`take_overflow`); it then reads from the database, which has everything.
    """

    def __init__(
        self, feed: EventFeed, *, job_id: UUID | None = None, owner_id: UUID | None = None
    ) -> None:
        self.feed = feed
        self.job_id = job_id
        self.owner_id = owner_id
        self._items: deque[FeedEvent] = deque()
        self._ready = asyncio.Event()
        self._overflowed = False

    def push(self, item: FeedEvent) -> None:
        if len(self._items) >= self.feed.options.buffer_events:
            self._overflowed = True
        else:
            self._items.append(item)
        self._ready.set()

    async def next_batch(self) -> list[FeedEvent]:
        """Wait for events, then take every buffered one."""
        await self._ready.wait()
        self._ready.clear()
        items = list(self._items)
        self._items.clear()
        return items

    def take_overflow(self) -> bool:
        """Whether events were dropped since the last call."""
        overflowed, self._overflowed = self._overflowed, False
        return overflowed

    def has_after(self, seq: int) -> bool:
        """Whether an event of the job later than `seq` is already buffered."""
        return self._overflowed or any(item.seq > seq for item in self._items)

    def close(self) -> None:
        self.feed.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class FeedStats:
    """What the feed has done so far (served to superusers at /api/v1/stream/stats)."""

    mode: str
    subscribers: int
    job_subscribers: int
    user_subscribers: int
    queries: int
    reads: int
    notices: int  # event notices received from the broker
    high_id: int
    watermark: int
    pending_gaps: int


class EventFeed:
    """The process's single reader of new events and their fan-out to subscribers."""

    def __init__(
        self,
        reader: EventReader,
        options: FeedOptions,
        *,
        mode: str = "poll",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.options = options
        self.mode = mode
        self._clock = clock
        self._jobs: dict[UUID, set[Subscription]] = {}
        self._owners: dict[UUID, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._count = 0
        self._high = 0
        self._watermark = 0
        # ids below _high not read yet -> when the gap was first seen
        self._missing: dict[int, float] = {}
        # read, but above the watermark: not yet given to per-user subscribers
        self._held: dict[int, FeedEvent] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Told when the first follower comes (True) and the last one leaves (False): the
        # notice listener consumes only while someone follows.
        self.on_demand: Callable[[bool], None] | None = None
        self.reads = 0
        self.notices = 0

    # lifecycle

    async def start(self) -> None:
        """Begin after the newest stored event and run the reading loop."""
        self._high = self._watermark = await self.reader.max_id()
        self._task = asyncio.create_task(self._run(), name="jobline-event-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # waking

    def notified(self, ids: Collection[int]) -> None:
        """Notices of committed events (row ids); wakes the feed for any it has not read."""
        self.notices += len(ids)
        if self._count and any(i > self._high or i in self._missing for i in ids):
            self._wake.set()

    def wake(self) -> None:
        """Read now (a notification may have been lost, e.g. after a broker reconnect)."""
        self._wake.set()

    # subscribing

    def subscribe_job(self, job_id: UUID) -> Subscription:
        """Receive the events of one job from the next read on."""
        sub = Subscription(self, job_id=job_id)
        self._jobs.setdefault(job_id, set()).add(sub)
        self._added()
        return sub

    def subscribe_user(self, owner_id: UUID | None) -> tuple[Subscription, int]:
        """Receive the events of one owner's jobs (every job for None), in id order.

        Returns the subscription and the watermark: every later event the subscription
        receives has a higher id, every event up to it must be read from the database.
        """
        sub = Subscription(self, owner_id=owner_id)
        if owner_id is None:
            self._everything.add(sub)
        else:
            self._owners.setdefault(owner_id, set()).add(sub)
        self._added()
        return sub, self._watermark

    def unsubscribe(self, sub: Subscription) -> None:
        if sub.job_id is not None:
            found = self._discard(self._jobs, sub.job_id, sub)
        elif sub.owner_id is not None:
            found = self._discard(self._owners, sub.owner_id, sub)
        else:
            found = sub in self._everything
            self._everything.discard(sub)
        if found:
            self._count -= 1
            if not self._count and self.on_demand is not None:
                self.on_demand(False)

    @property
    def subscriber_count(self) -> int:
        return self._count

    def stats(self) -> FeedStats:
        jobs = sum(len(s) for s in self._jobs.values())
        return FeedStats(
            mode=self.mode,
            subscribers=self._count,
            job_subscribers=jobs,
            user_subscribers=self._count - jobs,
            queries=self.reader.queries,
            reads=self.reads,
            notices=self.notices,
            high_id=self._high,
            watermark=self._watermark,
            pending_gaps=len(self._missing),
        )

    def _added(self) -> None:
        self._count += 1
        if self._count == 1:
            # While nobody listened the reads took ids only, and held no event above the
            # watermark: read again from it, and at once, for the first follower.
            self._high = self._watermark
            self._missing.clear()
            self._held.clear()
            self._wake.set()
            if self.on_demand is not None:
                self.on_demand(True)

    @staticmethod
    def _discard(index: dict[UUID, set[Subscription]], key: UUID, sub: Subscription) -> bool:
        subs = index.get(key)
        if subs is None or sub not in subs:
            return False
        subs.discard(sub)
        if not subs:
            del index[key]
        return True

    # reading

    async def _run(self) -> None:
        options = self.options
        while True:
            await wait_event(
                self._wake, options.poll_seconds if self._count else options.idle_poll_seconds
            )
            self._wake.clear()
            try:
                while await self.read_once():
                    pass
            except Exception as exc:
                log.warning("the event feed could not read new events (%s); retrying", exc)
                await asyncio.sleep(options.poll_seconds)
            # A burst of notifications costs one read per interval.
            await asyncio.sleep(options.min_read_interval)

    async def read_once(self) -> bool:
        """One read of new (and late-committed) events; True if more are waiting."""
        options = self.options
        self.reads += 1
        now = self._clock()
        asked = sorted(self._missing)[: options.batch]
        # Nobody follows: the ids keep the watermark moving, the events would go to no one
        # (reading and decoding them was a tenth of a busy API process's CPU).
        idle = not self._count
        found: list[tuple[int, FeedEvent | None]]
        if idle:
            ids = await self.reader.newer_ids(self._high, asked, options.batch)
            if self._count:
                return True  # a follower came meanwhile (and reset the feed): read in full
            found = [(item_id, None) for item_id in ids]
        else:
            found = [
                (item.id, item)
                for item in await self.reader.newer(self._high, asked, options.batch)
            ]
        new = 0
        for item_id, item in found:
            if item_id > self._high:
                new += 1
                # A jump wider than a batch is no set of in-flight appends (an import, a
                # reset AUTO_INCREMENT): those ids are not waited for.
                if item_id - self._high <= options.batch:
                    for gap in range(self._high + 1, item_id):
                        self._missing[gap] = now
                self._high = item_id
            elif self._missing.pop(item_id, None) is None:
                continue
            if item is None:
                continue
            self._held[item_id] = item
            for sub in self._jobs.get(item.job_id, ()):
                sub.push(item)
        for gap, since in list(self._missing.items()):
            if now - since >= options.gap_seconds:
                log.info("event id %d never appeared; the per-user streams stop waiting", gap)
                del self._missing[gap]
        self._advance()
        return new >= options.batch

    def _advance(self) -> None:
        """Move the watermark up and hand the events below it to per-user subscribers."""
        limit = min(self._missing) - 1 if self._missing else self._high
        for item_id in sorted(i for i in self._held if i <= limit):
            item = self._held.pop(item_id)
            if item.owner_id is not None:
                for sub in self._owners.get(item.owner_id, ()):
                    sub.push(item)
            for sub in self._everything:
                sub.push(item)
        self._watermark = max(self._watermark, limit)
