"""The `error` object of failed and retrying events, built in one place."""

from __future__ import annotations

from jobline.jobs.events import job_error


def test_an_error_without_a_code_has_only_type_and_message() -> None:
    assert job_error("ValueError", "bad input") == {"type": "ValueError", "message": "bad input"}


def test_a_code_says_jobline_decided_the_failure() -> None:
    assert job_error("WorkerLost", "died 3 times", "WORKER_LOST") == {
        "type": "WorkerLost",
        "message": "died 3 times",
        "code": "WORKER_LOST",
    }
