"""Replay: rebuild job projections from their events, or verify the stored ones against them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from tortoise import connections
from tortoise.transactions import in_transaction

from jobline.errors import InvalidTransition
from jobline.jobs.models import JobEventRow, JobRow
from jobline.jobs.projection import JobView, project
from jobline.jobs.sql import VIEW_FIELDS, event_of, view_of


@dataclass(frozen=True, slots=True)
class Difference:
    """One job whose stored projection is not what its events make of it."""

    job_id: UUID
    fields: dict[str, tuple[Any, Any]]  # name -> (stored, replayed)
    problem: str | None = None  # events that do not replay at all


@dataclass
class ReplayReport:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    rewritten: int = 0


def compare(stored: JobView, replayed: JobView) -> dict[str, tuple[Any, Any]]:
    """The fields in which two views of one job differ."""
    return {
        name: (getattr(stored, name), getattr(replayed, name))
        for name in VIEW_FIELDS
        if getattr(stored, name) != getattr(replayed, name)
    }


async def replay(
    job_ids: Sequence[UUID] | None = None,
    *,
    verify: bool = False,
    batch: int = 500,
    connection: str = "default",
) -> ReplayReport:
    """Project every job (or `job_ids`) from its events and compare with the stored row.

    `verify` only reports; otherwise each differing row is rewritten from its events,
    under the row's lock so an event appended meanwhile is not overwritten.
    """
    report = ReplayReport()
    async for rows, events in _batches(job_ids, batch, connection):
        for row in rows:
            report.checked += 1
            stored = view_of(row)
            try:
                replayed = project(events.get(row.id, []))
            except InvalidTransition as exc:
                report.differences.append(Difference(row.id, {}, str(exc)))
                continue
            diff = compare(stored, replayed)
            if not diff:
                continue
            report.differences.append(Difference(row.id, diff))
            if not verify and await _rewrite(row.id, connection):
                report.rewritten += 1
    return report


async def _batches(
    job_ids: Sequence[UUID] | None, batch: int, connection: str
) -> AsyncIterator[tuple[list[JobRow], dict[UUID, list[Any]]]]:
    db = connections.get(connection)
    after: UUID | None = None
    wanted = list(job_ids) if job_ids is not None else None
    while True:
        if wanted is not None:
            chunk, wanted = wanted[:batch], wanted[batch:]
            if not chunk:
                return
            rows = await JobRow.filter(id__in=chunk).using_db(db).order_by("id")
        else:
            qs = JobRow.all().using_db(db).order_by("id").limit(batch)
            if after is not None:
                qs = qs.filter(id__gt=after)
            rows = await qs
            if not rows:
                return
            after = rows[-1].id
        ids = [r.id for r in rows]
        events: dict[UUID, list[Any]] = defaultdict(list)
        for e in await JobEventRow.filter(job_id__in=ids).using_db(db).order_by("job_id", "seq"):
            events[e.job_id].append(event_of(e))
        yield rows, events


async def _rewrite(job_id: UUID, connection: str) -> bool:
    async with in_transaction(connection) as conn:
        row = await JobRow.select_for_update().using_db(conn).get_or_none(id=job_id)
        if row is None:
            return False
        rows = await JobEventRow.filter(job_id=job_id).using_db(conn).order_by("seq")
        replayed = project(event_of(r) for r in rows)
        if not compare(view_of(row), replayed):
            return False
        values = {name: getattr(replayed, name) for name in VIEW_FIELDS}
        await JobRow.filter(id=job_id).using_db(conn).update(**values)
    return True


def describe(difference: Difference) -> str:
    """One line for a report: the job and each differing field, stored -> replayed."""
    if difference.problem is not None:
        return f"{difference.job_id}: events do not replay: {difference.problem}"
    parts = [f"{name}: {a!r} -> {b!r}" for name, (a, b) in difference.fields.items()]
    return f"{difference.job_id}: " + "; ".join(parts)


__all__ = ("Difference", "ReplayReport", "compare", "describe", "replay")
