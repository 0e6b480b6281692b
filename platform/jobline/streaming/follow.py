"""Following a job, or all of a user's jobs: replay from the database, then live from the feed.

Both subscribe to the feed *before* reading the database, so an event committed during
the switch is in the replay, in the live buffer, or in both, never in neither; the
follower drops what it already sent (by seq for a job, by row id for a user).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID

from jobline.jobs.states import FINAL_EVENTS
from jobline.streaming.feed import EventFeed
from jobline.streaming.reader import FeedEvent

log = logging.getLogger("jobline.streaming")


async def follow_job(feed: EventFeed, job_id: UUID, after_seq: int = 0) -> AsyncIterator[FeedEvent]:
    """Every event of the job after `after_seq`, in seq order, with no gap and no duplicate.

    Ends after a terminal event when no later event is known.
    """
    reader, page = feed.reader, feed.options.batch
    with feed.subscribe_job(job_id) as sub:
        last, last_type = after_seq, None
        from_db = True
        while True:
            if from_db:
                batch = await reader.of_job(job_id, last, page)
                from_db = len(batch) == page
            else:
                if last_type in FINAL_EVENTS and not sub.has_after(last):
                    return
                live = await sub.next_batch()
                if sub.take_overflow():
                    from_db = True
                    continue
                batch = sorted((e for e in live if e.seq > last), key=lambda e: e.seq)
            for item in batch:
                if item.seq <= last:
                    continue  # seen in the replay, or twice in the buffer
                if item.seq != last + 1:
                    # A hole the feed did not fill (it gave up on a late commit): the
                    # database has every event, read from there.
                    from_db = True
                    break
                yield item
                last, last_type = item.seq, item.event.type


@dataclass(frozen=True)
class StartAt:
    """A per-user stream started live at this row id (what to resume from)."""

    id: int


async def follow_user(
    feed: EventFeed, owner_id: UUID | None, after_id: int | None = None
) -> AsyncIterator[FeedEvent | StartAt]:
    """Events of the owner's jobs (every job for None) in row-id order; never ends by itself.

    With `after_id` it first replays the stored events after it; without, it starts live
    and yields a `StartAt` first. It returns if the follower fell too far behind, so the
    client resumes from the database with its last id.
    """
    reader, page = feed.reader, feed.options.batch
    sub, watermark = feed.subscribe_user(owner_id)
    with sub:
        if after_id is None:
            last = watermark
            yield StartAt(watermark)
        else:
            last = after_id
        while last < watermark:
            batch = await reader.of_owner(owner_id, last, watermark, page)
            for item in batch:
                yield item
                last = item.id
            if len(batch) < page:
                break
        while True:
            live = await sub.next_batch()
            if sub.take_overflow():
                log.info("a per-user follower fell behind; its stream ends so it resumes")
                return
            for item in live:
                if item.id > last:
                    yield item
                    last = item.id
