"""Faults that stay inside one stack: duplicate deliveries, racing requests and relays,
cancellation, retry, hard time limits, quorum queues, replay.

Each test prints a FAULT-FIGURES line (jobs submitted, faults injected, jobs lost,
duplicate transitions); run with -s to see them.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos import ChaosStack, Figures, assert_clean, running_stack, stack_client_fixture
from tests.support import RABBIT_API

pytestmark = pytest.mark.integration

SHORT = {"steps": 4, "step_seconds": 0.05}
WAIT = 90.0


@pytest.fixture(scope="module")
def stack(logdir: Path, var_dir: Path) -> Iterator[ChaosStack]:
    with running_stack("faults", logdir, var_dir) as chaos:
        yield chaos


client = stack_client_fixture()


def report(figures: Figures) -> None:
    print(figures.line())
    assert_clean(figures)


async def wait_state(
    client: httpx.AsyncClient, job_id: str, states: set[str], within: float = WAIT
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await client.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        await asyncio.sleep(0.1)


def types_of(stack: ChaosStack, job_id: str) -> list[str]:
    return [row[1] for row in stack.events(job_id)]


def wait_queue_drained(stack: ChaosStack, queue: str, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        info = stack.queue_info(queue)
        # Ready (passive declare, exact) and unacked (stats) both gone.
        if stack.message_count(queue) == 0 and info.get("messages_unacknowledged", 1) == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"queue {queue} still holds messages: {info}")


async def test_a_message_delivered_twice_runs_its_job_once(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    ids, _ = await stack.submit_many(client, [("chaos.steady", SHORT)] * 20)
    celery = stack.celery()

    def duplicate(job_id: str) -> None:
        # Straight to the domain's exchange, as a second publish of the same message would.
        celery.send_task(
            "chaos.steady",
            kwargs={"job_id": job_id, "payload": SHORT},
            task_id=job_id,
            exchange="chaos",
            routing_key="chaos",
        )

    for job_id in ids:  # while the first copy is queued or running
        duplicate(job_id)
    assert stack.wait_final(ids, WAIT) == []
    for job_id in ids:  # after the job finished
        duplicate(job_id)
    wait_queue_drained(stack, "chaos")
    celery.close()

    figures = stack.figures("duplicate-delivery", ids, faults=2 * len(ids), within=WAIT)
    report(figures)
    assert figures.outcomes == {"succeeded": len(ids)}
    for job_id in ids:
        assert types_of(stack, job_id).count("started") == 1


async def test_concurrent_posts_with_one_idempotency_key_make_one_job(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    keys = [f"key-{uuid.uuid4().hex}" for _ in range(3)]

    async def post(key: str) -> httpx.Response:
        return await client.post(
            "/api/v1/jobs",
            json={"type": "chaos.steady", "payload": SHORT},
            headers={"Idempotency-Key": key},
        )

    sent = [k for k in keys for _ in range(15)]
    responses = await asyncio.gather(*(post(k) for k in sent))
    ids: list[str] = []
    for key in keys:
        mine = [r for r, k in zip(responses, sent, strict=True) if k == key]
        assert Counter(r.status_code for r in mine) == {202: 1, 200: 14}
        assert len({r.json()["id"] for r in mine}) == 1
        ids.append(mine[0].json()["id"])
        rows = stack.query("SELECT COUNT(*) FROM jobs WHERE idempotency_key = %s", (key,))
        assert rows[0][0] == 1

    figures = stack.figures("idempotency-race", ids, faults=len(responses) - len(ids), within=WAIT)
    figures.extra["posts"] = len(responses)
    report(figures)
    assert figures.outcomes == {"succeeded": len(ids)}


async def test_cancel_queued_pending_and_finished_jobs(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # No worker consumes `idle` yet: the job stays queued.
    r = await client.post("/api/v1/jobs", json={"type": "idle.steady", "payload": SHORT})
    # Answered at commit (`pending`), published just after: this part is about a queued job.
    assert r.json()["state"] in ("pending", "queued"), r.json()
    queued = await wait_state(client, r.json()["id"], {"queued"})
    r = await client.post(f"/api/v1/jobs/{queued['id']}/cancel")
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "cancelled"

    # A delayed job waits in the outbox, pending; cancelling it removes its outbox row.
    r = await client.post(
        "/api/v1/jobs", json={"type": "idle.steady", "payload": SHORT, "delay_seconds": 30}
    )
    pending = r.json()
    assert pending["state"] == "pending"
    r = await client.post(f"/api/v1/jobs/{pending['id']}/cancel")
    assert r.json()["state"] == "cancelled"
    outbox = stack.query("SELECT COUNT(*) FROM job_dispatch WHERE job_id = %s", (pending["id"],))
    assert outbox[0][0] == 0

    # Now a worker arrives: the cancelled job's message is dropped, never run.
    stack.start_worker("idle")
    wait_queue_drained(stack, "idle")
    assert types_of(stack, queued["id"]) == ["submitted", "queued", "cancelled"]
    assert types_of(stack, pending["id"]) == ["submitted", "cancelled"]

    r = await client.post(f"/api/v1/jobs/{queued['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["detail"]["code"] == "JOB_FINISHED"

    # Retry of a cancelled job: a new attempt with a new task id, run to the end.
    r = await client.post(f"/api/v1/jobs/{queued['id']}/retry")
    assert r.status_code == 202, r.text
    assert r.json()["attempt"] == 2
    done = await wait_state(client, queued["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded" and done["attempt"] == 2
    names = types_of(stack, queued["id"])
    assert names[:6] == ["submitted", "queued", "cancelled", "retrying", "queued", "started"]
    assert names[-1] == "succeeded" and set(names[6:-1]) == {"progress"}
    r = await client.post(f"/api/v1/jobs/{queued['id']}/retry")
    assert r.status_code == 409
    assert r.json()["detail"]["code"] == "JOB_NOT_RETRYABLE"

    figures = stack.figures("cancel-queued", [queued["id"], pending["id"]], faults=2, within=WAIT)
    report(figures)


async def test_cancel_running_jobs_cooperative_stubborn_and_async(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    long = {"steps": 400, "step_seconds": 0.05}  # 20 s unless stopped
    ids = []
    for type in ("chaos.steady", "chaos.stubborn", "chaos.steady_async"):
        r = await client.post("/api/v1/jobs", json={"type": type, "payload": long})
        ids.append(r.json()["id"])
    for job_id in ids:
        await wait_state(client, job_id, {"running"})
    for job_id in ids:
        r = await client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert r.status_code == 202, r.text
        assert r.json()["state"] in ("running", "cancelled")
    finals = [
        await wait_state(client, job_id, {"succeeded", "failed", "cancelled"}) for job_id in ids
    ]
    assert [f["state"] for f in finals] == ["cancelled"] * 3

    reasons = []
    for job_id in ids:
        events = stack.events(job_id)
        names = [e[1] for e in events]
        assert "cancel_requested" in names
        assert names[-1] == "cancelled"
        assert "succeeded" not in names
        reasons.append(json.loads(events[-1][3])["reason"])
    assert reasons[0] == "cancelled by request"  # stopped itself at raise_if_cancelled()
    assert reasons[1] == reasons[2] == "terminated after the cancel grace period"

    # The pool replaced the child that was terminated: the worker still runs jobs.
    after, _ = await stack.submit_many(client, [("chaos.steady", SHORT)] * 3)
    figures = stack.figures("cancel-running", ids + after, faults=len(ids), within=WAIT)
    report(figures)
    assert figures.outcomes == {"cancelled": 3, "succeeded": 3}


async def test_retry_of_a_failed_job_runs_a_new_attempt(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # max_retries 2: attempts 1 and 2 retry, 3 fails; the retry on request (4) succeeds.
    payload = {**SHORT, "flaky_attempts": 3}
    r = await client.post("/api/v1/jobs", json={"type": "chaos.steady", "payload": payload})
    job_id = r.json()["id"]
    failed = await wait_state(client, job_id, {"succeeded", "failed", "cancelled"})
    assert failed["state"] == "failed" and failed["attempt"] == 3
    r = await client.post(f"/api/v1/jobs/{job_id}/retry")
    assert r.status_code == 202, r.text
    done = await wait_state(client, job_id, {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded" and done["attempt"] == 4
    assert done["result"] == {"steps": SHORT["steps"], "attempt": 4}
    names = types_of(stack, job_id)
    assert names.count("started") == 4 and names.count("failed") == 1
    assert stack.duplicate_transitions([job_id]) == []
    assert stack.replay_verify().returncode == 0


async def test_an_exception_listed_in_retry_for_is_retried_and_others_fail_at_once(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # README: "A job raising jobline.TransientError (or a class in retry_for) is retried".
    payload = {**SHORT, "flaky_attempts": 1}
    listed = await client.post("/api/v1/jobs", json={"type": "chaos.timeouts", "payload": payload})
    unlisted = await client.post(
        "/api/v1/jobs", json={"type": "chaos.timeouts_unlisted", "payload": payload}
    )
    assert listed.status_code == unlisted.status_code == 202, (listed.text, unlisted.text)
    final = {"succeeded", "failed", "cancelled"}
    retried = await wait_state(client, listed.json()["id"], final)
    assert retried["state"] == "succeeded" and retried["attempt"] == 2, retried
    assert types_of(stack, retried["id"]).count("retrying") == 1
    failed = await wait_state(client, unlisted.json()["id"], final)
    assert failed["state"] == "failed" and failed["attempt"] == 1, failed
    assert failed["error"]["type"] == "TimeoutError", failed
    assert "retrying" not in types_of(stack, failed["id"])


async def test_a_job_failing_at_once_retries_through_the_outbox(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # Each failing attempt ends before the late-started window: its started, retrying
    # and the next attempt's outbox row are one transaction (queueing/late_start.py).
    payload = {**SHORT, "flaky_attempts": 2, "flaky_at_once": True}
    r = await client.post("/api/v1/jobs", json={"type": "chaos.steady", "payload": payload})
    job_id = r.json()["id"]
    done = await wait_state(client, job_id, {"succeeded", "failed", "cancelled"})
    assert done["state"] == "succeeded" and done["attempt"] == 3, done
    names = types_of(stack, job_id)
    one_retry = ["started", "retrying", "queued"]
    assert names[:8] == ["submitted", "queued", *one_retry, *one_retry]
    assert names[8] == "started" and names[-1] == "succeeded"
    assert stack.duplicate_transitions([job_id]) == []
    assert stack.replay_verify().returncode == 0


async def test_a_job_killed_at_its_hard_time_limit_ends_failed(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    stack.start_worker("limits")
    r = await client.post(
        "/api/v1/jobs",
        json={"type": "limits.overrun", "payload": {"steps": 200, "step_seconds": 0.1}},
    )
    job_id = r.json()["id"]
    done = await wait_state(client, job_id, {"succeeded", "failed", "cancelled"})
    assert done["state"] == "failed"
    assert done["error"]["code"] == "TIME_LIMIT"
    figures = stack.figures("hard-time-limit", [job_id], faults=1, within=WAIT)
    report(figures)


async def test_racing_relays_publish_each_job_once(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # Delayed jobs wait in the outbox; when they fall due, three `jobline relay` processes
    # and the API's own relay race for them. `parked` has no worker: every publish stays.
    specs = [("parked.steady", SHORT)] * 60
    ids: list[str] = []
    for type, payload in specs:
        r = await client.post(
            "/api/v1/jobs", json={"type": type, "payload": payload, "delay_seconds": 4}
        )
        assert r.json()["state"] == "pending"
        ids.append(r.json()["id"])
    relays = [stack.start_relay() for _ in range(3)]
    for relay in relays:
        relay.wait_for("publishing the outbox")
    deadline = time.monotonic() + WAIT
    while set(stack.states(ids).values()) != {"queued"}:
        assert time.monotonic() < deadline, Counter(stack.states(ids).values())
        await asyncio.sleep(0.3)
    for relay in relays:
        relay.stop()
    messages = stack.message_count("parked")
    queued_events = stack.query(
        "SELECT COUNT(*) FROM job_events WHERE type = 'queued' AND job_id IN ("
        + ",".join(["%s"] * len(ids))
        + ")",
        ids,
    )[0][0]
    print(
        Figures(
            "relay-race",
            submitted=len(ids),
            faults=len(relays) + 1,
            lost=len(ids) - messages if messages < len(ids) else 0,
            duplicates=messages - len(ids) if messages > len(ids) else 0,
        ).line()
    )
    assert messages == len(ids)
    assert queued_events == len(ids)
    assert stack.query("SELECT COUNT(*) FROM job_dispatch")[0][0] == 0


async def test_quorum_queue_is_declared_without_priority(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    stack.start_worker("replicated")
    r = await client.post(
        "/api/v1/jobs", json={"type": "replicated.steady", "payload": SHORT, "priority": 5}
    )
    job = await wait_state(client, r.json()["id"], {"succeeded", "failed", "cancelled"})
    assert job["state"] == "succeeded"
    quorum = stack.queue_info("replicated")
    assert quorum["type"] == "quorum"
    assert "x-max-priority" not in quorum["arguments"]
    classic = stack.queue_info("chaos")
    assert classic["type"] == "classic"
    assert classic["arguments"]["x-max-priority"] == 9


async def test_replay_verify_finds_a_tampered_projection_and_replay_repairs_it(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    ids, _ = await stack.submit_many(client, [("chaos.steady", SHORT)] * 2)
    assert stack.wait_final(ids, WAIT) == []
    assert stack.replay_verify().returncode == 0
    stack.query("UPDATE jobs SET state = 'running', progress = 7 WHERE id = %s", (ids[0],))

    verify = stack.replay_verify()
    assert verify.returncode == 1
    assert ids[0] in verify.stdout and ids[1] not in verify.stdout
    assert "state: <JobState.RUNNING" in verify.stdout or "state: 'running'" in verify.stdout

    one = stack.cli("replay", "--job", ids[0])
    assert one.returncode == 0, one.stdout + one.stderr
    assert "rewrote 1" in one.stdout
    assert stack.replay_verify().returncode == 0
    assert stack.states([ids[0]])[ids[0]] == "succeeded"


async def test_a_job_whose_worker_dies_too_often_ends_failed_worker_lost(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    # `fragile` allows 2 worker losses: the first kill runs the job again as attempt 2,
    # the second ends it failed with code WORKER_LOST instead of looping.
    stack.start_worker("fragile")
    long = {"steps": 400, "step_seconds": 0.05}
    r = await client.post("/api/v1/jobs", json={"type": "fragile.steady", "payload": long})
    job_id = r.json()["id"]
    rng = random.Random(2)
    for attempt in (1, 2):
        deadline = time.monotonic() + WAIT
        while (await wait_state(client, job_id, {"running"}))["attempt"] != attempt:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert stack.kill_child("fragile", rng)
    done = await wait_state(client, job_id, {"succeeded", "failed", "cancelled"})
    assert done["state"] == "failed"
    assert done["error"]["code"] == "WORKER_LOST"
    names = types_of(stack, job_id)
    assert names.count("worker_lost") == 2 and names.count("started") == 2
    report(stack.figures("worker-lost-limit", [job_id], faults=2, within=WAIT))


def test_publishes_wait_for_publisher_confirms(stack: ChaosStack) -> None:
    from jobline.config import Settings
    from jobline.jobs.spec import load_queues
    from jobline.queueing.app import create_celery

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, broker_url=stack.env["JOBLINE_BROKER_URL"]
    )
    app = create_celery(settings, load_queues(stack.env["JOBLINE_QUEUES_FILE"]))
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            assert conn.connection.confirm_publish is True
            # py-amqp swaps in the publish that waits for the broker's ack.
            assert conn.default_channel.basic_publish.__name__ == "basic_publish_confirm"
    finally:
        app.close()


def test_workers_publish_their_monitoring_events_without_confirms(stack: ChaosStack) -> None:
    # A worker publishes no job (the outbox does, with confirms, above); waiting for the
    # broker's ack of each task-* event stalled its main process.
    from jobline.config import Settings
    from jobline.jobs.spec import load_queues
    from jobline.queueing.worker import worker_app

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        broker_url=stack.env["JOBLINE_BROKER_URL"],
        queues_file=stack.env["JOBLINE_QUEUES_FILE"],
    )
    queues = load_queues(stack.env["JOBLINE_QUEUES_FILE"])
    app = worker_app(settings, queues, next(iter(queues.domains)))
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1)
            assert not conn.connection.confirm_publish
            assert conn.default_channel.basic_publish.__name__ == "_basic_publish"
    finally:
        app.close()


def test_workers_ack_manually_with_a_prefetch_of_their_concurrency(stack: ChaosStack) -> None:
    # concurrency 3 x prefetch 1 (queues.yaml): a worker holds at most 3 unacked messages,
    # one per pool process, so a kill -9 sends back only the jobs that were running.
    auth = stack.rabbit_auth
    deadline = time.monotonic() + WAIT
    while True:
        r = httpx.get(f"{RABBIT_API}/consumers/{stack.vhost}", auth=auth, timeout=10)
        consumers = [c for c in r.json() if c["queue"]["name"] == "chaos"]
        if consumers or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(consumers) == 1
    consumer = consumers[0]
    assert consumer["ack_required"] is True
    channel = httpx.get(
        f"{RABBIT_API}/channels/{consumer['channel_details']['name']}",
        auth=auth,
        timeout=10,
    ).json()
    # Celery sets the limit per channel (global QoS) on classic queues.
    assert max(consumer["prefetch_count"], channel.get("global_prefetch_count", 0)) == 3
