"""A RabbitMQ cluster with a node killed (issue 16, section 2): correct, and at full speed.

Three nodes of deploy/local/rabbit-cluster (names, ports and data of their own; the shared
node is not touched), every queue of tests/cluster_queues.yaml a quorum queue, the API
server and the worker given all three URLs (kombu's `;` failover list). 2,000 jobs are
POSTed at a fixed rate a little above the job type's rate limit, so the worker runs at its
full rate all along; mid-run, `kill -9` takes down the node leading the jobs' queue (every
process was connected to it: it is the first URL). Then:

- every POST answered 202 (a job the broker did not take at once is `pending`, published
  later by the relay), every job ends once, no transition twice, `replay --verify` clean;
- the worker's jobs/s over the 50 s after the kill at least 80% of the 50 s before (the
  issue's target; before the fix, Celery's delayed-delivery set-up held every reconnect for
  17 s, the backlog it left ran at 1 job/s (rate-limit timers), and the API's publishing
  channel nacked every batch after the election);
- the event notices flow again (the API's feed counts them) within 30 s of the kill;
- the node comes back, rejoins its cluster and the queue, and jobs still run.

Run with -s to see the FAULT-FIGURES line: jobs, total time, slowest POST, jobs/s per 10 s
window around the kill, time until the full rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos import ChaosStack, assert_clean
from tests.integration.stream_helpers import live_superuser
from tests.support import REPO, User

pytestmark = pytest.mark.integration

CLUSTER_SCRIPT = REPO / "deploy" / "local" / "rabbit-cluster"
CLUSTER_QUEUES = REPO / "tests" / "cluster_queues.yaml"
NODES = 3
QUEUE = "replicated"
JOB_TYPE = "replicated.steady"
PAYLOAD = {"steps": 1, "step_seconds": 0.0}
JOBS = 2000
RATE_LIMIT = 16.0  # jobs/s: replicated.steady's rate_limit in tests/cluster_queues.yaml
OFFERED = 18.0  # POSTs/s, on a fixed schedule: the worker always has a backlog
KILL_AFTER = 60.0  # seconds after the first POST
WINDOW = 50.0  # jobs/s compared over this long before and after the kill
FULL_RATE = 0.8  # the target: the minute after the kill at 80% of the minute before
# Asserted as it is. The margin is in the set-up: both windows run at the rate limit, which
# the worker reaches with room to spare, so a loaded machine costs a few percent at most
# (measured 0.987-0.997 in four runs while other suites ran). Before the fix, the 17 s with
# nothing consumed alone would make it 0.66 (33 s of 50), and the backlog then ran at 1 job/s.
BACK_WITHIN = 30.0  # seconds: the full rate again, and notices flowing, after the kill
NOTICES_SETTLED = 2.0  # seconds after the kill: every connection to the dead node is gone
WAIT = 600.0  # every bound on a wait: generous, CI machines are slower


def free_port_base() -> int:
    """A base port whose nine cluster ports (AMQP, management, distribution) are all free."""
    for base in random.sample(range(5800, 6400, 10), 60):
        ports = [base + offset + i for offset in (0, 10000, 20000) for i in range(NODES)]
        try:
            with contextlib.ExitStack() as held:
                for port in ports:
                    s = held.enter_context(socket.socket())
                    s.bind(("", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports for the cluster")


@dataclass
class Cluster:
    """A cluster of deploy/local/rabbit-cluster, run with its own name, ports and directory."""

    name: str
    port: int
    dir: Path

    def run(self, *args: str) -> str:
        argv = [str(CLUSTER_SCRIPT), "--nodes", str(NODES), "--name", self.name]
        argv += ["--port", str(self.port), "--dir", str(self.dir), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=WAIT)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def node(self, i: int) -> str:
        return f"{self.name}-{i}@{socket.gethostname().split('.')[0]}"

    def index(self, node: str) -> int:
        return int(node.split("@")[0].rsplit("-", 1)[1])

    def broker_url(self, vhost: str = "jobline") -> str:
        return ";".join(
            f"amqp://jobline:jobline@127.0.0.1:{self.port + i}/{vhost}" for i in range(NODES)
        )

    def api(self, i: int) -> str:
        return f"http://127.0.0.1:{self.port + 10000 + i - 1}/api"

    def get(self, path: str, exclude: int | None = None) -> dict[str, Any]:
        """GET from the management API of the first node that answers (not `exclude`)."""
        for i in range(1, NODES + 1):
            if i == exclude:
                continue
            try:
                r = httpx.get(self.api(i) + path, auth=("jobline", "jobline"), timeout=5)
            except httpx.HTTPError:
                continue
            if r.status_code == 200:
                answer: dict[str, Any] = r.json()
                return answer
        raise AssertionError(f"no node answered {path}")

    def queue(self, name: str, exclude: int | None = None) -> dict[str, Any]:
        return self.get(f"/queues/jobline/{name}", exclude)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # The nodes run as the rabbitmq user: their directory must be open to it.
    folder = Path(tempfile.mkdtemp(prefix="jobline-cluster-"))
    folder.chmod(0o755)
    made = Cluster(f"jlfail{uuid.uuid4().hex[:6]}", free_port_base(), folder)
    try:
        made.run("start")
        yield made
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            made.run("stop")
        shutil.rmtree(folder, ignore_errors=True)


class ClusterStack(ChaosStack):
    """A fault stack (its own database) whose broker is the cluster, all three URLs."""

    def __init__(self, cluster: Cluster, logdir: Path, var_dir: Path) -> None:
        super().__init__("cluster", logdir, var_dir)
        self.env["JOBLINE_BROKER_URL"] = cluster.broker_url()
        self.env["JOBLINE_QUEUES_FILE"] = str(CLUSTER_QUEUES)

    def create(self) -> None:
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        out = self.cli("migrate")
        assert out.returncode == 0, out.stdout + out.stderr

    def destroy(self) -> None:
        for proc in self.procs:
            proc.stop()
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")

    def finished_at(self) -> list[float]:
        """When each job succeeded (Unix seconds), read from its `succeeded` event."""
        rows = self.query(
            "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', at) FROM job_events "
            "WHERE type = 'succeeded'"
        )
        return sorted(int(us) / 1e6 for (us,) in rows)


@pytest.fixture(scope="module")
def stack(cluster: Cluster, logdir: Path, var_dir: Path) -> Iterator[ClusterStack]:
    made = ClusterStack(cluster, logdir, var_dir)
    made.create()
    try:
        made.start_server()
        made.start_worker(QUEUE)
        yield made
    finally:
        made.destroy()


@pytest.fixture(scope="module")
async def admin(stack: ClusterStack) -> AsyncIterator[User]:
    user = await live_superuser(stack.base_url, stack.env)
    yield user
    await user.client.aclose()


def rate(times: list[float], start: float, end: float) -> float:
    return sum(1 for t in times if start <= t < end) / (end - start)


async def notices(user: User) -> int:
    r = await user.client.get("/api/v1/stream/stats")
    assert r.status_code == 200, r.text
    return int(r.json()["notices"])


async def notices_back(user: User, killed_at: float) -> float | None:
    """Seconds from the kill until the API counts a notice received after it, None if never.

    The count is taken first a little after the kill, when the connections to the dead
    node are gone: any notice counted later came through a live node.
    """
    await asyncio.sleep(max(0.0, killed_at + NOTICES_SETTLED - time.time()))
    before = await notices(user)
    while time.time() - killed_at < WAIT:
        if await notices(user) > before:
            return time.time() - killed_at
        await asyncio.sleep(0.5)
    return None


async def follow(user: User, job_id: str) -> None:
    """Keep a stream open, so the API consumes notices (it does only while someone follows)."""
    with contextlib.suppress(httpx.HTTPError):
        async with user.client.stream("GET", f"/api/v1/jobs/{job_id}/stream") as r:
            async for _ in r.aiter_lines():
                pass


async def test_a_killed_node_costs_no_job_and_no_speed(
    cluster: Cluster, stack: ClusterStack, admin: User
) -> None:
    parked = await admin.submit("parked.steady", {})
    follower = asyncio.create_task(follow(admin, parked["id"]))
    posts = httpx.AsyncClient(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {admin.token}"},
        timeout=WAIT,
        limits=httpx.Limits(max_connections=64),
    )
    latencies: list[float] = []
    answers: list[tuple[int, str, str]] = []  # status, job id, state

    async def post() -> None:
        began = time.monotonic()
        r = await posts.post("/api/v1/jobs", json={"type": JOB_TYPE, "payload": PAYLOAD})
        latencies.append(time.monotonic() - began)
        body = r.json()
        answers.append((r.status_code, body.get("id", ""), body.get("state", "")))

    leader = cluster.index(cluster.queue(QUEUE)["leader"])
    start = time.time()
    killed_at = 0.0
    # Notices flow again once a worker's notifier and the API's listener found a live node.
    watching: asyncio.Task[float | None] | None = None
    posting: list[asyncio.Task[None]] = []
    for i in range(JOBS):
        await asyncio.sleep(max(0.0, start + i / OFFERED - time.time()))
        if not killed_at and time.time() - start >= KILL_AFTER:
            await asyncio.to_thread(cluster.run, "kill-node", str(leader))
            killed_at = time.time()
            watching = asyncio.create_task(notices_back(admin, killed_at))
        posting.append(asyncio.create_task(post()))
    await asyncio.gather(*posting)
    await posts.aclose()
    assert watching is not None
    notices_after = await watching

    ids = [job_id for _, job_id, _ in answers]
    figures = stack.figures("cluster_node_killed", ids, faults=1, within=WAIT)
    ended = time.time()
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower

    done = stack.finished_at()
    before = rate(done, killed_at - WINDOW, killed_at)
    after = rate(done, killed_at, killed_at + WINDOW)
    windows = [
        f"{offset:+d}s:{rate(done, killed_at + offset, killed_at + offset + 10):.1f}"
        for offset in range(-30, 60, 10)
    ]
    # The end of the first 10 s window after the kill back at the target share of the rate.
    back = next(
        (
            offset + 10.0
            for offset in range(0, int(WINDOW))
            if rate(done, killed_at + offset, killed_at + offset + 10) >= FULL_RATE * before
        ),
        None,
    )
    # The longest wait between two jobs ending, from just before the kill to 30 s after it.
    around = [t for t in done if killed_at - 5 <= t <= killed_at + BACK_WITHIN]
    longest_gap = max((b - a for a, b in pairwise(around)), default=None)
    figures.extra.update(
        {
            "longest_gap_between_jobs_s": None if longest_gap is None else round(longest_gap, 2),
            "killed": cluster.node(leader),
            "killed_after_s": round(killed_at - start, 1),
            "total_s": round(max(done) - start, 1),
            "slowest_post_s": round(max(latencies), 3),
            "pending_answers": sum(1 for _, _, state in answers if state == "pending"),
            "jobs_per_s_10s_windows_from_kill": " ".join(windows),
            "before_jobs_per_s": round(before, 2),
            "after_jobs_per_s": round(after, 2),
            "ratio": round(after / before, 3),
            "full_rate_after_s": back,
            "notices_back_after_s": None if notices_after is None else round(notices_after, 1),
            "waited_s": round(ended - start, 1),
        }
    )
    print(figures.line())

    assert {status for status, _, _ in answers} == {202}, answers[:5]
    assert_clean(figures)
    assert figures.outcomes == {"succeeded": JOBS}
    assert before >= 0.8 * RATE_LIMIT, figures.line()  # the worker ran at its full rate
    assert after >= FULL_RATE * before, figures.line()
    assert back is not None and back <= BACK_WITHIN, figures.line()
    assert notices_after is not None and notices_after <= BACK_WITHIN, figures.line()

    # The node comes back and rejoins: a running cluster member, and the queue's again.
    cluster.run("start-node", str(leader))
    deadline = time.monotonic() + WAIT
    while cluster.node(leader) not in cluster.queue(QUEUE)["online"]:
        assert time.monotonic() < deadline, cluster.queue(QUEUE)
        await asyncio.sleep(1)
    assert cluster.get(f"/nodes/{cluster.node(leader)}")["running"] is True
    after_rejoin = [(await admin.submit(JOB_TYPE, PAYLOAD))["id"] for _ in range(20)]
    rejoined = stack.figures("cluster_node_rejoined", after_rejoin, faults=0, within=WAIT)
    print(rejoined.line())
    assert_clean(rejoined)
    assert rejoined.outcomes == {"succeeded": 20}
