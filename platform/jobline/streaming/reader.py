"""The streaming side's reads of `job_events`, each one counted.

Every database read the SSE streams and the shared feed make goes through here, so the
number of queries per process can be watched (the feed's stats, bench/sse_fanout).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from uuid import UUID

from tortoise.expressions import Q
from tortoise.functions import Max

from jobline.jobs.events import Event
from jobline.jobs.models import JobEventRow
from jobline.jobs.sql import event_of


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One stored event with its row id, which orders events across jobs.

    `frames` caches the event's encodings so that a thousand followers share one.
    """

    id: int
    owner_id: UUID | None
    event: Event
    frames: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    @property
    def seq(self) -> int:
        return self.event.seq

    @property
    def job_id(self) -> UUID:
        return self.event.job_id


def feed_event(row: JobEventRow) -> FeedEvent:
    return FeedEvent(id=row.id, owner_id=row.owner_id, event=event_of(row))


class EventReader:
    """Reads events for streams; `queries` counts every query it sent."""

    def __init__(self) -> None:
        self.queries = 0

    async def max_id(self) -> int:
        """The highest event row id (0 on an empty table)."""
        self.queries += 1
        found = await JobEventRow.all().annotate(top=Max("id")).values_list("top", flat=True)
        top = found[0] if found else None
        return int(top) if top is not None else 0  # type: ignore[call-overload]

    async def newer(self, after_id: int, also: Collection[int], limit: int) -> list[FeedEvent]:
        """Events with an id above `after_id`, plus those of the ids in `also`, by id."""
        condition = Q(id__gt=after_id)
        if also:
            condition |= Q(id__in=list(also))
        self.queries += 1
        rows = await JobEventRow.filter(condition).order_by("id").limit(limit + len(also))
        return [feed_event(r) for r in rows]

    async def newer_ids(self, after_id: int, also: Collection[int], limit: int) -> list[int]:
        """newer(), the ids only: what the feed reads while nobody follows."""
        condition = Q(id__gt=after_id)
        if also:
            condition |= Q(id__in=list(also))
        self.queries += 1
        ids = (
            await JobEventRow.filter(condition)
            .order_by("id")
            .limit(limit + len(also))
            .values_list("id", flat=True)
        )
        return [int(i) for i in ids]  # type: ignore[call-overload]

    async def of_job(self, job_id: UUID, after_seq: int, limit: int) -> list[FeedEvent]:
        """A job's events after `after_seq`, oldest first."""
        self.queries += 1
        rows = (
            await JobEventRow.filter(job_id=job_id, seq__gt=after_seq).order_by("seq").limit(limit)
        )
        return [feed_event(r) for r in rows]

    async def of_owner(
        self, owner_id: UUID | None, after_id: int, up_to_id: int, limit: int
    ) -> list[FeedEvent]:
        """Events of one owner's jobs (every job for None) with after_id < id <= up_to_id."""
        query = JobEventRow.filter(id__gt=after_id, id__lte=up_to_id)
        if owner_id is not None:
            query = query.filter(owner_id=owner_id)
        self.queries += 1
        rows = await query.order_by("id").limit(limit)
        return [feed_event(r) for r in rows]
