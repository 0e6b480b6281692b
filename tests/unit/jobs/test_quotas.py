"""ActiveJobCounts: the bound that spares most submits a count of their owner's jobs."""

from __future__ import annotations

import uuid

import pytest

from jobline.jobs import quotas
from jobline.jobs.quotas import ActiveJobCounts

LIMIT = 5
RECHECK = 5.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(quotas.time, "monotonic", lambda: now[0])
    return now


def test_an_unknown_owner_is_counted(clock: list[float]) -> None:
    assert not ActiveJobCounts().admits(uuid.uuid4(), LIMIT, RECHECK)


def test_submits_pass_on_the_bound_until_it_reaches_the_limit(clock: list[float]) -> None:
    counts, owner = ActiveJobCounts(), uuid.uuid4()
    counts.counted(owner, 2)  # two unfinished, this submit included
    assert [counts.admits(owner, LIMIT, RECHECK) for _ in range(4)] == [True, True, True, False]


def test_a_stale_bound_is_counted_again(clock: list[float]) -> None:
    counts, owner = ActiveJobCounts(), uuid.uuid4()
    counts.counted(owner, 1)
    clock[0] += RECHECK + 0.1
    assert not counts.admits(owner, LIMIT, RECHECK)
    assert counts._bounds == {}, "stale entries are dropped"


def test_a_bound_at_the_limit_always_counts_again(clock: list[float]) -> None:
    counts, owner = ActiveJobCounts(), uuid.uuid4()
    counts.counted(owner, LIMIT)
    assert not counts.admits(owner, LIMIT, RECHECK)
    counts.counted(owner, LIMIT - 2)  # jobs finished meanwhile
    assert counts.admits(owner, LIMIT, RECHECK)
