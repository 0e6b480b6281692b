"""decide() and plan(): what an append does to a job, tested without a database.

The store (its locked path, its compare-and-set path, append_many) and the worker's direct
writer all decide through these; the contract tests check the writes around them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from jobline.errors import InvalidTransition
from jobline.jobs.decision import Appended, Step, decide, needs_lookup, plan, surely_new
from jobline.jobs.events import Event, EventType
from jobline.jobs.projection import JobView, apply, start
from jobline.jobs.states import JobState

E = EventType
JOB = uuid.UUID("00000000-0000-4000-8000-000000000001")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DATA = {"type": "music.transcode", "queue": "music", "payload": {}, "priority": 0}


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(*types: EventType) -> JobView:
    """The view after `submitted` and `types`, all in attempt 1, one second apart."""
    view = start(Event(JOB, 1, E.SUBMITTED, 1, T0, DATA))
    for type in types:
        view = apply(view, Event(JOB, view.last_seq + 1, type, view.attempt, at(view.last_seq)))
    return view


def clock() -> datetime:
    return at(100)


def test_a_legal_event_is_numbered_after_the_last_and_applied() -> None:
    queued = job(E.QUEUED)
    done = decide(queued, E.STARTED, {"worker": "w"}, None, at(9))
    assert done.event == Event(JOB, 3, E.STARTED, 1, at(9), {"worker": "w"})
    assert done.view == apply(queued, done.event)
    assert done.view.state is JobState.RUNNING
    assert done.existing is None


def test_an_event_seen_before_in_the_attempt_is_a_duplicate_that_writes_nothing() -> None:
    running = job(E.QUEUED, E.STARTED)
    earlier = Event(JOB, 3, E.STARTED, 1, at(2))
    assert decide(running, E.STARTED, {}, 1, at(9), earlier) == Appended(running, None, earlier)


def test_a_repeatable_event_is_appended_whatever_came_before() -> None:
    running = job(E.QUEUED, E.STARTED)
    earlier = Event(JOB, 4, E.PROGRESS, 1, at(3), {"percent": 10})
    done = decide(running, E.PROGRESS, {"percent": 20}, 1, at(9), earlier)
    assert done.event is not None and done.event.seq == 4


def test_an_event_for_another_attempt_is_refused() -> None:
    running = job(E.QUEUED, E.STARTED)
    with pytest.raises(InvalidTransition, match="attempt 2, but the job is at attempt 1"):
        decide(running, E.SUCCEEDED, {}, 2, at(9))
    with pytest.raises(InvalidTransition):
        decide(running, E.PROGRESS, {}, 2, at(9))


def test_a_transition_the_state_machine_refuses_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        decide(job(E.QUEUED), E.SUCCEEDED, {}, None, at(9))


def test_a_look_at_earlier_events_is_needed_only_when_a_duplicate_is_possible() -> None:
    queued, running = job(E.QUEUED), job(E.QUEUED, E.STARTED)
    # Leaves its state in the current attempt: it cannot have happened in it before.
    assert surely_new(queued, E.STARTED, 1)
    assert not needs_lookup(queued, E.STARTED, None)
    # A self-loop (running -> running) may have: look.
    assert needs_lookup(running, E.CANCEL_REQUESTED, None)
    # Another attempt, or an illegal transition (a redelivered `started`): look.
    assert needs_lookup(running, E.SUCCEEDED, 2)
    assert needs_lookup(running, E.STARTED, 1)
    # Repeatable events are never duplicates.
    assert not needs_lookup(running, E.PROGRESS, 1)


def test_a_plan_chains_its_steps_each_on_the_view_the_last_left() -> None:
    queued = job(E.QUEUED)
    planned = plan(queued, [Step(E.STARTED, {}, at(5)), Step(E.SUCCEEDED, {"result": 1})], 1, clock)
    assert planned is not None
    assert [(d.event.seq, d.event.type, d.event.at) for d in planned if d.event] == [
        (3, E.STARTED, at(5)),
        (4, E.SUCCEEDED, at(100)),  # no time given: the clock's
    ]
    assert planned[-1].view.state is JobState.SUCCEEDED
    assert planned[0].view == apply(queued, planned[0].event)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("steps", "attempt"),
    [
        ([Step(E.CANCEL_REQUESTED)], None),  # needs a look at earlier events
        ([Step(E.STARTED), Step(E.STARTED)], None),  # the second is a duplicate or illegal
        ([Step(E.SUCCEEDED)], None),  # illegal from queued
        ([Step(E.PROGRESS)], 2),  # another attempt: the locked path refuses it
    ],
)
def test_a_plan_gives_way_whenever_the_locked_path_must_decide(
    steps: list[Step], attempt: int | None
) -> None:
    assert plan(job(E.QUEUED), steps, attempt, clock) is None


def test_a_second_requeued_in_one_attempt_is_recorded_not_taken_for_a_duplicate() -> None:
    # A job may be lost and published again more than once in one attempt: each requeued
    # is a new generation, never a redelivery of the one before.
    queued = job(E.QUEUED, E.REQUEUED)
    assert not needs_lookup(queued, E.REQUEUED, 1)
    earlier = Event(JOB, 3, E.REQUEUED, 1, at(2), {"generation": 2})
    done = decide(queued, E.REQUEUED, {"generation": 3}, 1, at(9), earlier)
    assert done.event is not None and done.view.generation == 3


def test_a_queued_published_again_after_a_requeue_is_a_duplicate() -> None:
    # The relay publishes the requeued job's outbox row and records `queued`: the job is
    # queued already, so it looks for the attempt's `queued`, finds it and writes nothing.
    requeued = job(E.QUEUED, E.REQUEUED)
    assert needs_lookup(requeued, E.QUEUED, 1)
    earlier = Event(JOB, 2, E.QUEUED, 1, at(1))
    assert decide(requeued, E.QUEUED, {}, 1, at(9), earlier).event is None
