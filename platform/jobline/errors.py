"""One root error whose docstring is its message; domain errors beside it.

These stay plain Python: only the API layer maps them to HTTP (see api/errors.py).
"""

from __future__ import annotations

from typing import Any


class JoblineError(Exception):
    """Something went wrong in jobline."""

    code = "JOBLINE_ERROR"

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.context = context
        super().__init__(self.message)


class ConfigError(JoblineError):
    """The configuration is invalid."""

    code = "CONFIG_INVALID"


class JobNotFound(JoblineError):
    """No such job."""

    code = "JOB_NOT_FOUND"


class UnknownJobType(JoblineError):
    """Unknown job type."""

    code = "UNKNOWN_JOB_TYPE"


class InvalidPayload(JoblineError):
    """The payload does not match the job type's model."""

    code = "INVALID_PAYLOAD"


class PriorityNotAllowed(JoblineError):
    """This priority is reserved for superusers."""

    code = "PRIORITY_NOT_ALLOWED"


class PayloadTooLarge(JoblineError):
    """The payload is larger than JOBLINE_MAX_PAYLOAD_BYTES."""

    code = "PAYLOAD_TOO_LARGE"


class InvalidCursor(JoblineError):
    """The cursor is malformed or was not issued for this query."""

    code = "INVALID_CURSOR"


class InvalidTransition(JoblineError):
    """The state machine does not allow this transition."""

    code = "INVALID_TRANSITION"


class JobFinished(JoblineError):
    """The job has already finished."""

    code = "JOB_FINISHED"


class JobNotRetryable(JoblineError):
    """Only a failed or cancelled job can be retried."""

    code = "JOB_NOT_RETRYABLE"


class IdempotencyConflict(JoblineError):
    """This Idempotency-Key was already used with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"


class InvalidLastEventId(JoblineError):
    """Last-Event-ID must be a non-negative integer."""

    code = "INVALID_LAST_EVENT_ID"


class SuperuserRequired(JoblineError):
    """Only a superuser may do this."""

    code = "SUPERUSER_REQUIRED"


class BrokerUnavailable(JoblineError):
    """The message broker is unreachable."""

    code = "BROKER_UNAVAILABLE"


class DatabaseUnavailable(JoblineError):
    """The database is unreachable."""

    code = "DATABASE_UNAVAILABLE"


class DatabaseSchemaBehind(JoblineError):
    """The database lacks migrations this version needs; an operator must run `jobline migrate`."""

    code = "DATABASE_SCHEMA_BEHIND"


class TransientError(JoblineError):
    """A temporary failure: the job is retried with backoff."""

    code = "TRANSIENT"


class JobCancelled(JoblineError):
    """The job was cancelled."""

    code = "CANCELLED"


class TooManyActiveJobs(JoblineError):
    """Too many of this user's jobs have not finished yet (JOBLINE_MAX_ACTIVE_JOBS_PER_USER)."""

    code = "TOO_MANY_ACTIVE_JOBS"


class TooManyStreams(JoblineError):
    """Too many open streams for this user (JOBLINE_MAX_STREAMS_PER_USER)."""

    code = "TOO_MANY_STREAMS"


def reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure, as one line."""
    root: BaseException = exc
    while root.__cause__ is not None or (
        root.__context__ is not None and not root.__suppress_context__
    ):
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    args = root.args
    # Drivers raise (errno, message) pairs; the message is the readable part.
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = args[1]
    else:
        text = str(root) or type(root).__name__
    return " ".join(text.split())
