"""Which gone workers a watch judges lost (queueing/lost_workers.py `judged`)."""

from __future__ import annotations

from jobline.jobs.workers import Gone
from jobline.queueing.lost_workers import judged

FOUND = [Gone("music@a:1", stopped=True), Gone("music@b:2", stopped=False)]


def test_a_watch_that_just_started_judges_only_the_workers_known_stopped() -> None:
    assert judged(FOUND, watched_for=0.0, bound=30.0) == ["music@a:1"]
    assert judged(FOUND, watched_for=29.9, bound=30.0) == ["music@a:1"]


def test_after_a_whole_bound_of_watching_silence_counts_too() -> None:
    assert judged(FOUND, watched_for=30.0, bound=30.0) == ["music@a:1", "music@b:2"]


def test_nothing_gone_nothing_judged() -> None:
    assert judged([], watched_for=100.0, bound=30.0) == []
