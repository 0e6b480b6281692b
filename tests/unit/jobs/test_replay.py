"""Replay's comparison: which fields of a stored projection differ from the replayed one."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from jobline.jobs.events import Event, EventType
from jobline.jobs.projection import project
from jobline.jobs.replay import Difference, compare, describe
from jobline.jobs.states import JobState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def events() -> list[Event]:
    job = uuid.uuid4()
    submitted: dict[str, Any] = {
        "type": "music.transcode",
        "queue": "music",
        "payload": {},
        "owner_id": None,
    }
    return [
        Event(job, 1, EventType.SUBMITTED, 1, T0, submitted),
        Event(job, 2, EventType.QUEUED, 1, T0 + timedelta(seconds=1), {"task_id": str(job)}),
        Event(job, 3, EventType.STARTED, 1, T0 + timedelta(seconds=2), {}),
        Event(job, 4, EventType.SUCCEEDED, 1, T0 + timedelta(seconds=3), {"result": {"ok": 1}}),
    ]


def test_a_projection_equal_to_its_replay_has_no_difference() -> None:
    stream = events()
    assert compare(project(stream), project(list(stream))) == {}


def test_every_differing_field_is_reported_stored_then_replayed() -> None:
    replayed = project(events())
    stored = dataclasses.replace(replayed, state=JobState.RUNNING, progress=7)
    assert compare(stored, replayed) == {
        "state": (JobState.RUNNING, JobState.SUCCEEDED),
        "progress": (7, 100),
    }
    line = describe(Difference(replayed.id, compare(stored, replayed)))
    assert line.startswith(str(replayed.id))
    assert "progress: 7 -> 100" in line and "state:" in line


def test_events_that_do_not_replay_are_described_as_such() -> None:
    job = uuid.uuid4()
    line = describe(Difference(job, {}, "started is not allowed in state succeeded"))
    assert line == f"{job}: events do not replay: started is not allowed in state succeeded"
