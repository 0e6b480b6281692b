"""Lost messages are published again, and every job still runs once (issue 16.1).

A private stack (tests/chaos.py) whose API process reconciles every 2 s with a grace of
3 s. Each test breaks the broker's copy of queued jobs behind jobline's back (a purge, a
deleted queue, a message of an older generation, racing reconcilers) and ends with every
job run once: 0 lost, 0 duplicate transitions, `jobline replay --verify` clean.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from kombu import Connection

from tests.chaos import ChaosStack, Figures, assert_clean, serving, stack_client_fixture

pytestmark = pytest.mark.integration

SHORT = {"steps": 4, "step_seconds": 0.05}
# Generous: CI is slower than any machine these were written on.
WAIT = 120.0
RECONCILE_ENV = {
    "JOBLINE_RECONCILE_INTERVAL_SECONDS": "2",
    "JOBLINE_RECONCILE_GRACE_SECONDS": "3",
}


@pytest.fixture(scope="module")
def stack(logdir: Path, var_dir: Path) -> Iterator[ChaosStack]:
    stack = ChaosStack("reconcile", logdir, var_dir)
    stack.env.update(RECONCILE_ENV)
    with serving(stack) as chaos:
        yield chaos


client = stack_client_fixture()


def report(figures: Figures) -> None:
    print(figures.line())
    assert_clean(figures)


def broker(stack: ChaosStack) -> Connection:
    return Connection(stack.env["JOBLINE_BROKER_URL"])


def purge(stack: ChaosStack, queue: str) -> int:
    with broker(stack) as conn:
        return int(conn.default_channel.queue_purge(queue) or 0)


def requeues(stack: ChaosStack, ids: Sequence[str]) -> Counter[str]:
    """`requeued` events per job."""
    marks = ",".join(["%s"] * len(ids))
    rows = stack.query(
        f"SELECT job_id, COUNT(*) FROM job_events WHERE type = 'requeued' AND job_id IN ({marks}) "
        "GROUP BY job_id",
        ids,
    )
    return Counter({job_id: int(n) for job_id, n in rows})


def wait_requeued(stack: ChaosStack, ids: Sequence[str], within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while len(requeues(stack, ids)) < len(ids):
        assert time.monotonic() < deadline, f"{len(requeues(stack, ids))} of {len(ids)} requeued"
        time.sleep(0.5)


async def wait_queued(stack: ChaosStack, ids: Sequence[str], within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while set(stack.states(ids).values()) != {"queued"}:
        assert time.monotonic() < deadline, Counter(stack.states(ids).values())
        await asyncio.sleep(0.3)


def wait_messages(stack: ChaosStack, queue: str, count: int, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while stack.message_count(queue) != count:
        assert time.monotonic() < deadline, f"{stack.message_count(queue)} != {count}"
        time.sleep(0.3)


def started_once(stack: ChaosStack, ids: Sequence[str]) -> None:
    for job_id in ids:
        types = [row[1] for row in stack.events(job_id)]
        assert types.count("started") == 1, types


async def test_a_purged_queue_is_published_again_and_every_job_runs_once(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # The operator's report: 30 jobs queued with their domain's worker stopped, the queue
    # purged, the worker started again.
    ids, _ = await stack.submit_many(client, [("idle.steady", SHORT)] * 30)
    await wait_queued(stack, ids)
    assert purge(stack, "idle") == 30
    wait_requeued(stack, ids)
    # Published again once each: the queue holds 30 messages, not more.
    wait_messages(stack, "idle", 30)
    await asyncio.sleep(5)  # two more rounds: nothing more is published
    assert stack.message_count("idle") == 30
    assert set(requeues(stack, ids).values()) == {1}
    worker = stack.start_worker("idle")
    figures = stack.figures("purged-queue", ids, faults=1, within=WAIT)
    worker.stop()
    report(figures)
    assert figures.outcomes == {"succeeded": len(ids)}
    started_once(stack, ids)
    event = next(row for row in stack.events(ids[0]) if row[1] == "requeued")
    data = json.loads(event[3])
    assert data["generation"] == 2 and data["reason"].startswith("lost by the broker")


async def test_a_queue_deleted_and_declared_again_while_workers_run(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    worker = stack.start_worker("chaos")
    # Long enough that most are still in the queue when it goes.
    slow = {"steps": 5, "step_seconds": 0.2}
    ids, _ = await stack.submit_many(client, [("chaos.steady", slow)] * 40)
    deadline = time.monotonic() + WAIT
    while "running" not in stack.states(ids).values():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    with broker(stack) as conn:
        channel = conn.default_channel
        channel.queue_delete("chaos")
        channel.queue_declare(
            "chaos", durable=True, arguments={"x-max-priority": 9}, auto_delete=False
        )
        channel.queue_bind("chaos", "chaos", "chaos")
    figures = stack.figures("deleted-queue", ids, faults=1, within=WAIT)
    worker.stop()
    report(figures)
    assert figures.outcomes == {"succeeded": len(ids)}
    started_once(stack, ids)
    assert sum(requeues(stack, ids).values()) > 0


async def test_a_message_of_an_older_generation_is_dropped(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    ids, _ = await stack.submit_many(client, [("idle.steady", SHORT)] * 3)
    await wait_queued(stack, ids)
    purge(stack, "idle")
    wait_requeued(stack, ids)
    wait_messages(stack, "idle", len(ids))
    # Then the old messages turn up after all: generation 1 as it was published, and in
    # the form published before generations existed (no generation: the first), one of
    # each at the top priority so a worker takes it before the job's current message.
    celery = stack.celery()
    for job_id in ids:
        for n, (generation, priority) in enumerate(((1, 9), (None, 9), (1, 0))):
            kwargs: dict[str, Any] = {"job_id": job_id, "payload": SHORT}
            if generation is not None:
                kwargs["generation"] = generation
            celery.send_task(
                "idle.steady",
                kwargs=kwargs,
                task_id=f"{job_id}.stale{n}",
                exchange="idle",
                routing_key="idle",
                priority=priority,
            )
    celery.close()
    worker = stack.start_worker("idle")
    figures = stack.figures("older-generation", ids, faults=3 * len(ids), within=WAIT)
    deadline = time.monotonic() + WAIT
    while stack.message_count("idle") or stack.queue_info("idle").get("messages_unacknowledged", 1):
        assert time.monotonic() < deadline, "the stale messages stay in the queue"
        await asyncio.sleep(0.5)
    worker.stop()
    report(figures)
    assert figures.outcomes == {"succeeded": len(ids)}
    started_once(stack, ids)
    for job_id in ids:
        started = [json.loads(row[3]) for row in stack.events(job_id) if row[1] == "started"]
        assert started[0]["generation"] == 2
    assert "a message of generation 1, the job is at 2; dropped" in worker.output()


async def test_the_reconcilers_of_several_processes_publish_each_job_once(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # Another API process and two `jobline relay` processes reconcile the same database
    # and vhost at the same interval as the first API process.
    stack.start_server()
    relays = [stack.start_relay() for _ in range(2)]
    for relay in relays:
        relay.wait_for("publishing the outbox")
    ids, _ = await stack.submit_many(client, [("idle.steady", SHORT)] * 40)
    await wait_queued(stack, ids)
    purge(stack, "idle")
    wait_requeued(stack, ids)
    wait_messages(stack, "idle", len(ids))
    await asyncio.sleep(6)  # three more rounds of each of the four
    for relay in relays:
        relay.stop()
    assert stack.message_count("idle") == len(ids)
    assert set(requeues(stack, ids).values()) == {1}
    worker = stack.start_worker("idle")
    figures = stack.figures("racing-reconcilers", ids, faults=4, within=WAIT)
    worker.stop()
    report(figures)
    started_once(stack, ids)
