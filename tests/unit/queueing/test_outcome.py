"""How an attempt ends: results and exceptions sorted into the event the worker records."""

from __future__ import annotations

import asyncio
from concurrent.futures import CancelledError
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, ValidationError

from jobline.config import get_settings
from jobline.errors import JobCancelled, TransientError
from jobline.jobs.events import EventType
from jobline.jobs.spec import BUILTIN_POLICY, JobType, JobTypeSpec, ResolvedPolicy
from jobline.queueing import outcome

POLICY = ResolvedPolicy(**{**BUILTIN_POLICY, "max_retries": 2, "retry_backoff": 3.0})
JOB_TYPE = JobType("demo.kind", "demo", "demo", JobTypeSpec(task_name="demo.kind"), POLICY)


def test_a_storable_result_succeeds_as_json_values() -> None:
    ended = outcome.of_result({"pair": (1, 2)}, get_settings())
    assert ended == outcome.Outcome(EventType.SUCCEEDED, {"result": {"pair": [1, 2]}})
    assert not ended.unexpected


def test_a_result_too_large_fails_with_jobline_s_code() -> None:
    settings = get_settings()
    ended = outcome.of_result("x" * (settings.max_result_bytes + 1), settings)
    assert ended.type is EventType.FAILED
    assert ended.data["error"]["type"] == "ResultRefused"
    assert ended.data["error"]["code"] == "RESULT_TOO_LARGE"
    assert not ended.unexpected, "jobline refused it: not the job's own failure"


@pytest.mark.parametrize("exc", [JobCancelled(), CancelledError(), asyncio.CancelledError()])
def test_every_cancellation_ends_cancelled(exc: BaseException) -> None:
    ended = outcome.of_error(exc, JOB_TYPE, 1)
    assert ended == outcome.Outcome(EventType.CANCELLED, {"reason": "cancelled by request"})


def test_the_soft_time_limit_fails_with_time_limit() -> None:
    ended = outcome.of_error(SoftTimeLimitExceeded(), JOB_TYPE, 1)
    assert (ended.type, ended.data["error"]["code"]) == (EventType.FAILED, "TIME_LIMIT")


def test_a_retryable_error_retries_while_the_policy_allows() -> None:
    first = outcome.of_error(TransientError("later"), JOB_TYPE, 1)
    assert first.type is EventType.RETRYING and first.retry_delay == 3.0
    assert first.data == {
        "error": {"type": "TransientError", "message": "later"},
        "delay_seconds": 3.0,
        "next_attempt": 2,
    }
    assert outcome.of_error(TransientError("later"), JOB_TYPE, 2).retry_delay == 6.0
    last = outcome.of_error(TransientError("later"), JOB_TYPE, 3)
    assert last.type is EventType.FAILED and last.retry_delay is None
    assert last.unexpected


def test_without_a_job_type_nothing_is_retried() -> None:
    # jobline.testing's run: the policy is the worker's to apply.
    assert outcome.of_error(TransientError("later")).type is EventType.FAILED


def test_a_plain_error_fails_with_its_type_and_message() -> None:
    ended = outcome.of_error(ValueError("bad input"), JOB_TYPE, 1)
    assert ended == outcome.Outcome(
        EventType.FAILED, {"error": {"type": "ValueError", "message": "bad input"}}
    )
    assert ended.unexpected


def test_a_refused_payload_fails_with_invalid_payload() -> None:
    class Model(BaseModel):
        n: int

    with pytest.raises(ValidationError) as raised:
        Model.model_validate({"n": "x"})
    ended = outcome.of_invalid_payload(raised.value)
    error: dict[str, Any] = ended.data["error"]
    assert (ended.type, error["type"], error["code"]) == (
        EventType.FAILED,
        "ValidationError",
        "INVALID_PAYLOAD",
    )
