"""ProgressReporter: coalesced progress writes, and a drain that never waits out the interval."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest

from jobline.jobs.events import EventType
from jobline.queueing.worker import ProgressReporter

# Long enough that a drain waiting out the interval could never pass the test's deadline.
HOUR = 3600.0
DEADLINE = 10.0


class FakeRuntime:
    """The two things a reporter uses: the process's loop thread, and record()."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.written: list[int] = []

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def record(
        self, job_id: uuid.UUID, type: EventType, data: dict[str, Any], *, attempt: int
    ) -> Any:
        assert type is EventType.PROGRESS
        self.written.append(data["progress"])
        return SimpleNamespace(view=SimpleNamespace(cancel_requested=False))

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
    return ProgressReporter(rt, uuid.uuid4(), 1, interval)  # type: ignore[arg-type]


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
