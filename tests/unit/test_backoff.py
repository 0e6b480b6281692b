"""The one backoff formula: doubling from `first`, capped, never overflowing."""

from __future__ import annotations

from jobline.backoff import backoff
from jobline.jobs.spec import BUILTIN_POLICY, ResolvedPolicy


def test_it_doubles_from_first_up_to_the_cap() -> None:
    assert [backoff(0.2, 5.0, n) for n in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_a_huge_count_of_retries_stays_at_the_cap() -> None:
    assert backoff(2.0, 600.0, 10_000) == 600.0


def test_a_jobs_first_retry_waits_retry_backoff_then_doubles() -> None:
    policy = ResolvedPolicy(**{**BUILTIN_POLICY, "retry_backoff": 2.0, "retry_backoff_max": 7.0})
    assert [policy.backoff(attempt) for attempt in (1, 2, 3, 4)] == [2.0, 4.0, 7.0, 7.0]
