"""How an attempt ended: a job's result or exception sorted into the event that records it.

Pure: no database, no Celery state. The worker (queueing/attempt.py) records what it
returns; jobline.testing sorts a test run's ending with the same functions.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from pydantic import ValidationError

from jobline.config import Settings
from jobline.errors import JobCancelled
from jobline.jobs.context import INVALID_PAYLOAD
from jobline.jobs.events import EventType, job_error
from jobline.jobs.spec import JobType
from jobline.queueing.limits import error_of, storable_result

# What stops a job on a cancel request: its own raise_if_cancelled(), or its cancelled
# coroutine (an async job's future, cancelled by the CancelWatch).
CANCELLATIONS = (JobCancelled, CancelledError, asyncio.CancelledError)


@dataclass(frozen=True)
class Outcome:
    """The event that ends an attempt and its data; a retry's delay before the next one."""

    type: EventType
    data: dict[str, Any]
    retry_delay: float | None = None

    @property
    def unexpected(self) -> bool:
        """A failure the job's own code raised (jobline's decisions carry an error code)."""
        return self.type is EventType.FAILED and "code" not in self.data["error"]


def of_result(result: Any, settings: Settings) -> Outcome:
    """`succeeded` with the result as JSON values, or `failed` when it must not be stored.

    Raises what the conversion to JSON raises (an object that is not JSON): the caller
    sorts that like any exception of the job.
    """
    refused, value = storable_result(
        result,
        max_bytes=settings.max_result_bytes,
        max_depth=settings.max_json_depth - 1,  # stored as {"result": ...}
    )
    if refused is not None:
        code, message = refused
        return Outcome(EventType.FAILED, {"error": job_error("ResultRefused", message, code)})
    return Outcome(EventType.SUCCEEDED, {"result": value})


def of_error(exc: BaseException, job_type: JobType | None = None, attempt: int = 1) -> Outcome:
    """The outcome of an exception out of a job: cancelled, failed, or (by the job type's
    retry policy, when one is given) retrying."""
    if isinstance(exc, CANCELLATIONS):
        return Outcome(EventType.CANCELLED, {"reason": "cancelled by request"})
    if isinstance(exc, SoftTimeLimitExceeded):
        return Outcome(EventType.FAILED, {"error": error_of(exc, "TIME_LIMIT")})
    if (
        job_type is not None
        and isinstance(exc, job_type.retry_exceptions())
        and attempt <= job_type.policy.max_retries
    ):
        delay = job_type.policy.backoff(attempt)
        data = {"error": error_of(exc), "delay_seconds": delay, "next_attempt": attempt + 1}
        return Outcome(EventType.RETRYING, data, retry_delay=delay)
    return Outcome(EventType.FAILED, {"error": error_of(exc)})


def of_invalid_payload(exc: ValidationError) -> Outcome:
    """`failed`: the job type's payload model refuses the payload the worker was handed."""
    return Outcome(EventType.FAILED, {"error": error_of(exc, INVALID_PAYLOAD)})
