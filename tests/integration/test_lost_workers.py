"""A worker killed with -9 whose broker connection RabbitMQ still believes open: its running
job recovers by the heartbeat, within the bound (issue 16, 1b), on the real stack.

The worker reaches RabbitMQ through a TCP proxy that, once the worker is gone, keeps the
broker's side of each connection open and silent, as a dead host's connection looks until
RabbitMQ's own heartbeat gives up on it (a minute or more). So nothing redelivers the job's
message: the API's relay finds the worker silent past JOBLINE_WORKER_LOST_SECONDS, records
`worker_lost` and publishes the next attempt, which a live worker runs. Then the proxy lets
go of the held connections, RabbitMQ redelivers the dead worker's message while the new
attempt runs, and the live worker drops it (an attempt the job left behind) instead of
taking it for a second lost worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobline.jobs import workers
from tests.chaos import (
    AMQP_ADMIN_URL,
    ChaosStack,
    _url_parts,
    assert_clean,
    serving,
    stack_client_fixture,
)
from tests.support import RABBIT_API, start_worker

pytestmark = pytest.mark.integration

LOST_SECONDS = 5
# Generous: the CI machine is slower than it looks.
WAIT = 120.0
LONG = {"steps": 200, "step_seconds": 0.1}  # 20 s: still running when the old message returns
ENV = {"JOBLINE_WORKER_LOST_SECONDS": str(LOST_SECONDS), "JOBLINE_WORKER_HEARTBEAT_SECONDS": "1"}


class HoldingProxy:
    """Forwards TCP to RabbitMQ, in a thread of its own; when a client goes away it keeps
    the broker's side open and silent, until release()."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.held: list[asyncio.StreamWriter] = []
        self.pipes: set[asyncio.StreamWriter] = set()
        # The proxy's own ports towards RabbitMQ: the broker lists the connections by them.
        self.upstream_ports: set[int] = set()

    def start(self) -> int:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self.loop
        ).result()
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.upstream_ports.add(int(up_writer.get_extra_info("sockname")[1]))
        self.pipes |= {writer, up_writer}
        gone = asyncio.Event()

        async def upward() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(65536):
                    up_writer.write(data)
                    await up_writer.drain()
            # The client died: its broker connection stays open, and says nothing more.
            self.held.append(up_writer)
            gone.set()

        async def downward() -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await up_reader.read(65536):
                    if not gone.is_set():
                        writer.write(data)
                        with contextlib.suppress(ConnectionError, OSError):
                            await writer.drain()
            writer.transport.abort()

        await asyncio.gather(upward(), downward())

    def release(self) -> None:
        """Close the held connections: RabbitMQ now sees them go."""

        def abort() -> None:
            for held in self.held:
                held.transport.abort()

        self.loop.call_soon_threadsafe(abort)

    def close(self) -> None:
        async def shutdown() -> None:
            if self.server is not None:
                self.server.close()
            # Every pipe ends on its own once its sockets are gone.
            for pipe in self.pipes:
                pipe.transport.abort()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=10)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def stack(logdir: Path, var_dir: Path) -> Iterator[ChaosStack]:
    stack = ChaosStack("lost", logdir, var_dir)
    stack.env.update(ENV)
    with serving(stack) as chaos:
        yield chaos


client = stack_client_fixture()


def wait_for_event(
    stack: ChaosStack, job_id: str, type: str, attempt: int | None = None
) -> tuple[Any, ...]:
    """The job's first event of `type` (of `attempt`), waited for."""
    deadline = time.monotonic() + WAIT
    while True:
        for event in stack.events(job_id):
            if event[1] == type and (attempt is None or event[2] == attempt):
                return event
        assert time.monotonic() < deadline, f"no {type} for {job_id}: {stack.events(job_id)}"
        time.sleep(0.1)


def broker_connections(stack: ChaosStack, ports: set[int]) -> int:
    """How many of the proxy's connections RabbitMQ still holds open."""
    r = httpx.get(f"{RABBIT_API}/connections", auth=stack.rabbit_auth, timeout=10)
    return sum(1 for c in r.json() if c.get("vhost") == stack.vhost and c.get("peer_port") in ports)


async def test_a_killed_worker_the_broker_did_not_notice_loses_its_job_within_the_bound(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    user, password, host, port, _ = _url_parts(AMQP_ADMIN_URL)
    proxy = HoldingProxy(host, port or 5672)
    proxied = f"amqp://{user}:{password}@127.0.0.1:{proxy.start()}/{stack.vhost}"
    try:
        # Concurrency 1: with its one slot taken, RabbitMQ sends the dead worker nothing more.
        doomed = start_worker(
            "chaos", {**stack.env, "JOBLINE_BROKER_URL": proxied}, stack.logdir, "--concurrency=1"
        )
        stack.procs.append(doomed)
        r = await client.post("/api/v1/jobs", json={"type": "chaos.steady", "payload": LONG})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        wait_for_event(stack, job_id, "progress", attempt=1)

        killed_at = time.monotonic()
        doomed.stop(signal.SIGKILL)  # the whole process group: main process and pool
        held = 0
        for _ in range(30):  # the management API may list them late
            await asyncio.sleep(0.5)
            held = broker_connections(stack, proxy.upstream_ports)
            if held:
                break
        assert held >= 1, "RabbitMQ closed the dead worker's connections (was it restarted?)"
        live = stack.start_worker("chaos")  # direct to RabbitMQ: takes the next attempt

        lost = wait_for_event(stack, job_id, "worker_lost")
        lost_after = time.monotonic() - killed_at
        assert lost[2] == 1
        data = json.loads(lost[3])
        assert data["reason"] == workers.SILENT
        assert data["task_id"] == f"{job_id}.2"
        # RabbitMQ still believed the dead worker alive when its job was recovered.
        assert broker_connections(stack, proxy.upstream_ports) >= 1

        wait_for_event(stack, job_id, "started", attempt=2)
        assert stack.states([job_id])[job_id] == "running"
        proxy.release()  # RabbitMQ redelivers attempt 1's message while attempt 2 runs
        deadline = time.monotonic() + WAIT
        while "left behind" not in live.output():
            assert time.monotonic() < deadline, live.output()[-3000:]
            await asyncio.sleep(0.2)

        assert stack.wait_final([job_id], WAIT) == []
        done_after = time.monotonic() - killed_at
    finally:
        proxy.close()

    names = [event[1] for event in stack.events(job_id)]
    assert names.count("worker_lost") == 1 and names.count("started") == 2, names
    assert names[-1] == "succeeded", names
    figures = stack.figures("lost-worker-silent-connection", [job_id], faults=1, within=WAIT)
    figures.extra |= {
        "bound_s": LOST_SECONDS,
        "kill_to_worker_lost_s": round(lost_after, 1),
        "kill_to_succeeded_s": round(done_after, 1),
        "broker_connections_held": held,
    }
    print(figures.line())
    assert_clean(figures)
    # Recovered long before RabbitMQ's own heartbeat (60 s) could have noticed.
    assert lost_after < 60, lost_after


@pytest.fixture(scope="module")
def quiet_stack(logdir: Path, var_dir: Path) -> Iterator[ChaosStack]:
    """A stack whose API runs no relay: nothing recovers a lost worker's job by itself."""
    chaos = ChaosStack("lostcancel", logdir, var_dir)
    chaos.env.update(ENV)
    chaos.create()
    try:
        chaos.start_server(JOBLINE_API_RELAY="false")
        yield chaos
    finally:
        chaos.destroy()


async def test_cancel_of_a_job_whose_worker_is_gone_completes_at_once_then_retry_runs_it(
    quiet_stack: ChaosStack,
) -> None:
    stack = quiet_stack
    client = await stack.client()
    try:
        doomed = stack.start_worker("chaos", "--concurrency=1")
        r = await client.post("/api/v1/jobs", json={"type": "chaos.steady", "payload": LONG})
        job_id = r.json()["id"]
        # No relay: the API published it itself (the broker was healthy).
        wait_for_event(stack, job_id, "progress", attempt=1)
        doomed.stop(signal.SIGKILL)
        await asyncio.sleep(LOST_SECONDS + 2)  # silent past the bound; nobody recovers it
        assert stack.states([job_id])[job_id] == "running"

        r = await client.post(f"/api/v1/jobs/{job_id}/cancel")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "cancelled"  # at once: not cancel_requested
        r = await client.post(f"/api/v1/jobs/{job_id}/retry")
        assert r.status_code == 202, r.text
        assert r.json()["attempt"] == 2

        # A live worker runs attempt 2, once: the dead worker's message, which RabbitMQ
        # requeued when the kill closed its connection, is dropped as stale once the retry's
        # message is recorded queued (or, delivered first, runs attempt 2 itself and the
        # retry's message is then a duplicate).
        stack.start_worker("chaos")
        assert stack.wait_final([job_id], WAIT) == []
    finally:
        await client.aclose()
    names = [event[1] for event in stack.events(job_id)]
    assert names.count("cancelled") == 1 and "cancel_requested" not in names, names
    assert names[-1] == "succeeded" and names.count("started") == 2, names
    figures = stack.figures("cancel-lost-worker", [job_id], faults=1, within=WAIT)
    print(figures.line())
    assert_clean(figures)
