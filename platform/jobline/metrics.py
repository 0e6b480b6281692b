"""Prometheus metrics of the API and the workers (prometheus-client).

Every process records into prometheus-client's default registry. Under gunicorn (and a
prefork Celery worker) several processes serve one endpoint: with PROMETHEUS_MULTIPROC_DIR
set before this module is imported, each process writes its values to files there and
`exposition()` adds them up. Gauges say how their per-process values combine.

This module knows nothing of jobs: its callers (jobs/store.py, api/observe.py) pass plain
labels, so the domain may record into it without the two importing each other.

Final-state totals come from `jobline_transitions_total{event="succeeded"|...}`; the
`jobline_jobs` gauge counts only the active states, whose rows are few, so the periodic
count stays cheap however big the jobs table grows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Jobs run from milliseconds (a thumbnail) to the longest time_limit (hours).
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, float("inf"))

JOBS_SUBMITTED = Counter(
    "jobline_jobs_submitted", "Jobs stored by POST /jobs (idempotent repeats excluded)", ["type"]
)
TRANSITIONS = Counter(
    "jobline_transitions", "Events recorded, by job type and event type", ["type", "event"]
)
JOBS_DEFERRED = Counter(
    "jobline_jobs_deferred",
    "Deliveries put back because their owner ran max_running_per_user jobs in the domain",
    ["domain"],
)
JOB_DURATION = Histogram(
    "jobline_job_duration_seconds",
    "From a job's start (or submission, when it never started) to its final event",
    ["type", "state"],
    buckets=DURATION_BUCKETS,
)
JOBS = Gauge(
    "jobline_jobs",
    "Jobs in each active state (periodic count)",
    ["state"],
    multiprocess_mode="mostrecent",
)
OUTBOX_BACKLOG = Gauge(
    "jobline_outbox_backlog",
    "Job attempts due but not yet accepted by the broker (outbox rows due by now)",
    multiprocess_mode="mostrecent",
)
SSE_STREAMS_OPEN = Gauge(
    "jobline_sse_streams_open", "SSE job streams currently open", multiprocess_mode="livesum"
)
REQUEST_LATENCY = Histogram(
    "jobline_request_duration_seconds",
    "API request latency by route template",
    ["method", "route", "status"],
)
AUDIT_WRITTEN = Counter("jobline_audit_written", "Audit records written to the database")
AUDIT_DROPPED = Counter(
    "jobline_audit_dropped",
    "Audit records dropped: queue_full (the writer fell behind) or write_error",
    ["reason"],
)


def record_transition(job_type: str, event: str) -> None:
    """Count an event just recorded."""
    TRANSITIONS.labels(job_type, event).inc()


def record_finished(job_type: str, state: str, seconds: float) -> None:
    """Observe how long a job that just ended (in final `state`) took."""
    JOB_DURATION.labels(job_type, state).observe(max(0.0, seconds))


def set_job_counts(counts: Mapping[str, int]) -> None:
    """Publish the latest count of jobs per active state (every active state, zeros included)."""
    for state, count in counts.items():
        JOBS.labels(state).set(count)


def set_outbox_backlog(due: int) -> None:
    """How many job attempts are due but not yet published (outbox rows due by now)."""
    OUTBOX_BACKLOG.set(due)


@contextmanager
def sse_stream_open() -> Iterator[None]:
    """Wrap an SSE stream's life: `jobline_sse_streams_open` counts it while it runs."""
    SSE_STREAMS_OPEN.inc()
    try:
        yield
    finally:
        SSE_STREAMS_OPEN.dec()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> tuple[bytes, str]:
    """The text exposition of this process, or of every process sharing the multiprocess dir."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (gunicorn's child_exit hook calls this)."""
    if multiprocess_dir() is not None:
        _multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
