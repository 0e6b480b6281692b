"""What appending an event to a job does: a duplicate, a refusal, or the event and the
job's view after it. Pure: the store and the worker's direct writer ask it, inside their
transactions, and tests ask it without a database (tests/unit/jobs/test_decision.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from jobline.errors import InvalidTransition
from jobline.jobs.events import REPEATABLE, Event, EventType
from jobline.jobs.projection import JobView, apply
from jobline.jobs.states import can_follow, next_state


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of an append: the job's view, and the event, or None for a duplicate.

    For a duplicate, `existing` is the event recorded earlier for the same attempt.
    """

    view: JobView
    event: Event | None
    existing: Event | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One event of an append_chain: its type, data and, if not now, when it happened."""

    type: EventType
    data: dict[str, Any] | None = None
    at: datetime | None = None


def attempt_of(view: JobView, attempt: int | None) -> int:
    """The attempt an event is for: the one pinned by its caller, else the job's current."""
    return view.attempt if attempt is None else attempt


def surely_new(view: JobView, type: EventType, attempt: int) -> bool:
    """Whether `type` cannot have been recorded already in this attempt, so no look is needed.

    A legal transition of the current attempt that leaves its state cannot have happened
    in this attempt before: no path of the state machine leads back to its source state
    without an event that ends the attempt (retrying, worker_lost). Self-loops
    (cancel_requested: running -> running) are not covered and are looked up.
    """
    if attempt != view.attempt or not can_follow(view.state, type):
        return False
    return next_state(view.state, type) is not view.state


def needs_lookup(view: JobView, type: EventType, attempt: int | None) -> bool:
    """Whether deciding needs the attempt's earlier event of `type` (a duplicate delivery?)."""
    return type not in REPEATABLE and not surely_new(view, type, attempt_of(view, attempt))


def decide(
    view: JobView,
    type: EventType,
    data: dict[str, Any] | None,
    attempt: int | None,
    at: datetime,
    earlier: Event | None = None,
) -> Appended:
    """The outcome of appending `type` to the job at `view`.

    `earlier` is the event of that type recorded before in the same attempt, when
    needs_lookup() said to look for it: a non-repeatable event seen before is a duplicate
    (nothing to write). An event for an attempt other than the current one, or a
    transition the state machine refuses, raises InvalidTransition.
    """
    at_attempt = attempt_of(view, attempt)
    if earlier is not None and type not in REPEATABLE:
        return Appended(view, None, earlier)
    if at_attempt != view.attempt:
        raise InvalidTransition(
            f"{type} for attempt {at_attempt}, but the job is at attempt {view.attempt}"
        )
    event = Event(view.id, view.last_seq + 1, type, at_attempt, at, data or {})
    return Appended(apply(view, event), event)


def plan(
    expect: JobView, steps: Sequence[Step], attempt: int | None, clock: Callable[[], datetime]
) -> list[Appended] | None:
    """The outcomes of `steps` on `expect`, one after the other, when none needs a look at
    earlier events and every one is allowed; None otherwise (the caller then reads, locks
    and decides step by step). `clock` times the steps given no time."""
    planned: list[Appended] = []
    view = expect
    for step in steps:
        if needs_lookup(view, step.type, attempt):
            return None
        try:
            done = decide(view, step.type, step.data, attempt, step.at or clock())
        except InvalidTransition:
            return None
        planned.append(done)
        view = done.view
    return planned


def per_owner(views: Sequence[JobView]) -> dict[UUID, int]:
    """How many of the views each owner has (jobs of no owner are not counted)."""
    wanted: dict[UUID, int] = {}
    for view in views:
        if view.owner_id is not None:
            wanted[view.owner_id] = wanted.get(view.owner_id, 0) + 1
    return wanted


def admitted(views: Sequence[JobView], allowed: dict[UUID, int]) -> list[bool]:
    """Which of the views fit: each owner's first `allowed[owner]` (jobs of no owner all)."""
    left = dict(allowed)
    keep = []
    for view in views:
        if view.owner_id is None:
            keep.append(True)
            continue
        ok = left.get(view.owner_id, 0) > 0
        if ok:
            left[view.owner_id] -= 1
        keep.append(ok)
    return keep
