"""Events as answered: a worker's host name is for superusers only (api/schemas.JobEvent)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from jobline.api.schemas import JobEvent, shows_operator_fields
from jobline.jobs.events import Event, EventType


def event(type: EventType, data: dict[str, Any]) -> Event:
    return Event(uuid.uuid4(), 3, type, 1, datetime(2030, 1, 1, tzinfo=UTC), data)


def test_host_fields_are_left_out_for_users_and_kept_for_operators() -> None:
    cases = [
        (EventType.STARTED, {"worker": "music@host-7", "delivery": "d1"}, {"delivery": "d1"}),
        (EventType.QUEUED, {"by": "music@host-7"}, {}),
        (EventType.WORKER_LOST, {"worker": "music@host-7"}, {}),
    ]
    for type, data, shown in cases:
        stored = event(type, data)
        assert shows_operator_fields(stored)
        assert JobEvent.of(stored).data == shown
        assert JobEvent.of(stored, operator=True).data == data
        assert stored.data == data  # the stored event is not touched


def test_other_events_are_the_same_for_everyone() -> None:
    for stored in (
        event(EventType.PROGRESS, {"progress": 5, "message": "worker on fire"}),
        event(EventType.QUEUED, {"task_id": "t"}),
        event(EventType.RETRYING, {"by": "request", "next_attempt": 2}),
    ):
        assert not shows_operator_fields(stored)
        assert JobEvent.of(stored) == JobEvent.of(stored, operator=True)
