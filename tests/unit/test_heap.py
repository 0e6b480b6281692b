"""The API process's collector: start-up frozen for the app's life, thresholds applied."""

from __future__ import annotations

import gc

from jobline.heap import frozen_after_startup

THRESHOLDS = (50_000, 20, 100)


def test_what_lives_at_startup_is_frozen_until_the_app_stops() -> None:
    before = gc.get_threshold()
    try:
        with frozen_after_startup(THRESHOLDS):
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)


def test_no_thresholds_keeps_cpythons() -> None:
    before = gc.get_threshold()
    with frozen_after_startup(None):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
