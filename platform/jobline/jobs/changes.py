"""What callers hand the event store, and what it tells them: the store's vocabulary.

jobs/store.py keeps the transactions; these are the values and hooks they take (NewJob,
Change, the hooks that commit with an append or a submit, the commit listener) and the
refusals they raise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from jobline.jobs.events import Event, EventType
from jobline.jobs.projection import JobView


def utcnow() -> datetime:
    return datetime.now(UTC)


# Extra writes that must commit with an append or a submit (the outbox row): (conn, view).
TxHook = Callable[[Any, JobView], Awaitable[None]]
# The same for a batch (submit_many, append_many): (conn, views), once per transaction.
BatchTxHook = Callable[[Any, Sequence[JobView]], Awaitable[None]]
# Admission of new jobs, first thing in a submit's transaction (jobs/quotas.py): (conn,
# how many new jobs per owner) -> how many of them may be stored.
AdmitHook = Callable[[Any, dict[UUID, int]], Awaitable[dict[UUID, int]]]


@dataclass(frozen=True, slots=True)
class NewJob:
    """One job of a submit_many: what submit() takes for one job."""

    job_id: UUID
    data: dict[str, Any]
    idempotency_key: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One event of an append_many: what append() takes for one event."""

    job_id: UUID
    type: EventType
    data: dict[str, Any] | None = None
    attempt: int | None = None


class CommitListener(Protocol):
    """Told of each event after its transaction commits (the live streams' notices)."""

    def committed(self, event: Event, owner_id: UUID | None, row_id: int) -> None: ...


class NotAdmitted(Exception):
    """The submit's admission hook (the active-jobs cap) refused the job."""


class DuplicateIdempotencyKey(Exception):
    """A job with this (owner, Idempotency-Key) already exists."""
