"""Submits in batches (jobs/batching.py, queueing/confirms.py) on MariaDB and RabbitMQ:
a burst shares its writes and its publish, and loses none of the single path's guarantees.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
import pymysql
import pytest
from fastapi import FastAPI

from jobline.config import Settings
from jobline.jobs.models import DispatchRow
from jobline.jobs.outbox import Outbox, new_claim
from jobline.jobs.service import JobService
from jobline.jobs.store import NewJob, utcnow
from jobline.queueing.confirms import ConfirmingPublisher
from jobline.queueing.relay import OutboxPublisher, Relay
from tests.support import Proc, User, free_port

pytestmark = pytest.mark.integration

BURST = 60
QUICK = {"source": "song.wav", "chunks": 1, "step_seconds": 0}


def service_of(app: FastAPI) -> JobService:
    service: JobService = app.state.service
    return service


async def post_burst(user: User, count: int) -> list[httpx.Response]:
    """`count` no-op submits sent at once (they share batches)."""
    body = {"type": "music.transcode", "payload": QUICK}
    return await asyncio.gather(
        *[user.client.post("/api/v1/jobs", json=body) for _ in range(count)]
    )


async def assert_each_ran_once(user: User, ids: list[str]) -> None:
    """Each job succeeded, published once (`queued` before `started`), no outbox row left."""
    for job_id in ids:
        done = await user.wait_final(job_id)
        assert done["state"] == "succeeded", done
        types = [e["type"] for e in await user.events(job_id)]
        assert types[:3] == ["submitted", "queued", "started"], types
        assert types[-1] == "succeeded", types
        assert types.count("queued") == 1, "published once"
    assert await DispatchRow.filter(job_id__in=ids).count() == 0


def refusing_publisher(app: FastAPI, migrated: Settings) -> OutboxPublisher:
    """The API's publisher, but on a broker address where nothing listens."""
    service = service_of(app)
    relay: Relay = app.state.relay
    dead = ConfirmingPublisher(
        app.state.celery,
        service.queues,
        f"amqp://jobline:jobline@127.0.0.1:{free_port()}//",
        timeout=2.0,
        idle_seconds=30.0,
    )
    return OutboxPublisher(
        service.store, relay.publisher.outbox, relay.publisher.dispatcher, migrated, dead
    )


async def test_a_burst_is_stored_and_published_in_batches_and_runs_to_the_end(
    app: FastAPI, user: User, workers: dict[str, Proc]
) -> None:
    batcher = service_of(app).batcher
    assert batcher is not None, "an API on RabbitMQ batches its submits"
    assert batcher.answer_at_commit, "JOBLINE_SUBMIT_ANSWER=commit is the default"
    batches_before, jobs_before = batcher.batches, batcher.jobs

    # JOBLINE_SUBMIT_ANSWER=queued: the answer waits for the broker's confirm.
    batcher.answer_at_commit = False
    try:
        responses = await post_burst(user, BURST)
    finally:
        batcher.answer_at_commit = True

    assert [r.status_code for r in responses] == [202] * BURST
    jobs = [r.json() for r in responses]
    # The broker confirmed each before the answer (a worker may even have started it).
    assert {j["state"] for j in jobs} <= {"queued", "running", "succeeded"}
    assert batcher.jobs - jobs_before == BURST
    assert batcher.batches - batches_before < BURST, "concurrent submits share batches"
    await assert_each_ran_once(user, [j["id"] for j in jobs])


async def test_answered_at_commit_a_burst_is_pending_in_the_answer_and_runs_once(
    app: FastAPI, user: User, workers: dict[str, Proc]
) -> None:
    # JOBLINE_SUBMIT_ANSWER=commit (the default): the answer comes with the job's commit;
    # its publish and `queued` follow in the same batch, after the answer.
    batcher = service_of(app).batcher
    assert batcher is not None and batcher.answer_at_commit
    responses = await post_burst(user, BURST)

    assert [r.status_code for r in responses] == [202] * BURST
    jobs = [r.json() for r in responses]
    assert {j["state"] for j in jobs} == {"pending"}, "answered before the broker's confirm"
    await assert_each_ran_once(user, [j["id"] for j in jobs])


async def test_answered_at_commit_a_job_cancelled_at_once_never_runs(
    app: FastAPI, user: User, workers: dict[str, Proc]
) -> None:
    # The client holds the id before the batch has published: a cancel can land before,
    # during or after the publish and the `queued` transaction. A job cancelled before it
    # started ends cancelled, once, and the message its worker may still get is dropped.
    responses = await post_burst(user, 20)
    ids = [r.json()["id"] for r in responses]
    cancels = await asyncio.gather(*[user.client.post(f"/api/v1/jobs/{i}/cancel") for i in ids])

    # A job submitted after them on the same queue: once it has run, the workers have had
    # the cancelled jobs' messages (published first) in hand.
    after = await user.submit("music.transcode", QUICK)
    assert (await user.wait_final(after["id"]))["state"] == "succeeded"
    before_start = 0
    for job_id, cancel in zip(ids, cancels, strict=True):
        if cancel.status_code == 202 and cancel.json()["state"] == "cancelled":
            # Cancelled while pending (before `queued`) or queued: never started.
            types = [e["type"] for e in await user.events(job_id)]
            assert types in (["submitted", "cancelled"], ["submitted", "queued", "cancelled"])
            before_start += 1
        else:
            # A fast worker got there first: running (asked to stop) or already finished.
            assert cancel.status_code in (202, 409), cancel.text
            done = await user.wait_final(job_id)
            assert done["state"] in ("succeeded", "cancelled"), done
            types = [e["type"] for e in await user.events(job_id)]
            assert types[:3] == ["submitted", "queued", "started"], types
        transitions = [t for t in types if t != "progress"]
        assert len(transitions) == len(set(transitions)), f"recorded twice: {types}"
    assert before_start > 0, "no cancel landed before its job started"
    assert await DispatchRow.filter(job_id__in=ids).count() == 0


async def test_answered_at_commit_a_batch_the_broker_then_refuses_still_runs(
    app: FastAPI, user: User, workers: dict[str, Proc], migrated: Settings
) -> None:
    # The answer went out before the publish: a publish that fails after it leaves the
    # outbox rows to the relay, as the default path does.
    batcher = service_of(app).batcher
    assert batcher is not None
    refusing = refusing_publisher(app, migrated)
    shipped = batcher.publisher
    batcher.publisher = refusing
    try:
        responses = await post_burst(user, 3)
    finally:
        batcher.publisher = shipped

    assert [r.status_code for r in responses] == [202] * 3
    assert {r.json()["state"] for r in responses} == {"pending"}
    # The publish runs after the answers: wait for it to fail (a refused connect, at once).
    for _ in range(100):
        if not refusing.health.ok:
            break
        await asyncio.sleep(0.1)
    assert not refusing.health.ok, "the publish after the answer failed"
    await assert_each_ran_once(user, [r.json()["id"] for r in responses])


async def test_a_batch_the_broker_refuses_is_released_to_the_relay(
    app: FastAPI, user: User, workers: dict[str, Proc], migrated: Settings
) -> None:
    service = service_of(app)
    publisher = refusing_publisher(app, migrated)
    write, written = Outbox.writer_many(utcnow(), new_claim(), publisher.lease)
    owner = user.id
    jobs = [
        NewJob(
            uuid.uuid4(),
            {
                "type": "music.transcode",
                "queue": "music",
                "payload": QUICK,
                "priority": 0,
                "owner_id": str(owner),
            },
        )
        for _ in range(3)
    ]
    views = await service.store.submit_many(jobs, also=write)

    published = await publisher.publish_many(written, {v.id: v for v in views})

    assert published == {v.id: None for v in views}
    assert not publisher.health.ok
    rows = await DispatchRow.filter(job_id__in=[v.id for v in views])
    assert {(r.claim, r.tries) for r in rows} == {(None, 1)}, "released for a later try"
    assert all(r.last_error for r in rows)
    # The API's own relay picks them up once their retry delay is over.
    for view in views:
        done = await user.wait_final(str(view.id))
        assert done["state"] == "succeeded"
        types = [e["type"] for e in await user.events(str(view.id))]
        assert types.count("queued") == 1


async def test_one_key_sent_many_times_at_once_makes_one_job(user: User) -> None:
    key = f"burst-{uuid.uuid4().hex[:8]}"
    body = {"type": "music.transcode", "payload": QUICK}

    async def post(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/api/v1/jobs", json=body, headers={"Idempotency-Key": key})

    others = [
        user.client.post("/api/v1/jobs", json=body) for _ in range(10)
    ]  # unkeyed jobs in the same batches must not be lost with the repeated key
    responses = await asyncio.gather(*[post(user.client) for _ in range(10)], *others)

    keyed, unkeyed = responses[:10], responses[10:]
    assert Counter(r.status_code for r in keyed) == {202: 1, 200: 9}
    assert len({r.json()["id"] for r in keyed}) == 1
    assert [r.status_code for r in unkeyed] == [202] * 10
    assert len({r.json()["id"] for r in unkeyed}) == 10


@pytest.mark.parametrize(
    "lost",
    [
        pymysql.err.InterfaceError(0, "Not connected"),
        pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"),
    ],
)
async def test_a_connection_lost_mid_batch_answers_503_not_500(
    app: FastAPI, user: User, monkeypatch: pytest.MonkeyPatch, lost: Exception
) -> None:
    # What a MariaDB restart under a submit burst raised from the transaction's rollback.
    async def broken(*_: object, **__: object) -> None:
        raise lost

    monkeypatch.setattr(service_of(app).store, "submit_many", broken)
    r = await user.client.post("/api/v1/jobs", json={"type": "music.transcode", "payload": QUICK})
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
