"""A worker on a green pool (gevent, eventlet) runs jobline jobs: one process, its jobs greenlets.

For each pool in turn, a worker `--pool=POOL --concurrency=20` consumes the `green` domain
of tests/green_queues.yaml, which no other worker of the session consumes; an API server
of its own knows that file's job types.

Regression: `jobline worker` once refused these pools because their jobs stayed `queued`:
Celery monkey-patches only as the `celery` command, never under `app.worker_main()`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from jobline.queueing.green import GREEN_POOLS
from tests.conftest import _mysql_parts
from tests.integration.stream_helpers import events_of, live_superuser, read_stream
from tests.integration.test_worker_runtime import descendants
from tests.support import (
    REPO,
    Proc,
    User,
    assert_history,
    register,
    start_server,
    start_worker,
    types_of,
)

pytestmark = pytest.mark.integration

GREEN_QUEUES = REPO / "tests" / "green_queues.yaml"
CONCURRENCY = 20
# Far longer than the test waits: only an interrupted greenlet ends in time.
STUBBORN_SECONDS = 600


@dataclass
class GreenStack:
    pool: str
    base: str
    worker: Proc
    env: dict[str, str]


@pytest.fixture(scope="module", params=sorted(GREEN_POOLS))
def green_stack(
    request: pytest.FixtureRequest, stack_env: dict[str, str], logdir: Path, migrated: Any
) -> Iterator[GreenStack]:
    pool: str = request.param
    env = {**stack_env, "JOBLINE_QUEUES_FILE": str(GREEN_QUEUES)}
    server, base = start_server(env, logdir)
    try:
        worker = start_worker(
            "green", env, logdir, f"--pool={pool}", f"--concurrency={CONCURRENCY}"
        )
    except Exception:
        server.stop()
        raise
    yield GreenStack(pool, base, worker, env)
    worker.stop()
    server.stop()


@pytest.fixture(scope="module")
async def green_user(green_stack: GreenStack) -> AsyncIterator[User]:
    async with httpx.AsyncClient(base_url=green_stack.base, timeout=30) as anonymous:
        email, user_id, token = await register(anonymous)
    async with httpx.AsyncClient(
        base_url=green_stack.base, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as authed:
        yield User(email, uuid.UUID(user_id), token, authed)


def test_the_worker_is_one_process_on_its_green_pool(green_stack: GreenStack) -> None:
    worker = green_stack.worker
    # Patched before anything was imported: the process re-ran itself, keeping its id.
    assert descendants(worker.popen.pid) == {worker.popen.pid}
    assert f"concurrency: {CONCURRENCY} ({green_stack.pool})" in worker.output()
    assert "MonkeyPatchWarning" not in worker.output()
    assert "monkey_patching" not in worker.output()  # eventlet's complaint when late


@pytest.mark.parametrize(
    ("type", "payload", "result_key"),
    [
        ("green.transcode", {"source": "song.wav", "chunks": 5}, "output"),  # sync
        ("green.fingerprint", {"source": "song.wav"}, "fingerprint"),  # async
    ],
)
async def test_sync_and_async_jobs_report_progress_and_succeed(
    green_user: User, type: str, payload: dict[str, Any], result_key: str
) -> None:
    submitted = await green_user.submit(type, payload)
    job = await green_user.wait_final(submitted["id"])
    assert job["state"] == "succeeded", job
    assert result_key in job["result"]
    assert job["progress"] == 100
    events = await green_user.events(job["id"])
    assert_history(events, job)
    names = types_of(events)
    assert names[:3] == ["submitted", "queued", "started"]
    # Its worker's host is for operators (test_exposure.py); the owner sees the delivery.
    assert events[2]["data"]["delivery"] and "worker" not in events[2]["data"]
    assert names[-1] == "succeeded"
    assert names[3:-1] and set(names[3:-1]) == {"progress"}
    assert events[-2]["data"]["progress"] == 100
    assert events[-1]["data"]["result"] == job["result"]


async def test_the_workers_commit_notices_reach_the_api_and_its_streams(
    green_stack: GreenStack, green_user: User
) -> None:
    """The worker's notifier (streaming/notify.py) publishes from its greenlet."""
    admin = await live_superuser(green_stack.base, green_stack.env)
    async with admin.client:
        before = (await admin.client.get("/api/v1/stream/stats")).json()
        assert before["mode"] == "notices"
        job = await green_user.submit("green.transcode", {"source": "s.wav", "chunks": 20})
        frames, closed = await read_stream(green_user.client, f"/api/v1/jobs/{job['id']}/stream")
        after = (await admin.client.get("/api/v1/stream/stats")).json()
    assert closed, "the stream ends after the job's terminal event"
    history = await green_user.events(job["id"])
    assert [f.data for f in events_of(frames)] == history
    assert history[-1]["type"] == "succeeded"
    # The API takes notices only while someone follows (from just after the submit):
    # every event after `started` is the worker's and must have reached it as a notice.
    assert after["notices"] - before["notices"] >= len(history) - 3


async def test_a_transient_error_retries_then_succeeds(green_user: User) -> None:
    submitted = await green_user.submit(
        "green.publish", {"source": "clip.mp4", "flaky_attempts": 2}
    )
    job = await green_user.wait_final(submitted["id"])
    assert job["state"] == "succeeded", job
    assert job["attempt"] == 3 and job["result"]["attempts"] == 3
    events = await green_user.events(job["id"])
    assert_history(events, job)
    assert [e["attempt"] for e in events if e["type"] == "retrying"] == [1, 2]
    assert [e["attempt"] for e in events if e["type"] == "started"] == [1, 2, 3]
    assert types_of(events)[-1] == "succeeded"


async def test_twenty_blocking_jobs_run_at_once_in_the_one_process(green_user: User) -> None:
    """Each job blocks until all twenty wait together: one at a time, none would finish."""
    group = uuid.uuid4().hex
    payload = {"group": group, "parties": CONCURRENCY}
    submitted = [await green_user.submit("green.rendezvous", payload) for _ in range(CONCURRENCY)]
    for each in submitted:
        job = await green_user.wait_final(each["id"], within=180)
        assert job["state"] == "succeeded", job
        assert job["result"] == {"group": group, "parties": CONCURRENCY}
        events = await green_user.events(job["id"])
        assert_history(events, job)
        assert types_of(events) == ["submitted", "queued", "started", "progress", "succeeded"]


async def test_a_job_that_checks_its_flag_stops_when_cancelled(green_user: User) -> None:
    submitted = await green_user.submit(
        "green.transcode", {"source": "long.wav", "chunks": 1000, "step_seconds": 0.05}
    )
    await wait_running(green_user, submitted["id"])
    r = await green_user.client.post(f"/api/v1/jobs/{submitted['id']}/cancel")
    assert r.status_code == 202, r.text
    job = await green_user.wait_final(submitted["id"])
    assert job["state"] == "cancelled", job
    events = await green_user.events(job["id"])
    assert_history(events, job)
    names = types_of(events)
    assert names[-1] == "cancelled" and "cancel_requested" in names
    assert events[-1]["data"]["reason"] == "cancelled by request"


async def test_a_job_ignoring_its_cancellation_is_cancelled_and_its_greenlet_stopped(
    green_stack: GreenStack, green_user: User
) -> None:
    submitted = await green_user.submit("green.stubborn", {"seconds": STUBBORN_SECONDS})
    await wait_running(green_user, submitted["id"])
    r = await green_user.client.post(f"/api/v1/jobs/{submitted['id']}/cancel")
    assert r.status_code == 202, r.text
    job = await green_user.wait_final(submitted["id"])
    assert job["state"] == "cancelled", job
    events = await green_user.events(job["id"])
    assert_history(events, job)
    assert events[-1]["data"]["reason"] == "terminated after the cancel grace period"
    # Interrupted at its next sleep: the task ends long before its STUBBORN_SECONDS (a
    # thread pool cannot do this; the job's code would run on).
    green_stack.worker.wait_for(f"job {job['id']} ignored its cancellation; interrupting")
    green_stack.worker.wait_for(f"Task green.stubborn[{job['id']}] succeeded")
    assert f"job {job['id']} attempt 1 succeeded" not in green_stack.worker.output()


async def test_the_worker_beats_while_its_greenlets_run_jobs(
    green_stack: GreenStack, green_user: User
) -> None:
    """The heartbeat (queueing/heartbeat.py) is a greenlet too under a green pool: it must
    go on beating while jobs run, or the relays would take them for lost."""
    submitted = await green_user.submit(
        "green.transcode", {"source": "beat.wav", "chunks": 400, "step_seconds": 0.05}
    )
    await wait_running(green_user, submitted["id"])
    parts = _mysql_parts(green_stack.env["JOBLINE_DATABASE_URL"])

    def last_beat() -> int:
        with (
            pymysql.connect(
                host=str(parts["host"]),
                port=int(str(parts["port"])),
                user=str(parts["user"]),
                password=str(parts["password"]),
                database=str(parts["db"]),
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.execute(
                "SELECT beat_ms FROM workers WHERE domain = 'green' AND pid = %s",
                (green_stack.worker.popen.pid,),
            )
            rows = cur.fetchall()
            assert len(rows) == 1, green_stack.worker.output()[-3000:]
            return int(rows[0][0])

    first = last_beat()
    for _ in range(600):  # up to 60 s; a beat is due every 5
        await asyncio.sleep(0.1)
        if last_beat() > first:
            break
    else:
        raise AssertionError("the green worker did not beat while its job ran")
    r = await green_user.client.get(f"/api/v1/jobs/{submitted['id']}")
    assert r.json()["state"] == "running", r.json()
    await green_user.client.post(f"/api/v1/jobs/{submitted['id']}/cancel")
    assert (await green_user.wait_final(submitted["id"]))["state"] == "cancelled"


async def wait_running(user: User, job_id: str) -> None:
    """Until the job's `started` is recorded (its first progress may be too)."""
    for _ in range(1200):
        r = await user.client.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        if r.json()["state"] == "running":
            return
        assert r.json()["state"] in ("pending", "queued"), r.json()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"job {job_id} never started")
