"""The job as a pure projection of its events: ``project(events) -> JobView``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from jobline.errors import InvalidTransition
from jobline.jobs.events import ATTEMPT_ENDING, FIRST_GENERATION, Event, EventType
from jobline.jobs.states import JobState, next_state


@dataclass(frozen=True, slots=True)
class JobView:
    """What the `jobs` table holds for one job; derived entirely from its events."""

    id: UUID
    type: str
    queue: str
    state: JobState
    owner_id: UUID | None
    payload: dict[str, Any]
    priority: int
    created_at: datetime
    updated_at: datetime
    attempt: int = 1
    progress: int = 0
    message: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    last_seq: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    task_id: str | None = None
    # The node name of the worker running the job (from its `started`), while it runs.
    worker: str | None = None
    # Which publish of the job is current (jobs/events.py, REQUEUED): older messages are dropped.
    generation: int = FIRST_GENERATION


def start(event: Event) -> JobView:
    """The view a `submitted` event creates."""
    if event.type is not EventType.SUBMITTED:
        raise InvalidTransition(f"the first event of a job must be submitted, not {event.type}")
    data = event.data
    owner = data.get("owner_id")
    return JobView(
        id=event.job_id,
        type=data["type"],
        queue=data["queue"],
        state=JobState.PENDING,
        owner_id=UUID(owner) if owner else None,
        payload=data.get("payload", {}),
        priority=data.get("priority", 0),
        created_at=event.at,
        updated_at=event.at,
        attempt=event.attempt,
        last_seq=event.seq,
    )


def apply(view: JobView, event: Event) -> JobView:
    """The view after one more event; raises InvalidTransition on an illegal one."""
    state = next_state(view.state, event.type)
    changes: dict[str, Any] = {"state": state, "last_seq": event.seq, "updated_at": event.at}
    data = event.data
    match event.type:
        case EventType.QUEUED:
            changes |= {"task_id": data.get("task_id", view.task_id)}
        case EventType.STARTED:
            changes |= {"started_at": event.at, "finished_at": None, "cancel_requested": False}
            changes |= {"worker": data.get("worker")}
            changes |= {"progress": 0, "message": None, "error": None, "result": None}
        case EventType.PROGRESS:
            changes |= {"progress": data.get("progress", view.progress)}
            changes |= {"message": data.get("message", view.message)}
        case EventType.SUCCEEDED:
            changes |= {"result": data.get("result"), "progress": 100, "finished_at": event.at}
        case EventType.FAILED:
            changes |= {"error": data.get("error"), "finished_at": event.at}
        case EventType.CANCELLED:
            changes |= {"finished_at": event.at, "cancel_requested": False}
        case EventType.CANCEL_REQUESTED:
            changes |= {"cancel_requested": True}
        case EventType.RETRYING:
            changes |= {"error": data.get("error"), "finished_at": None}
        case EventType.WORKER_LOST:
            # Found by its silence (jobs/workers.py), the next attempt is a new message, whose
            # task id the event names: a late redelivery of the old one is then dropped.
            changes |= {"task_id": data.get("task_id", view.task_id)}
        case EventType.REQUEUED:
            changes |= {"generation": data.get("generation", view.generation + 1)}
    if event.type in ATTEMPT_ENDING:
        changes["attempt"] = event.attempt + 1
    if state is not JobState.RUNNING:
        # Only a running job has a worker: rows of jobs that ended before workers were
        # named (before migration 9) then replay as stored.
        changes["worker"] = None
    return dataclasses.replace(view, **changes)


def project(events: Iterable[Event]) -> JobView:
    """Fold a job's events, oldest first, into its view."""
    iterator = iter(events)
    try:
        view = start(next(iterator))
    except StopIteration:
        raise InvalidTransition("a job needs at least its submitted event") from None
    for event in iterator:
        view = apply(view, event)
    return view
