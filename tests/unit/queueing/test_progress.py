"""ProgressReporter: coalesced progress writes, and a drain that never waits out the interval."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from jobline.queueing.progress import ProgressReporter, Wrote

# Long enough that a drain waiting out the interval could never pass the test's deadline.
HOUR = 3600.0
DEADLINE = 10.0


class FakeRuntime:
    """What a reporter uses: the process's loop thread, and a write run on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.written: list[int] = []
        self.writers: set[threading.Thread] = set()

    async def write(self, percent: int, message: str | None) -> Wrote:
        self.writers.add(threading.current_thread())
        self.written.append(percent)
        return Wrote(stored=True, stop=False)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@pytest.fixture
def rt() -> Iterator[FakeRuntime]:
    runtime = FakeRuntime()
    yield runtime
    runtime.close()


def reporter(rt: FakeRuntime, interval: float) -> ProgressReporter:
    return ProgressReporter(rt.loop, rt.write, interval, max_message=1000)


def drain_within_deadline(progress: ProgressReporter) -> None:
    """drain() on a thread of its own (as on a job's thread in the worker), with a deadline."""
    done = threading.Event()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            progress.drain()
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(DEADLINE), "drain() is waiting out the progress interval"
    if failures:
        raise failures[0]


def test_drain_writes_the_latest_value_without_waiting_out_the_interval(rt: FakeRuntime) -> None:
    progress = reporter(rt, HOUR)
    for percent in range(1, 101):
        progress.progress(percent, f"{percent}%")
    drain_within_deadline(progress)
    assert rt.written[-1] == 100, "the latest value wins"
    assert len(rt.written) <= 2, "at most the first report and the last are written"


def wait_for_writes(rt: FakeRuntime, count: int) -> None:
    deadline = threading.Event()
    for _ in range(int(DEADLINE * 100)):
        if len(rt.written) >= count:
            return
        deadline.wait(0.01)
    raise AssertionError(f"only {rt.written} written")


def test_the_first_report_is_written_at_once(rt: FakeRuntime) -> None:
    progress = reporter(rt, HOUR)
    progress.progress(10, None)
    wait_for_writes(rt, 1)  # no drain: it goes out on its own, an hour-long interval or not
    assert rt.written == [10]
    drain_within_deadline(progress)
    assert rt.written == [10], "nothing new to write"


def test_a_drain_with_nothing_reported_writes_nothing(rt: FakeRuntime) -> None:
    drain_within_deadline(reporter(rt, HOUR))
    assert rt.written == []


def test_reports_within_an_interval_are_coalesced_and_the_latest_wins(rt: FakeRuntime) -> None:
    progress = reporter(rt, HOUR)
    progress.progress(5, None)
    wait_for_writes(rt, 1)
    for percent in (6, 7, 8):
        progress.progress(percent, None)
    drain_within_deadline(progress)
    assert rt.written == [5, 8]


def test_writes_run_on_the_loop_without_a_hop_to_another_thread(rt: FakeRuntime) -> None:
    # The flusher awaits the write where it runs: on the loop's own thread, never a thread
    # that would hand the write back to the loop (one wake-up of each per report).
    progress = reporter(rt, HOUR)
    progress.progress(1, None)
    wait_for_writes(rt, 1)
    progress.progress(2, None)
    drain_within_deadline(progress)
    assert rt.written == [1, 2]
    assert rt.writers == {rt._thread}
