"""Progress coalescing on the worker: latest wins, one write per interval, nothing stranded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from jobline.config import get_settings
from jobline.queueing.progress import ProgressReporter, Wrote

INTERVAL = 0.05
WAIT = 5.0


class FakeRuntime:
    """The worker runtime's loop thread, with a write into a list that a test can hold up."""

    def __init__(self) -> None:
        self.settings = get_settings()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.written: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.changed = threading.Condition()

    async def write(self, percent: int, message: str | None) -> Wrote:
        self.entered.set()
        # Held up without blocking the loop, as a database write in flight would be.
        assert await asyncio.to_thread(self.release.wait, WAIT)
        with self.changed:
            self.written.append(percent)
            self.changed.notify_all()
        return Wrote(stored=True, stop=False)

    def wait_written(self, value: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: value in self.written, WAIT), self.written

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)


@pytest.fixture
def rt() -> Iterator[FakeRuntime]:
    runtime = FakeRuntime()
    yield runtime
    runtime.close()


def reporter(rt: FakeRuntime) -> ProgressReporter:
    return ProgressReporter(rt.loop, rt.write, INTERVAL, rt.settings.max_progress_message_chars)


def test_a_value_reported_during_a_write_is_written_without_another_report(
    rt: FakeRuntime,
) -> None:
    progress = reporter(rt)
    rt.release.clear()
    progress.progress(10, "first")
    assert rt.entered.wait(WAIT)
    progress.progress(20, "while the first is being written")
    rt.release.set()
    # No further report and no drain: the value still gets written.
    rt.wait_written(20)
    assert rt.written == [10, 20]
    progress.drain()
    assert rt.written == [10, 20]


def test_a_tight_loop_is_coalesced_latest_wins(rt: FakeRuntime) -> None:
    progress = reporter(rt)
    calls = 50_000
    rt.release.clear()  # the first write is in flight for the whole loop
    for i in range(calls):
        progress.progress(i * 100 // calls, f"call {i}")
        if i == 0:
            assert rt.entered.wait(WAIT)
    rt.release.set()
    progress.drain()
    assert rt.written == [0, 99], "the first value, then only the latest"


def test_drain_writes_the_value_still_pending(rt: FakeRuntime) -> None:
    progress = reporter(rt)
    progress.progress(30, None)
    rt.wait_written(30)
    progress.progress(60, None)  # inside the interval: not written yet
    progress.progress(100, None)
    progress.drain()
    assert rt.written == [30, 100]
