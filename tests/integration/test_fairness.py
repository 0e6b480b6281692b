"""Fair shares on the real stack: one user's flood holds one slot of a domain, not all.

A worker of the `fair` domain running four prefork processes, and an API, on the run's
MariaDB and RabbitMQ; the domain's cap on one user's running jobs is the default,
concurrency - 1 = 1, counted across both workers (queueing/fairness.py).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos import ChaosStack
from tests.integration.hardening import bearer
from tests.support import FINAL, REPO, Proc, assert_history, start_server, start_worker, types_of

pytestmark = pytest.mark.integration

ENV = {
    "JOBLINE_QUEUES_FILE": str(REPO / "tests" / "fair_queues.yaml"),
    "JOBLINE_FAIR_SHARE_DEFER_SECONDS": "0.5",
    "JOBLINE_FAIR_SHARE_DEFER_MAX_SECONDS": "3",
    "JOBLINE_RELAY_INTERVAL_SECONDS": "0.2",
}
PASSWORD = "fair-share-password-1"
# A flood job would run 60 s; the other user's job must start long before one ends.
LONG = {"source": "flood.wav", "chunks": 120, "step_seconds": 0.5}
QUICK = {"source": "quick.wav", "chunks": 1, "step_seconds": 0}
BOUND_SECONDS = 15.0


@pytest.fixture(scope="module")
def fair_stack(logdir: Path, var_dir: Path) -> Iterator[tuple[str, list[Proc]]]:
    """Its own database and vhost: the session's other API processes run relays with the
    shipped queues.yaml, which knows no `fair` domain; sharing the outbox with them, a
    deferred job's row could be claimed by one of them and put off with its backoff."""
    stack = ChaosStack("fair", logdir, var_dir)
    stack.create()
    env = {**stack.env, **ENV}
    server, base = start_server(env, logdir)
    workers: list[Proc] = []
    try:
        # Four prefork processes, each its own database connection: the cap holds across
        # them as across hosts.
        workers = [start_worker("fair", env, logdir, "--concurrency=4")]
        yield base, workers
    finally:
        for proc in workers:
            proc.stop()
        server.stop()
        stack.destroy()


def submit(client: httpx.Client, payload: dict[str, Any], priority: int = 0) -> str:
    r = client.post(
        "/api/v1/jobs", json={"type": "fair.transcode", "payload": payload, "priority": priority}
    )
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    return job_id


def jobs(client: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for job_id in ids:
        r = client.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/api/v1/jobs/{job_id}/events", params={"size": 100})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def wait_final(client: httpx.Client, ids: list[str], within: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        found = jobs(client, ids)
        if all(job["state"] in FINAL for job in found):
            return found
        assert time.monotonic() < deadline, [job["state"] for job in found]
        time.sleep(0.1)


def test_a_flood_holds_one_slot_and_another_users_job_starts_within_a_bound(
    fair_stack: tuple[str, list[Proc]],
) -> None:
    base, workers = fair_stack
    flooder, _ = bearer(base, PASSWORD)
    other, _ = bearer(base, PASSWORD)
    try:
        # Eight long jobs at the highest priority a user may ask, on a domain of four slots.
        flood = [submit(flooder, LONG, priority=5) for _ in range(8)]
        deadline = time.monotonic() + BOUND_SECONDS
        while not any(job["state"] == "running" for job in jobs(flooder, flood)):
            assert time.monotonic() < deadline, "no flood job started"
            time.sleep(0.1)
        submitted = time.monotonic()
        quick = submit(other, QUICK)
        most_running = 0
        while True:
            running = sum(job["state"] == "running" for job in jobs(flooder, flood))
            most_running = max(most_running, running)
            (job,) = jobs(other, [quick])
            if job["state"] in FINAL:
                break
            assert time.monotonic() - submitted < BOUND_SECONDS, f"still {job['state']}"
            time.sleep(0.1)
        waited = time.monotonic() - submitted
        assert job["state"] == "succeeded", job
        # Four slots, eight jobs of one user: only one of them ever ran.
        assert most_running == 1
        assert sum(job["state"] == "running" for job in jobs(flooder, flood)) == 1
        assert any("deferred" in proc.output() for proc in workers)
        for job_id in flood:
            r = flooder.post(f"/api/v1/jobs/{job_id}/cancel")
            assert r.status_code == 202, r.text
        ended = wait_final(flooder, flood, within=30)
        assert {job["state"] for job in ended} == {"cancelled"}
        for job in ended:
            history = events(flooder, job["id"])
            assert_history(history, job)
            kinds = types_of(history)
            # Deferred any number of times, a job's history holds each transition once.
            assert kinds.count("queued") == 1 and kinds.count("started") <= 1, kinds
    finally:
        flooder.close()
        other.close()
    print(f"the other user's job ended {waited:.2f}s after its submit")


def test_one_users_jobs_run_one_at_a_time_with_exact_histories(
    fair_stack: tuple[str, list[Proc]],
) -> None:
    base, _ = fair_stack
    client, _ = bearer(base, PASSWORD)
    try:
        ids = [
            submit(client, {"source": "s.wav", "chunks": 4, "step_seconds": 0.25}) for _ in range(3)
        ]
        ended = wait_final(client, ids, within=60)
        assert {job["state"] for job in ended} == {"succeeded"}
        spans = sorted(
            (datetime.fromisoformat(j["started_at"]), datetime.fromisoformat(j["finished_at"]))
            for j in ended
        )
        # Never two at once: each started after the one before it had finished.
        for (_, finished), (started, _) in itertools.pairwise(spans):
            assert started >= finished, spans
        for job in ended:
            history = events(client, job["id"])
            assert_history(history, job)
            kinds = types_of(history)
            assert kinds[:3] == ["submitted", "queued", "started"] and kinds[-1] == "succeeded"
            assert kinds.count("queued") == 1 and kinds.count("started") == 1, kinds
    finally:
        client.close()
