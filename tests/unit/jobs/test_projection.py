"""project(events) -> JobView: a pure fold, tested without a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobline.errors import InvalidTransition
from jobline.jobs.events import Event, EventType
from jobline.jobs.projection import apply, project, start
from jobline.jobs.states import JobState

E = EventType
JOB = uuid.UUID("00000000-0000-4000-8000-000000000001")
OWNER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SUBMITTED_DATA = {
    "type": "music.transcode",
    "queue": "music",
    "payload": {"source": "song.wav"},
    "priority": 3,
    "owner_id": str(OWNER),
}


def history(*steps: tuple[EventType, int, dict[str, Any]]) -> list[Event]:
    """Events numbered 1..n, one second apart, starting with `submitted`."""
    events = [Event(JOB, 1, E.SUBMITTED, 1, T0, SUBMITTED_DATA)]
    for seq, (type, attempt, data) in enumerate(steps, start=2):
        events.append(Event(JOB, seq, type, attempt, T0 + timedelta(seconds=seq - 1), data))
    return events


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_submitted_creates_a_pending_job_from_its_data() -> None:
    view = project(history())
    assert view.id == JOB
    assert view.state is JobState.PENDING
    assert (view.type, view.queue, view.priority) == ("music.transcode", "music", 3)
    assert view.payload == {"source": "song.wav"}
    assert view.owner_id == OWNER
    assert view.created_at == view.updated_at == T0
    assert (view.attempt, view.last_seq, view.progress) == (1, 1, 0)


def test_happy_path() -> None:
    view = project(
        history(
            (E.QUEUED, 1, {"task_id": "t-1"}),
            (E.STARTED, 1, {"worker": "music@host"}),
            (E.PROGRESS, 1, {"progress": 50, "message": "half"}),
            (E.SUCCEEDED, 1, {"result": {"output": "song.ogg"}}),
        )
    )
    assert view.state is JobState.SUCCEEDED
    assert view.task_id == "t-1"
    assert view.result == {"output": "song.ogg"}
    assert view.progress == 100
    assert view.error is None
    assert view.started_at == at(2)
    assert view.finished_at == view.updated_at == at(4)
    assert view.last_seq == 5
    assert view.attempt == 1


def test_retry_increments_the_attempt_and_clears_the_last_error_on_start() -> None:
    error = {"type": "TransientError", "message": "cdn timed out"}
    events = history(
        (E.QUEUED, 1, {}),
        (E.STARTED, 1, {}),
        (E.PROGRESS, 1, {"progress": 40, "message": "uploading"}),
        (E.RETRYING, 1, {"error": error, "delay_seconds": 0.5}),
    )
    retrying = project(events)
    assert retrying.state is JobState.RETRYING
    assert retrying.attempt == 2
    assert retrying.error == error

    events += [
        Event(JOB, 6, E.STARTED, 2, at(5), {}),
        Event(JOB, 7, E.SUCCEEDED, 2, at(6), {"result": {"attempts": 2}}),
    ]
    restarted = project(events[:-1])
    assert restarted.state is JobState.RUNNING
    assert (restarted.attempt, restarted.error, restarted.progress) == (2, None, 0)
    assert restarted.started_at == at(5)
    done = project(events)
    assert (done.state, done.attempt, done.result) == (JobState.SUCCEEDED, 2, {"attempts": 2})


def test_failure_stores_the_error() -> None:
    error = {"type": "UnsupportedMaster", "message": "song.mp3 is not a lossless master"}
    view = project(history((E.QUEUED, 1, {}), (E.STARTED, 1, {}), (E.FAILED, 1, {"error": error})))
    assert view.state is JobState.FAILED
    assert view.error == error
    assert view.result is None
    assert view.finished_at == at(3)


def test_progress_latest_wins_and_a_message_is_kept_until_replaced() -> None:
    view = project(
        history(
            (E.QUEUED, 1, {}),
            (E.STARTED, 1, {}),
            (E.PROGRESS, 1, {"progress": 10, "message": "chunk 1"}),
            (E.PROGRESS, 1, {"progress": 70, "message": "chunk 7"}),
            (E.PROGRESS, 1, {"progress": 30}),
        )
    )
    assert view.state is JobState.RUNNING
    assert view.progress == 30
    assert view.message == "chunk 7"
    assert view.last_seq == 6


def test_worker_lost_requeues_the_job_for_a_new_attempt() -> None:
    events = history(
        (E.QUEUED, 1, {}),
        (E.STARTED, 1, {}),
        (E.PROGRESS, 1, {"progress": 60}),
        (E.WORKER_LOST, 1, {"worker": "music@dead"}),
    )
    lost = project(events)
    assert lost.state is JobState.QUEUED
    assert lost.attempt == 2
    again = project([*events, Event(JOB, 6, E.STARTED, 2, at(5), {})])
    assert (again.state, again.attempt, again.progress) == (JobState.RUNNING, 2, 0)


def test_started_names_its_worker_and_a_worker_lost_by_silence_names_the_next_message() -> None:
    events = history(
        (E.QUEUED, 1, {"task_id": str(JOB)}),
        (E.STARTED, 1, {"worker": "music@a:1"}),
    )
    running = project(events)
    assert (running.worker, running.task_id) == ("music@a:1", str(JOB))
    # Found by the heartbeat: the next attempt goes out as a new message, named here.
    lost = project([*events, Event(JOB, 4, E.WORKER_LOST, 1, at(3), {"task_id": f"{JOB}.2"})])
    assert (lost.state, lost.attempt, lost.task_id) == (JobState.QUEUED, 2, f"{JOB}.2")
    assert lost.worker is None  # only a running job has a worker
    # Found by a redelivery: the same message runs the next attempt, its task id stays.
    redelivered = project([*events, Event(JOB, 4, E.WORKER_LOST, 1, at(3), {"worker": "b"})])
    assert redelivered.task_id == str(JOB)
    again = project(
        [
            *events,
            Event(JOB, 4, E.WORKER_LOST, 1, at(3), {}),
            Event(JOB, 5, E.STARTED, 2, at(4), {"worker": "music@b:2"}),
        ]
    )
    assert again.worker == "music@b:2"
    done = project([*events, Event(JOB, 4, E.SUCCEEDED, 1, at(3), {"result": 1})])
    assert done.worker is None


def test_cancel_request_then_cancelled() -> None:
    events = history((E.QUEUED, 1, {}), (E.STARTED, 1, {}), (E.CANCEL_REQUESTED, 1, {}))
    asked = project(events)
    assert (asked.state, asked.cancel_requested) == (JobState.RUNNING, True)
    done = project([*events, Event(JOB, 5, E.CANCELLED, 1, at(4), {})])
    assert (done.state, done.cancel_requested, done.finished_at) == (
        JobState.CANCELLED,
        False,
        at(4),
    )


def test_an_illegal_event_raises_and_leaves_the_view_alone() -> None:
    view = project(history((E.QUEUED, 1, {})))
    with pytest.raises(InvalidTransition):
        apply(view, Event(JOB, 3, E.SUCCEEDED, 1, at(2), {"result": 1}))
    assert view.state is JobState.QUEUED and view.last_seq == 2


def test_a_history_must_start_with_submitted() -> None:
    with pytest.raises(InvalidTransition):
        project([])
    with pytest.raises(InvalidTransition):
        start(Event(JOB, 1, E.QUEUED, 1, T0, {}))
    with pytest.raises(InvalidTransition):
        project(history((E.STARTED, 1, {})))


def test_requeued_keeps_the_job_queued_at_its_next_generation() -> None:
    view = project(
        history(
            (E.QUEUED, 1, {"task_id": str(JOB)}),
            (E.REQUEUED, 1, {"generation": 2, "reason": "lost by the broker"}),
            (E.REQUEUED, 1, {"generation": 3, "reason": "lost by the broker"}),
        )
    )
    assert (view.state, view.attempt, view.generation, view.last_seq) == (JobState.QUEUED, 1, 3, 4)
    assert view.task_id == str(JOB)  # the same message, published again


def test_a_job_never_published_again_is_at_the_first_generation() -> None:
    assert project(history((E.QUEUED, 1, {}))).generation == 1


def test_requeued_applies_only_to_a_queued_job() -> None:
    befores: list[list[tuple[EventType, int, dict[str, Any]]]] = [
        [],
        [(E.QUEUED, 1, {}), (E.STARTED, 1, {})],
    ]
    for before in befores:
        with pytest.raises(InvalidTransition):
            project(history(*before, (E.REQUEUED, 1, {"generation": 2})))
