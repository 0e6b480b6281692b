"""Helpers the tests share: real services, worker processes, API clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
JOBLINE = str(Path(sys.executable).with_name("jobline"))
FINAL = {"succeeded", "failed", "cancelled"}
PASSWORD = "correct-horse-battery-staple"
WAIT_SECONDS = 60.0
RABBIT_API = os.environ.get("JOBLINE_TEST_RABBIT_API", "http://127.0.0.1:15672/api")
FULL_ACCESS = {"configure": ".*", "write": ".*", "read": ".*"}


def _rabbit_parts(amqp_url: str) -> tuple[str, tuple[str, str], str]:
    """(scheme, (user, password), host:port) of an AMQP URL."""
    scheme, rest = amqp_url.split("://", 1)
    creds, hostpart = rest.rsplit("@", 1)
    user, password = creds.split(":", 1)
    return scheme, (user, password), hostpart.split("/", 1)[0]


def add_vhost(amqp_url: str, vhost: str) -> str:
    """Create `vhost` on amqp_url's RabbitMQ, open to the URL's user; returns its AMQP URL."""
    scheme, auth, hostport = _rabbit_parts(amqp_url)
    r = httpx.put(f"{RABBIT_API}/vhosts/{vhost}", auth=auth, timeout=10)
    assert r.status_code in (201, 204), r.text
    r = httpx.put(
        f"{RABBIT_API}/permissions/{vhost}/{auth[0]}", auth=auth, timeout=10, json=FULL_ACCESS
    )
    assert r.status_code in (201, 204), r.text
    return f"{scheme}://{auth[0]}:{auth[1]}@{hostport}/{vhost}"


def drop_vhost(amqp_url: str, vhost: str) -> None:
    """Delete `vhost` (and its queues) from amqp_url's RabbitMQ."""
    _, auth, _ = _rabbit_parts(amqp_url)
    httpx.delete(f"{RABBIT_API}/vhosts/{vhost}", auth=auth, timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A jobline process started by a test, with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = WAIT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.popen.returncode}):\n{self.output()[-3000:]}"
                )
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not print {text!r}:\n{self.output()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def spawn(
    name: str, argv: list[str], env: Mapping[str, str], logdir: Path, cwd: Path = REPO
) -> Proc:
    """Start a process in its own session (so a stop takes its children too), output to a log."""
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(name, popen, log)


def start(
    name: str, args: list[str], env: Mapping[str, str], logdir: Path, cwd: Path = REPO
) -> Proc:
    """Start `jobline ARGS` (see spawn)."""
    return spawn(name, [JOBLINE, *args], env, logdir, cwd)


def children(pid: int) -> list[int]:
    """Direct children of a process (a Celery worker's pool processes), from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after it.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    found = [pid]
    for child in children(pid):
        found.extend(tree(child))
    return found


def start_worker(domain: str, env: Mapping[str, str], logdir: Path, *extra: str) -> Proc:
    proc = start(f"worker-{domain}", ["worker", f"--domain={domain}", *extra], env, logdir)
    proc.wait_for(f"{domain}@")
    proc.wait_for(" ready.")
    return proc


def start_server(env: Mapping[str, str], logdir: Path) -> tuple[Proc, str]:
    """A real uvicorn server; returns it and its base URL once /readyz answers 200."""
    port = free_port()
    proc = start("api", ["serve", "--host=127.0.0.1", f"--port={port}"], env, logdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.popen.poll() is not None:
            break
        time.sleep(0.2)
    proc.stop()
    raise RuntimeError(f"the API did not become ready:\n{proc.output()[-3000:]}")


@dataclass
class User:
    """A registered user and a client that sends their bearer token."""

    email: str
    id: uuid.UUID
    token: str
    client: httpx.AsyncClient
    jobs: list[str] = field(default_factory=list)

    async def submit(
        self, type: str, payload: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        r = await self.client.post(
            "/api/v1/jobs", json={"type": type, "payload": payload or {}, **extra}
        )
        assert r.status_code == 202, r.text
        job: dict[str, Any] = r.json()
        self.jobs.append(job["id"])
        return job

    async def wait_final(self, job_id: str, within: float = WAIT_SECONDS) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            r = await self.client.get(f"/api/v1/jobs/{job_id}")
            assert r.status_code == 200, r.text
            job: dict[str, Any] = r.json()
            if job["state"] in FINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {within}s")
            await asyncio.sleep(0.05)

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of a job, walking all pages."""
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"size": 100}
            if cursor:
                params["cursor"] = cursor
            r = await self.client.get(f"/api/v1/jobs/{job_id}/events", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            out.extend(page["items"])
            cursor = page["next_page"]
            if not cursor:
                return out


def types_of(events: list[dict[str, Any]]) -> list[str]:
    """The types of a job's events (as the API lists them), in order."""
    return [e["type"] for e in events]


def assert_history(events: list[dict[str, Any]], job: dict[str, Any]) -> None:
    """Seqs are 1..n without gaps, the projection's last_seq is n, attempts never go back."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert job["last_seq"] == len(events)
    attempts = [e["attempt"] for e in events]
    assert attempts == sorted(attempts)


async def register(
    client: httpx.AsyncClient, email: str | None = None, password: str = PASSWORD
) -> tuple[str, str, str]:
    """Register and log in over HTTP; returns (email, user id, bearer token)."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    r = await client.post("/api/v1/auth/jwt/login", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return email, user_id, r.json()["access_token"]


def copy_work_tree(target: Path) -> Path:
    """What a clone of this work tree holds: tracked and new files, no .venv, no var/."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, names):
        source = REPO / name.decode()
        if source.is_symlink():  # as a clone has it (platform/jobline/migrations)
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            (target / name.decode()).symlink_to(os.readlink(source))
        elif source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())
    return target


async def stopped_within(stop: Awaitable[None], seconds: float) -> None:
    """Fails unless `stop` returns within `seconds`. Not asyncio.timeout: a stop() that
    suppresses CancelledError would swallow the timeout's own cancel and pass."""
    stopping = asyncio.ensure_future(stop)
    done, _ = await asyncio.wait({stopping}, timeout=seconds)
    assert stopping in done, f"stop() still running after {seconds}s"
    stopping.result()
