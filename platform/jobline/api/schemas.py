"""What the HTTP API reads and writes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from jobline.jobs.events import Event, EventType
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=100, examples=["music.transcode"])
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(0, ge=0, le=9)
    delay_seconds: float | None = Field(None, ge=0, le=86_400 * 7)


class ErrorBody(BaseModel):
    type: str
    message: str
    code: str | None = None


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


class JobEvent(BaseModel):
    seq: int
    job_id: UUID
    type: EventType
    attempt: int
    at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> JobEvent:
        return cls(
            seq=event.seq,
            job_id=event.job_id,
            type=event.type,
            attempt=event.attempt,
            at=event.at,
            data=event.data,
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
    code: str
    message: str


class ErrorResponse(BaseModel):
    detail: Problem
