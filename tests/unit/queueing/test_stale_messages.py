"""A message of an attempt the job has left behind is dropped (queueing/delivery.py `stale`)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

from jobline.jobs.outbox import task_id_for
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState
from jobline.queueing.delivery import left_behind

JOB = uuid.UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 1, 2, tzinfo=UTC)
BASE = JobView(JOB, "music.transcode", "music", JobState.RUNNING, None, {}, 0, T0, T0)


def job(attempt: int, task_id: str | None, state: JobState = JobState.RUNNING) -> JobView:
    return dataclasses.replace(BASE, attempt=attempt, task_id=task_id, state=state)


def test_the_lost_workers_message_redelivered_after_the_new_one_went_out_is_stale() -> None:
    # worker_lost found by the heartbeat named the attempt 2 message; attempt 2 runs.
    now = job(2, task_id_for(JOB, 2))
    assert left_behind(now, task_id_for(JOB, 1))
    assert not left_behind(now, task_id_for(JOB, 2))


def test_a_message_ahead_of_its_publishers_queued_is_not_stale() -> None:
    # A retry's attempt 2 delivered before the relay recorded its `queued`.
    assert not left_behind(job(2, task_id_for(JOB, 1), JobState.RETRYING), task_id_for(JOB, 2))


def test_a_message_the_broker_redelivered_itself_runs_the_next_attempt() -> None:
    # worker_lost recorded by a redelivery keeps the task id: its message runs attempt 2,
    # and again attempt 3 when that worker dies too.
    assert not left_behind(job(3, task_id_for(JOB, 1)), task_id_for(JOB, 1))


def test_without_a_known_message_nothing_is_stale() -> None:
    assert not left_behind(job(1, None, JobState.PENDING), task_id_for(JOB, 1))
    assert not left_behind(job(2, task_id_for(JOB, 2)), None)
