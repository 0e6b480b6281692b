"""Events: small frozen records of what happened to a job. The append-only log is the truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class EventType(StrEnum):
    """Each event type and the transition it records (see states.TRANSITIONS)."""

    SUBMITTED = "submitted"  # (new) -> pending: stored, not yet accepted by the broker
    QUEUED = "queued"  # pending | retrying -> queued: the broker holds the message
    STARTED = "started"  # queued | retrying -> running: a worker began an attempt
    PROGRESS = "progress"  # running -> running: percent and message
    RETRYING = "retrying"  # running | failed | cancelled -> retrying: a new attempt is due
    SUCCEEDED = "succeeded"  # running -> succeeded, with the result
    FAILED = "failed"  # any non-final -> failed, with the error
    CANCEL_REQUESTED = "cancel_requested"  # running -> running: the job is asked to stop
    CANCELLED = "cancelled"  # any non-final -> cancelled
    WORKER_LOST = "worker_lost"  # running -> queued: the worker died, the message comes back
    # queued -> queued: the broker lost the message; published again as a new dispatch
    # generation (data: generation, reason), so a worker drops any older message of the job
    REQUEUED = "requeued"


# An attempt ends with these; the next event of the job belongs to attempt + 1.
ATTEMPT_ENDING = frozenset({EventType.RETRYING, EventType.WORKER_LOST})
# Recorded any number of times per attempt; every other type at most once per attempt.
# A `requeued` is one per generation, and an attempt may need several.
REPEATABLE = frozenset({EventType.PROGRESS, EventType.REQUEUED})
# The dispatch generation of a job never republished, and of a message that names none
# (published before generations existed): the migration gave every stored job this one.
FIRST_GENERATION = 1


def job_error(type: str, message: str, code: str | None = None) -> dict[str, Any]:
    """The `error` of a failed or retrying event, and then of the job: the exception's type,
    its message, and a code when jobline decided the failure (TIME_LIMIT, WORKER_LOST, ...)."""
    error: dict[str, Any] = {"type": type, "message": message}
    if code is not None:
        error["code"] = code
    return error


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event of one job; `seq` counts 1, 2, 3... per job and is the SSE id."""

    job_id: UUID
    seq: int
    type: EventType
    attempt: int
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)
