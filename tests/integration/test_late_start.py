"""A job's `started` is written late (JOBLINE_STARTED_DEFER_MS, 50 ms by default).

A job that ends within the window commits `started` with its outcome in one transaction
(the store's append_chain, tested on both backends in test_store_contract.py); a longer
one gets `started` when the window runs out, before it reports anything. Either way the
history is the same: submitted, queued, started, ..., with `started` stamped when the job
began running. Real worker processes, the API over HTTP.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from uuid import UUID

import pytest

from jobline.jobs.events import EventType
from jobline.jobs.store import JobStore
from tests.support import Proc, User, assert_history, types_of

pytestmark = pytest.mark.integration

POLL_SECONDS = 0.05


async def test_a_job_failing_at_once_records_started_and_failed_in_order(
    user: User, workers: dict[str, Proc]
) -> None:
    # video.render's payload is validated on the worker: a bad one fails before the job
    # runs a line, well within the window, so `started` goes with `failed`.
    submitted = await user.submit("video.render", {"project": 42})
    job = await user.wait_final(submitted["id"])
    assert job["state"] == "failed"
    assert job["error"]["code"] == "INVALID_PAYLOAD"
    events = await user.events(job["id"])
    assert_history(events, job)
    assert types_of(events) == ["submitted", "queued", "started", "failed"]
    started, failed = events[2], events[3]
    assert started["data"]["delivery"]
    # The worker's host is for operators (test_exposure.py): stored, not shown to the owner.
    (stored,) = [
        e for e in await JobStore().all_events(UUID(job["id"])) if e.type is EventType.STARTED
    ]
    assert stored.data["worker"].startswith("video@") and "worker" not in started["data"]
    assert datetime.fromisoformat(started["at"]) <= datetime.fromisoformat(failed["at"])
    assert job["started_at"] == started["at"]


async def test_a_longer_job_shows_started_while_it_runs_before_any_progress(
    user: User, workers: dict[str, Proc]
) -> None:
    # One chunk of 3 s: its only progress comes at the end, long after the window.
    submitted = await user.submit(
        "music.transcode", {"source": "song.wav", "chunks": 1, "step_seconds": 3}
    )
    seen_running: list[list[str]] = []
    while True:
        r = await user.client.get(f"/api/v1/jobs/{submitted['id']}")
        job = r.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        if job["state"] == "running":
            seen_running.append(types_of(await user.events(job["id"])))
        await asyncio.sleep(POLL_SECONDS)
    assert job["state"] == "succeeded", job
    assert seen_running, "the job was never seen running: its started came with its outcome"
    assert seen_running[0] == ["submitted", "queued", "started"]
    events = await user.events(job["id"])
    assert_history(events, job)
    assert types_of(events) == ["submitted", "queued", "started", "progress", "succeeded"]
