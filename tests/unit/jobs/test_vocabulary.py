"""The vocabulary of states and event types has one home: jobs/states.py and jobs/events.py.

Any other module that needs "the final states", "the active states" or "the events that end
a job" imports them, so adding a state cannot leave a stale list behind somewhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import jobline
from jobline.jobs.events import EventType
from jobline.jobs.states import JobState

PACKAGE = Path(jobline.__file__).parent
HOMES = {PACKAGE / "jobs" / "states.py", PACKAGE / "jobs" / "events.py"}
NAMES = {s.value for s in JobState} | {e.value for e in EventType}
ENUMS = {"JobState", "EventType"}


def _vocabulary_word(node: ast.expr) -> bool:
    """`JobState.X`, `EventType.X`, or a string naming a state or an event type."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id in ENUMS
    return isinstance(node, ast.Constant) and node.value in NAMES


def literal_lists(source: str) -> list[int]:
    """Lines of set, tuple and list literals holding two or more states or event types."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Set | ast.Tuple | ast.List)
            and sum(_vocabulary_word(element) for element in node.elts) >= 2
        ):
            found.append(node.lineno)
    return found


def test_the_scan_finds_each_spelling() -> None:
    assert literal_lists("x in (JobState.QUEUED, JobState.PENDING)") == [1]
    assert literal_lists("T = frozenset({EventType.FAILED, EventType.CANCELLED})") == [1]
    assert literal_lists('T = ["succeeded", "failed"]') == [1]
    assert literal_lists("x is JobState.QUEUED or x is JobState.RUNNING") == []
    assert literal_lists('columns = ("job_id", "type")') == []


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if p not in HOMES),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_module_spells_out_a_state_or_event_list(path: Path) -> None:
    lines = literal_lists(path.read_text())
    assert lines == [], (
        f"{path.relative_to(PACKAGE)} lines {lines}: use the sets and predicates of "
        "jobline.jobs.states / jobline.jobs.events"
    )
