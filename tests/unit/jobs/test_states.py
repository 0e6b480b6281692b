"""The state machine, checked against a table written out by hand."""

from __future__ import annotations

import itertools

import pytest

from jobline.errors import InvalidTransition
from jobline.jobs.events import EventType
from jobline.jobs.states import FINAL_STATES, TRANSITIONS, JobState, can_follow, next_state

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
