"""The delay of a deferred job (queueing/fairness.deferral_seconds) and the slot SELECT."""

from __future__ import annotations

from jobline.config import Settings
from jobline.dialects import MySQL
from jobline.queueing.fairness import deferral_seconds, slot_select

SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    fair_share_defer_seconds=2,
    fair_share_defer_max_seconds=60,
    fair_share_backlog_per_slot=20,
)


def test_a_short_backlog_comes_back_after_the_base_delay() -> None:
    assert deferral_seconds(SETTINGS, cap=1, backlog=0) == 2
    assert deferral_seconds(SETTINGS, cap=1, backlog=20) == 2
    assert deferral_seconds(SETTINGS, cap=3, backlog=60) == 2


def test_a_long_backlog_comes_back_proportionally_later_up_to_the_maximum() -> None:
    assert deferral_seconds(SETTINGS, cap=1, backlog=100) == 10
    assert deferral_seconds(SETTINGS, cap=2, backlog=100) == 5
    assert deferral_seconds(SETTINGS, cap=1, backlog=10_000) == 60
    # The jitter spreads a flood, never past the maximum.
    assert deferral_seconds(SETTINGS, cap=1, backlog=10_000, jitter=1.25) == 60
    assert deferral_seconds(SETTINGS, cap=1, backlog=0, jitter=0.75) == 1.5


def test_the_slot_select_tries_each_slot_once_and_names_the_lock_taken() -> None:
    sql = slot_select(MySQL(), 3)
    assert sql.count("GET_LOCK(") == 3
    assert "DATABASE()" in sql  # lock names are server-wide: the database is in them
    assert sql.endswith("FROM `jobs` WHERE `id`=%s")
