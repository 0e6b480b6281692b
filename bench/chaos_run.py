"""The long fault run, done by hand: thousands of jobs through a real stack under mixed faults.

    .venv/bin/python bench/chaos_run.py --jobs 2000

Starts a private stack (its own database and vhost, an API server, a worker), submits jobs
over HTTP at a steady pace while injecting faults - kill -9 of pool children and of the
whole worker, RabbitMQ stopped for a few seconds, MariaDB restarted, duplicate messages,
cancels of queued and running jobs, racing duplicate POSTs with one Idempotency-Key - then
waits for every job and prints the figures: jobs submitted, faults injected, jobs lost,
duplicate transitions, and whether `jobline replay --verify` is clean. Exit status 1 if
anything was lost or recorded twice.

RabbitMQ and MariaDB are the shared local services: each outage lasts a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import chaos
from tests.chaos import ChaosStack

JOB = ("chaos.steady", {"steps": 3, "step_seconds": 0.02})
SLOW_JOB = ("chaos.steady", {"steps": 30, "step_seconds": 0.1})
POST_RETRY_SECONDS = 0.5


class Run:
    def __init__(self, stack: ChaosStack, client: httpx.AsyncClient, seed: int) -> None:
        self.stack = stack
        self.client = client
        self.rng = random.Random(seed)
        self.ids: dict[str, str] = {}  # idempotency key -> job id
        self.faults: Counter[str] = Counter()
        self.post_errors = 0
        self.latencies: list[float] = []
        self.submitting = True
        # While a shared service is down, no worker can start and no message can be sent:
        # outages and worker restarts take turns.
        self.outage = False
        self.turns = asyncio.Lock()

    async def post(self, key: str, type: str, payload: dict[str, Any]) -> str:
        """POST until answered; the key makes a retried POST return the first job."""
        while True:
            began = time.monotonic()
            try:
                r = await self.client.post(
                    "/api/v1/jobs",
                    json={"type": type, "payload": payload},
                    headers={"Idempotency-Key": key},
                )
            except httpx.HTTPError:
                r = None
            self.latencies.append(time.monotonic() - began)
            if r is not None and r.status_code in (200, 202):
                job_id = str(r.json()["id"])
                self.ids[key] = job_id
                return job_id
            self.post_errors += 1  # the database restarting: ask again
            await asyncio.sleep(POST_RETRY_SECONDS)

    async def submit(self, total: int, per_second: float) -> None:
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with gate:
                type, payload = SLOW_JOB if i % 50 == 0 else JOB
                await self.post(f"long-{i}-{uuid.uuid4().hex}", type, payload)

        tasks = []
        for i in range(total):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(1 / per_second)
        await asyncio.gather(*tasks)
        self.submitting = False

    async def kill(self) -> None:
        while self.submitting:
            await asyncio.sleep(self.rng.uniform(1.0, 4.0))
            if self.rng.random() < 0.8 or self.outage:
                if self.stack.kill_child("chaos", self.rng):
                    self.faults["kill -9 pool child"] += 1
            else:
                async with self.turns:
                    await asyncio.to_thread(self.stack.kill_worker, "chaos")
                self.faults["kill -9 whole worker"] += 1

    async def duplicates_and_cancels(self) -> None:
        celery = self.stack.celery()
        try:
            while self.submitting:
                await asyncio.sleep(self.rng.uniform(0.2, 0.6))
                known = list(self.ids.values())
                if not known or self.outage:
                    continue
                job_id = self.rng.choice(known[-200:])
                try:
                    if self.rng.random() < 0.6:
                        await asyncio.to_thread(
                            celery.send_task,
                            JOB[0],
                            kwargs={"job_id": job_id, "payload": JOB[1]},
                            task_id=job_id,
                            exchange="chaos",
                            routing_key="chaos",
                        )
                        self.faults["duplicate message"] += 1
                    else:
                        r = await self.client.post(f"/api/v1/jobs/{job_id}/cancel")
                        if r.status_code == 202:
                            self.faults["cancel request accepted (202)"] += 1
                except Exception as exc:  # a service went down meanwhile: best effort
                    print(f"duplicate/cancel skipped: {exc!r}")
        finally:
            celery.close()

    async def idempotency_races(self) -> None:
        while self.submitting:
            await asyncio.sleep(self.rng.uniform(2.0, 5.0))
            key = f"race-{uuid.uuid4().hex}"
            got = await asyncio.gather(*(self.post(key, *JOB) for _ in range(8)))
            assert len(set(got)) == 1, got
            self.faults["racing duplicate POSTs (8, one key)"] += 1

    async def outages(self, duration: float) -> None:
        await asyncio.sleep(duration * 0.25)
        async with self.turns:
            self.outage = True
            await asyncio.to_thread(chaos.rabbitmq_stop)
            await asyncio.sleep(3)
            await asyncio.to_thread(chaos.rabbitmq_start)
            self.outage = False
        self.faults["RabbitMQ stop_app 3s"] += 1
        await asyncio.sleep(duration * 0.3)
        async with self.turns:
            self.outage = True
            await asyncio.to_thread(chaos.mariadb_stop)
            await asyncio.sleep(1)
            await asyncio.to_thread(chaos.mariadb_start)
            self.outage = False
        self.faults["MariaDB restart"] += 1


async def main(jobs: int, per_second: float, seed: int) -> int:
    root = Path(tempfile.mkdtemp(prefix="jobline-chaos-"))
    (root / "logs").mkdir()
    (root / "var").mkdir()
    stack = ChaosStack("long", root / "logs", root / "var")
    stack.create()
    try:
        stack.start_server()
        stack.start_worker("chaos")
        client = await stack.client()
        run = Run(stack, client, seed)
        duration = jobs / per_second
        began = time.monotonic()
        await asyncio.gather(
            run.submit(jobs, per_second),
            run.kill(),
            run.duplicates_and_cancels(),
            run.idempotency_races(),
            run.outages(duration),
        )
        submitted = time.monotonic() - began
        ids = sorted(set(run.ids.values()))
        figures = await asyncio.to_thread(
            stack.figures, "long-run", ids, sum(run.faults.values()), 1800.0
        )
        await client.aclose()
        took = time.monotonic() - began
        details = figures.extra.pop("_details")
        latencies = sorted(run.latencies)
        print(figures.line())
        print(
            json.dumps(
                {
                    "jobs_submitted": len(ids),
                    "post_requests": len(latencies),
                    "post_errors_retried": run.post_errors,
                    "post_p50_s": round(latencies[len(latencies) // 2], 3),
                    "post_p99_s": round(latencies[int(len(latencies) * 0.99)], 3),
                    "faults": dict(run.faults),
                    "faults_total": sum(run.faults.values()),
                    "jobs_lost": figures.lost,
                    "duplicate_transitions": figures.duplicates,
                    "jobs_without_exactly_one_terminal_event": figures.extra["not_one_terminal"],
                    "replay_verify_exit": figures.extra["replay_verify_rc"],
                    "outcomes": figures.outcomes,
                    "worker_lost_events": stack.query(
                        "SELECT COUNT(*) FROM job_events WHERE type = 'worker_lost'"
                    )[0][0],
                    "submit_seconds": round(submitted, 1),
                    "total_seconds": round(took, 1),
                    "logs": str(root / "logs"),
                },
                indent=2,
            )
        )
        bad = (
            figures.lost
            or figures.duplicates
            or figures.extra["not_one_terminal"]
            or figures.extra["replay_verify_rc"]
        )
        if bad:
            print(json.dumps(details, indent=2, default=str))
        return 1 if bad else 0
    finally:
        stack.destroy()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="jobs submitted per second")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.jobs, args.rate, args.seed)))
