"""What the HTTP API reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from jobline.jobs.events import Event, EventType
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState


class SubmitJob(BaseModel):
    # Strict: `"delay_seconds": false` or `"priority": "3"` is refused, not coerced.
    model_config = ConfigDict(extra="forbid", strict=True)

    type: str = Field(min_length=1, max_length=100, examples=["music.transcode"])
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=0, le=9)
    delay_seconds: float | None = Field(None, ge=0, le=86_400 * 7)


class Job(BaseModel):
    id: UUID
    type: str
    queue: str
    state: JobState
    progress: int
    message: str | None
    attempt: int
    priority: int
    payload: dict[str, Any]
    result: Any
    error: dict[str, Any] | None
    owner_id: UUID | None
    last_seq: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, view: JobView) -> Job:
        return cls(**{name: getattr(view, name) for name in cls.model_fields})


# Fields of an event's data that name a worker's host: for operators (superusers, logs,
# Flower), not for the job's owner. The stored history keeps them; answers leave them out.
OPERATOR_FIELDS: dict[EventType, frozenset[str]] = {
    EventType.STARTED: frozenset({"worker"}),
    EventType.QUEUED: frozenset({"by"}),  # a worker that found the job still pending
    EventType.WORKER_LOST: frozenset({"worker"}),
    EventType.CANCELLED: frozenset({"worker"}),  # a cancel that found the worker lost
}


def shows_operator_fields(event: Event) -> bool:
    """Whether the event's data holds a field only operators see (its two views differ)."""
    hidden = OPERATOR_FIELDS.get(event.type)
    return hidden is not None and not hidden.isdisjoint(event.data)


class JobEvent(BaseModel):
    seq: int
    job_id: UUID
    type: EventType
    attempt: int
    at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event, *, operator: bool = False) -> JobEvent:
        """The event as answered; to anyone but an `operator` (a superuser) without the
        worker's host name."""
        data = event.data
        if not operator and shows_operator_fields(event):
            hidden = OPERATOR_FIELDS[event.type]
            data = {key: value for key, value in data.items() if key not in hidden}
        return cls(
            seq=event.seq,
            job_id=event.job_id,
            type=event.type,
            attempt=event.attempt,
            at=event.at,
            data=data,
        )


class RetryPolicyOut(BaseModel):
    max_retries: int
    retry_backoff: float
    retry_backoff_max: float
    time_limit: int
    soft_time_limit: int


class JobTypeOut(BaseModel):
    name: str
    domain: str
    queue: str
    payload_schema: dict[str, Any] | None
    retry: RetryPolicyOut
    rate_limit: str | None
    description: str | None


class Problem(BaseModel):
    """An error: a code to branch on, a message to show; `errors` on validation errors."""

    code: str = Field(examples=["JOB_NOT_FOUND"])
    message: str
    errors: list[dict[str, Any]] | None = Field(
        None, description="VALIDATION_ERROR and INVALID_PAYLOAD: each field's error (loc, msg)"
    )


class ErrorResponse(BaseModel):
    """Every error the API answers."""

    detail: Problem


# Filter times: ISO 8601 text only (pydantic would also read "0.5" as a Unix time), as UTC,
# within what MariaDB's DATETIME holds once an offset is applied.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _iso_instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z") from None
    else:
        raise ValueError("must be an ISO 8601 date-time")
    try:
        utc = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be from {EARLIEST.isoformat()} to before {LATEST.isoformat()}")
    return utc


Instant = Annotated[datetime, BeforeValidator(_iso_instant)]
