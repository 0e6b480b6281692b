"""The job state machine: which event may follow which state (the types in jobs/events.py)."""

from __future__ import annotations

from enum import StrEnum

from jobline.errors import InvalidTransition
from jobline.jobs.events import EventType


class JobState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
NON_FINAL = frozenset(JobState) - FINAL_STATES

# event type -> (states it may follow, the state it leads to)
TRANSITIONS: dict[EventType, tuple[frozenset[JobState], JobState | None]] = {
    EventType.QUEUED: (frozenset({JobState.PENDING, JobState.RETRYING}), JobState.QUEUED),
    EventType.STARTED: (frozenset({JobState.QUEUED, JobState.RETRYING}), JobState.RUNNING),
    EventType.PROGRESS: (frozenset({JobState.RUNNING}), JobState.RUNNING),
    EventType.RETRYING: (
        frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
        JobState.RETRYING,
    ),
    EventType.SUCCEEDED: (frozenset({JobState.RUNNING}), JobState.SUCCEEDED),
    EventType.FAILED: (NON_FINAL, JobState.FAILED),
    EventType.CANCEL_REQUESTED: (frozenset({JobState.RUNNING}), JobState.RUNNING),
    EventType.CANCELLED: (NON_FINAL, JobState.CANCELLED),
    EventType.WORKER_LOST: (frozenset({JobState.RUNNING}), JobState.QUEUED),
}

# States whose next step is the broker's acceptance (`queued`): the outbox relay publishes
# jobs in these, and a delivery found in one proves the broker took the message.
AWAITING_BROKER = TRANSITIONS[EventType.QUEUED][0]


def next_state(state: JobState | None, event: EventType) -> JobState:
    """The state after `event`, or InvalidTransition when the machine forbids it."""
    if event is EventType.SUBMITTED:
        if state is not None:
            raise InvalidTransition(f"a job is submitted once; it is already {state}")
        return JobState.PENDING
    if state is None:
        raise InvalidTransition(f"{event} before submitted")
    allowed_from, to = TRANSITIONS[event]
    if state not in allowed_from:
        raise InvalidTransition(f"{event} is not allowed in state {state}")
    return to if to is not None else state


def can_follow(state: JobState | None, event: EventType) -> bool:
    """Whether `event` is a legal next event in `state`."""
    try:
        next_state(state, event)
    except InvalidTransition:
        return False
    return True


def may_start(state: JobState) -> bool:
    """Whether a delivered message may begin an attempt of a job in `state`.

    Queued, or still awaiting the broker's `queued`: the delivery proves the broker took
    the message, so the worker records `queued` first and then `started`.
    """
    return can_follow(state, EventType.STARTED) or state in AWAITING_BROKER
