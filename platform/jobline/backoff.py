"""Exponential backoff, the one formula every retry in jobline waits by: a job's next attempt
(queues.yaml retry_backoff, retry_backoff_max), the relay's next publish of a job
(JOBLINE_RELAY_RETRY_*), and the worker's next write while the database is away."""

from __future__ import annotations

# Doubling this often exceeds any cap a setting can hold (and 2.0 ** 1024 overflows).
MAX_DOUBLINGS = 64


def backoff(first: float, cap: float, retries: int) -> float:
    """Seconds to wait after `retries` earlier waits: `first`, doubled each time, at most `cap`."""
    return float(min(first * 2.0 ** min(max(retries, 0), MAX_DOUBLINGS), cap))
