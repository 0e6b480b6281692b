"""`jobline reconcile [--domain NAME] [--dry-run]`: an operator forces a round and reads
what it decided and why (issue 16.1).

Its own stack, whose API process does not reconcile (interval 0), so what the command
prints is all that happens.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kombu import Connection

from tests.chaos import ChaosStack, assert_clean, serving, stack_client_fixture
from tests.support import JOBLINE, REPO

pytestmark = pytest.mark.integration

SHORT = {"steps": 2, "step_seconds": 0.01}
WAIT = 120.0
GRACE = {"JOBLINE_RECONCILE_GRACE_SECONDS": "1"}


@pytest.fixture(scope="module")
def stack(logdir: Path, var_dir: Path) -> Iterator[ChaosStack]:
    stack = ChaosStack("reconcilecli", logdir, var_dir)
    stack.env["JOBLINE_RECONCILE_INTERVAL_SECONDS"] = "0"
    with serving(stack) as chaos:
        yield chaos


client = stack_client_fixture()


def requeued(stack: ChaosStack) -> int:
    return int(stack.query("SELECT COUNT(*) FROM job_events WHERE type = 'requeued'")[0][0])


async def test_reconcile_prints_what_it_would_publish_then_publishes_it(
    stack: ChaosStack, client: httpx.AsyncClient
) -> None:
    ids, _ = await stack.submit_many(client, [("idle.steady", SHORT)] * 5)
    deadline = time.monotonic() + WAIT
    while set(stack.states(ids).values()) != {"queued"}:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.3)
    with Connection(stack.env["JOBLINE_BROKER_URL"]) as conn:
        conn.default_channel.queue_purge("idle")
    await asyncio.sleep(2)  # past the grace period

    stack.env.update(GRACE)
    dry = stack.cli("reconcile", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "idle (queue idle): broker ready 0" in dry.stdout
    assert "5 queued job(s) over the grace period without an outbox row; lost: 5" in dry.stdout
    assert all(job_id in dry.stdout for job_id in ids)
    assert "would publish 5 job(s) again (dry run: nothing changed)" in dry.stdout
    assert requeued(stack) == 0 and stack.message_count("idle") == 0

    other = stack.cli("reconcile", "--domain", "chaos")
    assert other.returncode == 0, other.stdout + other.stderr
    assert "chaos (queue chaos)" in other.stdout and "idle" not in other.stdout
    assert "requeued 0 of 0 lost job(s)" in other.stdout

    done = stack.cli("reconcile", "--domain", "idle")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "requeued 5 of 5 lost job(s): the relays publish them from the outbox" in done.stdout
    assert requeued(stack) == 5
    while stack.message_count("idle") != 5:  # the API process's relay publishes them
        assert time.monotonic() < deadline + WAIT, stack.message_count("idle")
        await asyncio.sleep(0.3)

    again = stack.cli("reconcile", "--domain", "idle")
    assert "requeued 0 of 0 lost job(s)" in again.stdout, again.stdout

    worker = stack.start_worker("idle")
    figures = stack.figures("reconcile-cli", ids, faults=1, within=WAIT)
    worker.stop()
    print(figures.line())
    assert_clean(figures)
    assert figures.outcomes == {"succeeded": 5}


def test_an_unknown_domain_is_refused_with_the_known_ones(stack: ChaosStack) -> None:
    out = stack.cli("reconcile", "--domain", "nope")
    assert out.returncode == 2
    assert "no domain nope" in out.stderr and "chaos" in out.stderr


def test_the_embedded_broker_is_not_reconciled(stack: ChaosStack, tmp_path: Path) -> None:
    env = {**os.environ, **stack.env, "JOBLINE_BROKER_URL": "filesystem://"}
    env["JOBLINE_VAR_DIR"] = str(tmp_path)
    out = subprocess.run(
        [JOBLINE, "reconcile"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert "reconciliation needs RabbitMQ" in out.stderr


def test_an_unreachable_broker_is_one_line_and_exit_3(stack: ChaosStack) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = closed.getsockname()[1]
    env = {**os.environ, **stack.env}
    env["JOBLINE_BROKER_URL"] = f"amqp://jobline:secret@127.0.0.1:{port}/nowhere"
    env["JOBLINE_FLOWER_BROKER_API"] = f"http://127.0.0.1:{port}/api/"
    try:
        out = subprocess.run(
            [JOBLINE, "reconcile"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
    finally:
        closed.close()
    assert out.returncode == 3, out.stdout + out.stderr
    assert "is unreachable" in out.stderr and "secret" not in out.stderr
    assert "Traceback" not in out.stderr
