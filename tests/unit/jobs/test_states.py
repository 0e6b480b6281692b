"""The state machine, checked against a table written out by hand, and the property the
store relies on."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from jobline.errors import InvalidTransition
from jobline.jobs.decision import surely_new as _surely_new
from jobline.jobs.events import ATTEMPT_ENDING, REPEATABLE, Event, EventType
from jobline.jobs.projection import JobView, apply, start
from jobline.jobs.states import (
    ACTIVE_STATES,
    AWAITING_BROKER,
    FINAL_EVENTS,
    FINAL_STATES,
    RETRYABLE_STATES,
    TRANSITIONS,
    JobState,
    can_follow,
    may_cancel,
    may_retry,
    may_start,
    next_state,
)

S = JobState
E = EventType

# Every legal (state, event) -> next state, spelled out independently of TRANSITIONS.
LEGAL: dict[tuple[JobState, EventType], JobState] = {
    (S.PENDING, E.QUEUED): S.QUEUED,
    (S.RETRYING, E.QUEUED): S.QUEUED,
    (S.QUEUED, E.STARTED): S.RUNNING,
    (S.RETRYING, E.STARTED): S.RUNNING,
    (S.RUNNING, E.PROGRESS): S.RUNNING,
    (S.RUNNING, E.CANCEL_REQUESTED): S.RUNNING,
    (S.RUNNING, E.SUCCEEDED): S.SUCCEEDED,
    (S.RUNNING, E.RETRYING): S.RETRYING,
    # the retry endpoint: a failed or cancelled job gets a new attempt
    (S.FAILED, E.RETRYING): S.RETRYING,
    (S.CANCELLED, E.RETRYING): S.RETRYING,
    (S.RUNNING, E.WORKER_LOST): S.QUEUED,
    # the broker lost the message: published again, still queued (a new generation)
    (S.QUEUED, E.REQUEUED): S.QUEUED,
    **{(s, E.FAILED): S.FAILED for s in (S.PENDING, S.QUEUED, S.RUNNING, S.RETRYING)},
    **{(s, E.CANCELLED): S.CANCELLED for s in (S.PENDING, S.QUEUED, S.RUNNING, S.RETRYING)},
}
AFTER_SUBMIT = [e for e in EventType if e is not E.SUBMITTED]


def test_transitions_table_covers_every_event_but_submitted() -> None:
    assert set(TRANSITIONS) == set(AFTER_SUBMIT)


@pytest.mark.parametrize(("state", "event"), sorted(LEGAL), ids=lambda v: str(v))
def test_every_legal_transition_leads_to_its_state(state: JobState, event: EventType) -> None:
    assert next_state(state, event) is LEGAL[state, event]
    assert can_follow(state, event)


@pytest.mark.parametrize(
    ("state", "event"),
    [pair for pair in itertools.product(JobState, AFTER_SUBMIT) if pair not in LEGAL],
    ids=lambda v: str(v),
)
def test_every_other_transition_is_refused(state: JobState, event: EventType) -> None:
    with pytest.raises(InvalidTransition) as caught:
        next_state(state, event)
    assert str(event) in caught.value.message
    assert not can_follow(state, event)


def test_a_final_state_only_leaves_through_retrying() -> None:
    for state, event in itertools.product(FINAL_STATES, AFTER_SUBMIT):
        assert can_follow(state, event) == (
            event is E.RETRYING and state in {S.FAILED, S.CANCELLED}
        ), (state, event)


def test_submitted_is_only_the_first_event() -> None:
    assert next_state(None, E.SUBMITTED) is S.PENDING
    for state in JobState:
        with pytest.raises(InvalidTransition, match="submitted once"):
            next_state(state, E.SUBMITTED)


@pytest.mark.parametrize("event", AFTER_SUBMIT)
def test_nothing_comes_before_submitted(event: EventType) -> None:
    with pytest.raises(InvalidTransition, match="before submitted"):
        next_state(None, event)


def test_final_states() -> None:
    assert {s for s in JobState if s.is_final} == {S.SUCCEEDED, S.FAILED, S.CANCELLED}


def _returns_within_an_attempt(
    table: dict[EventType, tuple[frozenset[JobState], JobState]],
) -> list[JobState]:
    """The states a job can leave and come back to without an attempt-ending event.

    Self-loops (progress, cancel_requested) do not leave their state and are left out.
    """
    moves: dict[JobState, set[JobState]] = {state: set() for state in JobState}
    for event, (sources, to) in table.items():
        if event not in ATTEMPT_ENDING:
            for source in sources:
                if source is not to:
                    moves[source].add(to)
    returning = []
    for state in JobState:
        seen, todo = set(), list(moves[state])
        while todo:
            here = todo.pop()
            if here not in seen:
                seen.add(here)
                todo.extend(moves[here])
        if state in seen:
            returning.append(state)
    return returning


def test_no_state_is_left_and_reached_again_within_an_attempt() -> None:
    """The property decision.surely_new (the store's skipped look) relies on (written above states.TRANSITIONS).

    An event that moves a job out of its state cannot have been recorded already in this
    attempt, because no path without retrying or worker_lost comes back: the store skips
    looking for an earlier copy of it. A table change that breaks this fails here.
    """
    assert _returns_within_an_attempt(TRANSITIONS) == []


def test_the_property_check_catches_a_table_that_breaks_it() -> None:
    # A hypothetical `requeued` (running -> queued, same attempt) closes a cycle.
    broken = dict(TRANSITIONS)
    broken[E.PROGRESS] = (frozenset({S.RUNNING}), S.QUEUED)
    assert S.QUEUED in _returns_within_an_attempt(broken)
    assert S.RUNNING in _returns_within_an_attempt(broken)


def _paths(depth: int) -> Iterator[tuple[JobView, set[EventType]]]:
    """Every job reachable in `depth` events after submitted, with the event types recorded
    in its current attempt."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    first = Event(uuid.uuid4(), 1, E.SUBMITTED, 1, at, {"type": "t", "queue": "q"})
    todo = [(start(first), {E.SUBMITTED}, 0)]
    while todo:
        view, recorded, steps = todo.pop()
        yield view, recorded
        if steps == depth:
            continue
        for event in AFTER_SUBMIT:
            if can_follow(view.state, event):
                after = apply(view, Event(view.id, view.last_seq + 1, event, view.attempt, at))
                same = after.attempt == view.attempt
                todo.append((after, recorded | {event} if same else set(), steps + 1))


def test_an_event_the_store_calls_surely_new_was_not_recorded_in_the_attempt() -> None:
    """decision.surely_new against every path of up to 7 events: never a false 'new'."""
    checked = 0
    for view, recorded in _paths(7):
        for event in AFTER_SUBMIT:
            if event not in REPEATABLE and _surely_new(view, event, view.attempt):
                assert event not in recorded, (view.state, event, recorded)
                checked += 1
    assert checked > 1000  # the walk covered the table, not a handful of paths


def test_the_named_sets_follow_from_the_table() -> None:
    assert ACTIVE_STATES == (S.PENDING, S.QUEUED, S.RUNNING, S.RETRYING)
    assert {E.SUCCEEDED, E.FAILED, E.CANCELLED} == FINAL_EVENTS
    assert {S.PENDING, S.RETRYING} == AWAITING_BROKER
    assert {S.FAILED, S.CANCELLED} == RETRYABLE_STATES
    assert {s for s in JobState if may_start(s)} == {S.PENDING, S.QUEUED, S.RETRYING}
    assert {s for s in JobState if may_cancel(s)} == set(ACTIVE_STATES)
    assert {s for s in JobState if may_retry(s)} == {S.FAILED, S.CANCELLED}
    for event in FINAL_EVENTS:
        assert next_state(S.RUNNING, event).is_final
