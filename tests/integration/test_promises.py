"""README promises that no other test held: each test names the sentence it checks.

docs/promises.md lists every promise of the README, docs/ and deploy/README.md with the
test that backs it; the ones that had none are here, run through the real processes.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobline.config import Settings
from tests.integration.dev_helpers import (
    DevRun,
    alive,
    descendants,
    login,
    processes_in,
    project_dir,
    start_dev,
)
from tests.integration.hardening import bearer
from tests.support import PASSWORD, Proc, free_port, start_server

pytestmark = pytest.mark.integration

WAIT_SECONDS = 60.0
# The idle keep-alive timeout the server under test is given, and how long past it the
# test waits: the close must have come by then.
KEEP_ALIVE_SECONDS = 1
KEEP_ALIVE_MARGIN_SECONDS = 4.0
CONCURRENCY_LIMIT = 3


def http_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n".encode()


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer with a Content-Length body, or what came before the server hung up."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            return data
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            break
        body += more
    return head + b"\r\n\r\n" + body


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


@pytest.fixture(scope="module")
def tight_server(
    migrated: Settings, stack_env: dict[str, str], logdir: Path
) -> Iterator[tuple[Proc, str]]:
    """`jobline serve` with a short keep-alive and a low concurrency limit."""
    env = {
        **stack_env,
        "JOBLINE_UVICORN_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE_SECONDS),
        "JOBLINE_UVICORN_LIMIT_CONCURRENCY": str(CONCURRENCY_LIMIT),
    }
    proc, base = start_server(env, logdir)
    yield proc, base
    proc.stop()


def test_an_idle_keep_alive_connection_is_closed_after_its_setting(
    tight_server: tuple[Proc, str],
) -> None:
    """Security, slow clients: 'an idle keep-alive connection is closed after
    JOBLINE_UVICORN_KEEP_ALIVE_SECONDS'."""
    _, base = tight_server
    with connect(base) as sock:
        sock.sendall(http_get("/healthz"))
        assert read_answer(sock).startswith(b"HTTP/1.1 200"), "the connection works"
        # Kept alive: a second request on it is answered.
        sock.sendall(http_get("/healthz"))
        assert read_answer(sock).startswith(b"HTTP/1.1 200")
        sock.settimeout(KEEP_ALIVE_SECONDS + KEEP_ALIVE_MARGIN_SECONDS)
        # Idle now: the server hangs up (an empty read), not the test's timeout.
        assert sock.recv(1) == b""


def test_uvicorn_answers_503_in_plain_text_at_its_concurrency_limit(
    tight_server: tuple[Proc, str],
) -> None:
    """Settings: JOBLINE_UVICORN_LIMIT_CONCURRENCY; the README says at how many connections
    uvicorn itself answers 503, and that this answer is uvicorn's, not the API's shape."""
    _, base = tight_server
    held = [connect(base) for _ in range(CONCURRENCY_LIMIT - 1)]
    try:
        # Idle connections count: they are open. The limit-th connection is refused.
        for sock in held:
            sock.sendall(http_get("/healthz"))
            assert read_answer(sock).startswith(b"HTTP/1.1 200")
        with connect(base) as refused:
            refused.sendall(http_get("/healthz"))
            answer = read_answer(refused)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"text/plain" in answer and answer.endswith(b"Service Unavailable"), answer
        assert b"x-content-type-options" not in answer.lower(), "uvicorn's, not the API's"
        # One fewer open: the same request is served again.
        held.pop().close()
        time.sleep(0.5)  # the server notices the close on its next loop turn
        with connect(base) as sock:
            sock.sendall(http_get("/healthz"))
            assert read_answer(sock).startswith(b"HTTP/1.1 200")
    finally:
        for sock in held:
            sock.close()


def test_a_request_that_is_not_http_gets_uvicorns_plain_400(live_server: str) -> None:
    """The API at a glance: 'Every error ... is {"detail": {"code", "message"}}' holds for
    what reaches the API; bytes that are not an HTTP request never do, and the README says
    so."""
    with connect(live_server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"text/plain" in answer, answer
    assert b"x-content-type-options" not in answer.lower(), "uvicorn's, not the API's"


def streams_open(base: str) -> float:
    """jobline_sse_streams_open as the API's /metrics says it (open in a test deployment)."""
    for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith("jobline_sse_streams_open "):
            return float(line.split()[1])
    raise AssertionError("no jobline_sse_streams_open sample")


def wait_streams_open(base: str, expected: float) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while (now := streams_open(base)) != expected:
        assert time.monotonic() < deadline, (now, expected)
        time.sleep(0.2)


def test_the_open_streams_gauge_counts_each_stream(live_server: str) -> None:
    """deploy/README, metrics: jobline_sse_streams_open is 'SSE streams open now'."""
    client, _ = bearer(live_server, PASSWORD)
    token = str(client.headers["Authorization"])
    client.close()
    before = streams_open(live_server)
    held: list[tuple[httpx.Client, httpx.Response]] = []
    try:
        for _ in range(3):
            c = httpx.Client(base_url=live_server, headers={"Authorization": token}, timeout=30)
            r = c.send(c.build_request("GET", "/api/v1/stream"), stream=True)
            assert r.status_code == 200
            held.append((c, r))
        wait_streams_open(live_server, before + 3)
    finally:
        for c, r in held:
            r.close()
            c.close()
    wait_streams_open(live_server, before)


# ------------------------------------------------------------------ jobline dev and Ctrl-C


def job_state(workdir: Path, job_id: str) -> str:
    """The job's state as stored, read after jobline dev (and its API) stopped."""
    with sqlite3.connect(workdir / "var" / "jobline.sqlite3") as db:
        row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert row is not None, job_id
    return str(row[0])


def submit_running(dev: DevRun, chunks: int, step_seconds: float) -> tuple[str, set[int]]:
    """A long music.transcode, once it runs; returns its id and dev's process tree."""
    banner = dev.banner()
    client = login(banner.base, banner.email, banner.password)
    try:
        payload = {"source": "long.wav", "chunks": chunks, "step_seconds": step_seconds}
        r = client.post("/api/v1/jobs", json={"type": "music.transcode", "payload": payload})
        assert r.status_code == 202, r.text
        job_id = str(r.json()["id"])
        deadline = time.monotonic() + WAIT_SECONDS
        while client.get(f"/api/v1/jobs/{job_id}").json()["state"] != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        return job_id, descendants(dev.popen.pid)
    finally:
        client.close()


def test_ctrl_c_lets_the_running_job_finish_and_a_second_one_kills_at_once(
    tmp_path: Path,
) -> None:
    """Quick start: 'Ctrl-C ... stops every process jobline dev started (a worker first
    finishes the job it is running; a second Ctrl-C kills at once)'."""
    workdir = project_dir(tmp_path / "project")
    env = {"JOBLINE_API_PORT": str(free_port())}

    dev = start_dev(workdir, env)
    try:
        job_id, tree = submit_running(dev, chunks=6, step_seconds=0.5)  # about 3 s
        code = dev.interrupt()
    except BaseException:
        dev.kill()
        raise
    assert code == 0, dev.output()[-3000:]
    assert job_state(workdir, job_id) == "succeeded", dev.output()[-3000:]
    assert not ({pid for pid in tree if alive(pid)} | processes_in(workdir))

    dev = start_dev(workdir, env)
    long_seconds = 100 * 0.5
    try:
        job_id, tree = submit_running(dev, chunks=100, step_seconds=0.5)
        os.killpg(dev.popen.pid, signal.SIGINT)
        time.sleep(1.0)  # the first Ctrl-C is being honoured: workers wait for the job
        assert dev.popen.poll() is None, "one Ctrl-C waits for the running job"
        started = time.monotonic()
        os.killpg(dev.popen.pid, signal.SIGINT)
        dev.popen.wait(long_seconds / 2)
        took = time.monotonic() - started
    except BaseException:
        dev.kill()
        raise
    # Killed mid-job: far sooner than the job's 50 s, and the job never finished.
    assert took < long_seconds / 5, took
    assert job_state(workdir, job_id) == "running"
    survivors = {pid for pid in tree if alive(pid)} | processes_in(workdir)
    assert not survivors, f"still running after the second Ctrl-C: {survivors}"
