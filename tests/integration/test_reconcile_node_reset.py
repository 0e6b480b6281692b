"""A RabbitMQ node reset under queued and running jobs: every job still runs once (issue 16.1).

`rabbitmqctl stop_app; reset; start_app` takes the node's vhosts, users, queues and
messages with it; the project's own script (deploy/local/rabbit-cluster setup-vhost) makes
the vhost, user and permissions again. Never on the shared node, which holds every other
test's vhost: a standalone node of deploy/local/rabbit-cluster, with its own name, ports
and data directory, started and stopped here.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.chaos import ChaosStack, assert_clean, serving, stack_client_fixture, wait_for_mariadb
from tests.support import REPO, Proc

pytestmark = pytest.mark.integration

SCRIPT = REPO / "deploy" / "local" / "rabbit-cluster"
WAIT = 180.0
SLOW = {"steps": 5, "step_seconds": 0.2}
SHORT = {"steps": 2, "step_seconds": 0.02}


def free_base() -> int:
    """A port base whose AMQP, management (+10000) and distribution (+20000) ports are free."""
    for _ in range(50):
        base = random.randint(6100, 9000)
        try:
            for port in (base, base + 10000, base + 20000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port base for a RabbitMQ node")


class Node:
    """One standalone RabbitMQ node of deploy/local/rabbit-cluster."""

    def __init__(self, folder: Path) -> None:
        self.name = f"jobline-r1-{uuid.uuid4().hex[:6]}"
        self.base = free_base()
        self.folder = folder
        self.options = [
            "--nodes",
            "1",
            "--name",
            self.name,
            "--port",
            str(self.base),
            "--dir",
            str(folder),
        ]

    def run(self, *args: str) -> str:
        out = subprocess.run(
            [str(SCRIPT), *self.options, *args],
            capture_output=True,
            text=True,
            timeout=WAIT + 120,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    @property
    def management(self) -> str:
        return f"http://jobline:jobline@127.0.0.1:{self.base + 10000}/api/"

    def url(self, vhost: str) -> str:
        return f"amqp://jobline:jobline@127.0.0.1:{self.base}/{vhost}"


class NodeStack(ChaosStack):
    """A chaos stack whose broker is the test's own node (the vhost made by the script)."""

    def __init__(self, node: Node, logdir: Path, var_dir: Path) -> None:
        super().__init__("reset", logdir, var_dir)
        self.node = node
        self.env["JOBLINE_BROKER_URL"] = node.url(self.vhost)
        self.env["JOBLINE_FLOWER_BROKER_API"] = node.management
        self.env["JOBLINE_RECONCILE_INTERVAL_SECONDS"] = "2"
        self.env["JOBLINE_RECONCILE_GRACE_SECONDS"] = "3"

    def make_vhost(self) -> None:
        self.node.run("setup-vhost", self.vhost)

    def destroy(self) -> None:
        for proc in self.procs:
            proc.stop()
        wait_for_mariadb()
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    if shutil.which("rabbitmqctl") is None and not Path("/usr/lib/rabbitmq/bin").exists():
        pytest.fail("RabbitMQ is not installed: deploy/local/services up installs it")
    folder = REPO / "var" / "rabbit-reconcile"
    one = Node(folder)
    one.run("start")
    try:
        yield one
    finally:
        one.run("stop")
        shutil.rmtree(folder / f"{one.name}-1", ignore_errors=True)


@pytest.fixture(scope="module")
def stack(node: Node, logdir: Path, var_dir: Path) -> Iterator[NodeStack]:
    with serving(NodeStack(node, logdir, var_dir)) as chaos:
        yield chaos


client = stack_client_fixture()


def requeued(stack: ChaosStack, ids: Sequence[str]) -> set[str]:
    marks = ",".join(["%s"] * len(ids))
    rows = stack.query(
        f"SELECT DISTINCT job_id FROM job_events WHERE type = 'requeued' AND job_id IN ({marks})",
        ids,
    )
    return {row[0] for row in rows}


class Supervised:
    """A worker started again whenever it exits, as the deployment's supervisor does
    (autorestart in deploy/supervisor/jobline.conf).

    A worker that reconnects after the reset but before setup-vhost made its user again is
    refused its login, and Celery ends on ACCESS_REFUSED: whether it does depends on when
    its retry falls (seen once in a full run, 6 December), not on jobline.
    """

    def __init__(self, start: Callable[[], Proc]) -> None:
        self.start = start
        self.proc = start()
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            if self.proc.popen.poll() is not None:
                self.restarts += 1
                try:
                    self.proc = self.start()
                except Exception:  # exited at once (its vhost not there yet): again
                    continue

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self.proc.stop()


async def test_a_node_reset_with_jobs_queued_and_running_loses_none(
    node: Node, stack: NodeStack, client: httpx.AsyncClient
) -> None:
    worker = Supervised(lambda: stack.start_worker("chaos"))
    try:
        running, _ = await stack.submit_many(client, [("chaos.steady", SLOW)] * 30)
        waiting, _ = await stack.submit_many(client, [("idle.steady", SHORT)] * 10)
        deadline = time.monotonic() + WAIT
        while "running" not in stack.states(running).values() or set(
            stack.states(waiting).values()
        ) != {"queued"}:
            assert time.monotonic() < deadline, Counter(stack.states(running + waiting).values())
            await asyncio.sleep(0.2)

        node.run("reset-node", "1")
        node.run("setup-vhost", stack.vhost)

        # The idle domain has no worker: its jobs are published again (found lost), then run.
        deadline = time.monotonic() + WAIT
        while requeued(stack, waiting) != set(waiting):
            assert time.monotonic() < deadline, f"{len(requeued(stack, waiting))} of 10 requeued"
            await asyncio.sleep(0.5)
        idle = stack.start_worker("idle")
        ids = running + waiting
        figures = stack.figures("node-reset", ids, faults=1, within=WAIT)
    finally:
        worker.stop()  # before the stack stops its processes: none started after
    idle.stop()
    print(figures.line(), "requeued:", len(requeued(stack, ids)), "restarts:", worker.restarts)
    assert_clean(figures)
    assert figures.outcomes == {"succeeded": len(ids)}
    for job_id in ids:
        types = [row[1] for row in stack.events(job_id)]
        assert types.count("started") == 1, types
