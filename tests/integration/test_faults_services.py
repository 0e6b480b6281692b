"""Faults of the processes and services under a batch of jobs: kill -9 of workers, RabbitMQ
stopped during a submit burst, MariaDB restarted while workers record events.

RabbitMQ and MariaDB are shared with everyone's test runs: the outages are kept to a few
seconds, and they use `rabbitmqctl stop_app`/`start_app` and `mariadb-admin shutdown` then
`deploy/local/services up`, never `services down`. Each test prints a FAULT-FIGURES line.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import chaos
from tests.chaos import ChaosStack, assert_clean, running_stack, stack_client_fixture
from tests.integration.stream_helpers import Frame, events_of, read_stream

pytestmark = pytest.mark.integration

WAIT = 240.0
OUTAGE_SECONDS = 3.0


@pytest.fixture(scope="module")
def stack(logdir: Path, var_dir: Path) -> Iterator[ChaosStack]:
    with running_stack("services", logdir, var_dir) as s:
        yield s


client = stack_client_fixture()


async def test_kill_9_of_workers_at_random_moments_loses_nothing(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    rng = random.Random(4)
    specs = [("chaos.steady", {"steps": 10, "step_seconds": 0.1})] * 40
    ids, _ = await stack.submit_many(client, specs)
    faults = {"child": 0, "worker": 0}
    for _ in range(8):
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        if rng.random() < 0.7:
            if stack.kill_child("chaos", rng):
                faults["child"] += 1
        else:
            await asyncio.to_thread(stack.kill_worker, "chaos")
            faults["worker"] += 1

    figures = stack.figures("kill-9", ids, faults=sum(faults.values()), within=WAIT)
    figures.extra |= {f"killed_{k}": v for k, v in faults.items()}
    figures.extra["worker_lost_events"] = stack.query(
        "SELECT COUNT(*) FROM job_events WHERE type = 'worker_lost'"
    )[0][0]
    print(figures.line())
    assert_clean(figures)
    assert sum(faults.values()) >= 5


async def test_rabbitmq_stopped_during_a_submit_burst_loses_nothing(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    short = {"steps": 4, "step_seconds": 0.05}
    before, _ = await stack.submit_many(client, [("chaos.steady", short)] * 20)
    await asyncio.to_thread(chaos.rabbitmq_stop)
    outage_began = time.monotonic()
    try:
        during, latencies = await stack.submit_many(client, [("chaos.steady", short)] * 20)
        pending = sum(1 for s in stack.states(during).values() if s == "pending")
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_began)))
    finally:
        await asyncio.to_thread(chaos.rabbitmq_start)
    outage = time.monotonic() - outage_began
    after, _ = await stack.submit_many(client, [("chaos.steady", short)] * 20)

    ids = before + during + after
    figures = stack.figures("rabbitmq-outage", ids, faults=1, within=WAIT)
    figures.extra |= {
        "outage_seconds": round(outage, 1),
        "posted_during_outage": len(during),
        "pending_at_post": pending,
        "slowest_post_during_outage_s": round(max(latencies), 2),
    }
    print(figures.line())
    assert_clean(figures)
    assert figures.outcomes == {"succeeded": len(ids)}
    # Every POST during the outage was answered (202) with its job stored and pending.
    assert pending == len(during)


async def test_a_stream_open_through_a_rabbitmq_outage_misses_nothing(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # The API's feed loses its notices with the broker and falls back to its safety-net
    # read; the follower must still get every event, in order, once, and the end.
    (job_id,), _ = await stack.submit_many(
        client, [("chaos.steady", {"steps": 60, "step_seconds": 0.1})]
    )
    follower = httpx.AsyncClient(
        base_url=stack.base_url,
        headers={"Authorization": client.headers["Authorization"]},
        timeout=httpx.Timeout(30.0, read=60.0),
    )
    async with follower:
        reading = asyncio.create_task(
            read_stream(follower, f"/api/v1/jobs/{job_id}/stream", within=WAIT)
        )
        deadline = time.monotonic() + WAIT
        while stack.states([job_id])[job_id] != "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await asyncio.to_thread(chaos.rabbitmq_stop)
        try:
            await asyncio.sleep(OUTAGE_SECONDS)
        finally:
            await asyncio.to_thread(chaos.rabbitmq_start)
        frames, closed = await reading
    assert closed, "the stream ends after the job's terminal event"
    streamed = [f.data for f in events_of(frames)]
    history: list[dict[str, object]] = []
    params: dict[str, str | int] = {"size": 100}
    while True:
        page = (await client.get(f"/api/v1/jobs/{job_id}/events", params=params)).json()
        history += page["items"]
        if not page["next_page"]:
            break
        params["cursor"] = page["next_page"]
    assert streamed == history, "every event once, in order"
    last = streamed[-1]
    assert last is not None  # events_of keeps only the frames with data
    assert last["type"] == "succeeded"
    figures = stack.figures("stream-through-rabbitmq-outage", [job_id], faults=1, within=WAIT)
    figures.extra["events_streamed"] = len(streamed)
    print(figures.line())
    assert_clean(figures)


async def test_a_stream_resumed_through_a_mariadb_restart_misses_nothing(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # A stream whose read fails ends; the client comes back with Last-Event-ID (503s while
    # the database is away) and gets the rest: together every event once, in order.
    (job_id,), _ = await stack.submit_many(
        client, [("chaos.steady", {"steps": 60, "step_seconds": 0.1})]
    )
    path = f"/api/v1/jobs/{job_id}/stream"
    follower = httpx.AsyncClient(
        base_url=stack.base_url,
        headers={"Authorization": client.headers["Authorization"]},
        timeout=httpx.Timeout(30.0, read=60.0),
    )
    frames: list[Frame] = []
    reconnects = 0

    async def follow() -> None:
        nonlocal reconnects
        last: int | None = None
        while not frames or frames[-1].event != "succeeded":
            try:
                got, _ = await read_stream(follower, path, last, within=WAIT)
            except (httpx.HTTPError, AssertionError):
                got = []  # refused (503) or cut while the database is away
            frames.extend(f for f in got if f.data is not None)
            last = int(frames[-1].id) if frames else None
            if not frames or frames[-1].event != "succeeded":
                reconnects += 1
                await asyncio.sleep(0.2)

    async with follower:
        reading = asyncio.create_task(follow())
        deadline = time.monotonic() + WAIT
        while stack.states([job_id])[job_id] != "running":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(chaos.mariadb_stop)
        try:
            await asyncio.sleep(1.0)
        finally:
            await asyncio.to_thread(chaos.mariadb_start)
        await asyncio.wait_for(reading, WAIT)
    streamed = [f.data for f in frames]
    assert [e["seq"] for e in streamed] == list(range(1, len(streamed) + 1))  # type: ignore[index]
    figures = stack.figures("stream-through-mariadb-restart", [job_id], faults=1, within=WAIT)
    figures.extra |= {"events_streamed": len(streamed), "reconnects": reconnects}
    print(figures.line())
    assert_clean(figures)
    assert streamed[-1]["type"] == "succeeded"  # type: ignore[index]
    assert (
        len(streamed)
        == stack.query("SELECT COUNT(*) FROM job_events WHERE job_id = %s", (job_id,))[0][0]
    )


async def test_mariadb_restarted_while_workers_record_events_loses_nothing(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    specs = [("chaos.steady", {"steps": 20, "step_seconds": 0.1})] * 30
    ids, _ = await stack.submit_many(client, specs)
    # Wait until workers are busy recording progress, then take the database away.
    deadline = time.monotonic() + WAIT
    while "running" not in stack.states(ids).values():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    began = time.monotonic()
    await asyncio.to_thread(chaos.mariadb_stop)
    try:
        await asyncio.sleep(1.0)
    finally:
        await asyncio.to_thread(chaos.mariadb_start)
    outage = time.monotonic() - began

    figures = stack.figures("mariadb-restart", ids, faults=1, within=WAIT)
    figures.extra["outage_seconds"] = round(outage, 1)
    print(figures.line())
    assert_clean(figures)
    assert figures.outcomes == {"succeeded": len(ids)}
