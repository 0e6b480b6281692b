"""The job state machine: which event may follow which state, and the sets everyone asks about.

The table below is the definition; README.md ("What it is") describes the states and
events users see. Every other module asks this one (FINAL_STATES, ACTIVE_STATES,
FINAL_EVENTS, may_start(), ...) instead of spelling out states or event types itself, so
adding a state touches this module, its migration and the code that must treat it
differently (tests/unit/jobs/test_vocabulary.py keeps state lists from appearing elsewhere).

This module imports only the standard library and jobline's own plain modules: the HTTP
client (jobline.client) uses it without the server's dependencies.
"""

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
# In declaration order, so SQL parameters and metric labels come out the same each time.
ACTIVE_STATES: tuple[JobState, ...] = tuple(s for s in JobState if s not in FINAL_STATES)
NON_FINAL = frozenset(ACTIVE_STATES)

# event type -> (states it may follow, the state it leads to)
#
# The property JobStore relies on (decision.surely_new; tests/unit/jobs/test_states.py states
# it): within one attempt, leaving self-loops aside, no path comes back to a state it left.
# That is, the graph of transitions by events other than ATTEMPT_ENDING ones, without
# self-loops, has no cycle. So an event that moves a job out of its current state cannot
# have been recorded already in this attempt, and the store skips looking for it. A new
# transition that closes such a cycle must end the attempt, or the store must look.
TRANSITIONS: dict[EventType, tuple[frozenset[JobState], JobState]] = {
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
    EventType.REQUEUED: (frozenset({JobState.QUEUED}), JobState.QUEUED),
}

# The events that end a job (its stream closes after one; a later retry opens a new one).
FINAL_EVENTS = frozenset(event for event, (_, to) in TRANSITIONS.items() if to in FINAL_STATES)
# States whose next step is the broker's acceptance (`queued`): the outbox relay publishes
# jobs in these, and a delivery found in one proves the broker took the message.
AWAITING_BROKER = TRANSITIONS[EventType.QUEUED][0]
# Final states a job leaves again through the retry endpoint (a new attempt).
RETRYABLE_STATES = frozenset(s for s in FINAL_STATES if s in TRANSITIONS[EventType.RETRYING][0])


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
    return to


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


def may_cancel(state: JobState) -> bool:
    """Whether a cancel request applies to a job in `state` (it has not ended)."""
    return can_follow(state, EventType.CANCELLED)


def may_retry(state: JobState) -> bool:
    """Whether the retry endpoint may give a job in `state` a new attempt."""
    return state in RETRYABLE_STATES
