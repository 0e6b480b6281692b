"""Windows: the one thread per process that has a late `started` written when its window ends.

Opening and closing a window only takes a lock (no visit to the event loop per job); a
window still open at its end is handed over once, never before its end; a closed one never.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from jobline.queueing.late_start import LateStart, Windows

# Waits for what must happen; never a bound on how soon (the machines are shared).
DEADLINE = 10.0


class FakeLate:
    """What Windows uses of a LateStart: its window's length, and the hand-over."""

    def __init__(self, defer: float) -> None:
        self.defer = defer
        self.opened_at = 0.0
        self.ran_out: list[float] = []
        self.handed = threading.Event()

    def window_ran_out(self) -> None:
        self.ran_out.append(time.monotonic())
        self.handed.set()


def opened(windows: Windows, late: FakeLate) -> FakeLate:
    late.opened_at = time.monotonic()
    windows.open(cast(LateStart, cast(Any, late)))
    return late


def test_an_open_window_is_handed_over_once_after_it_ends() -> None:
    windows = Windows()
    late = opened(windows, FakeLate(0.05))
    assert late.handed.wait(DEADLINE)
    time.sleep(0.2)  # four more windows' worth: a second hand-over would show by now
    assert len(late.ran_out) == 1
    assert late.ran_out[0] >= late.opened_at + late.defer
    assert windows.ran_out == 1


def test_a_closed_window_is_never_handed_over() -> None:
    windows = Windows()
    closed = opened(windows, FakeLate(0.05))
    windows.close(cast(LateStart, cast(Any, closed)))
    # A window opened after it, left open: once it is handed over, the closed one's end
    # has long passed.
    still_open = opened(windows, FakeLate(0.05))
    assert still_open.handed.wait(DEADLINE)
    assert closed.ran_out == []
    assert (windows.opened, windows.ran_out) == (2, 1)


def test_the_thread_sleeps_while_no_window_is_open_and_wakes_for_the_next() -> None:
    windows = Windows()
    first = opened(windows, FakeLate(0.02))
    assert first.handed.wait(DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while not windows.idle:
        assert time.monotonic() < deadline, "the thread never went idle"
        time.sleep(0.01)
    second = opened(windows, FakeLate(0.02))
    assert second.handed.wait(DEADLINE)
    assert len(first.ran_out) == len(second.ran_out) == 1


def test_many_windows_ending_together_are_handed_over_in_one_look() -> None:
    windows = Windows()
    lates = [opened(windows, FakeLate(0.05)) for _ in range(50)]
    for late in lates:
        assert late.handed.wait(DEADLINE)
    assert all(len(late.ran_out) == 1 for late in lates)
    assert windows.ran_out == 50
