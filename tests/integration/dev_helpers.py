"""Helpers of the `jobline dev` and README tests: run `jobline dev` like a user does."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support import JOBLINE, REPO

# A first start migrates, creates the demo account and forks a worker pool per domain.
START_SECONDS = 180.0
STOP_SECONDS = 60.0
BANNER = "jobline dev is up"


def project_dir(root: Path) -> Path:
    """An empty directory holding only what a deployment brings: queues.yaml and tasks/."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "queues.yaml", root / "queues.yaml")
    shutil.copytree(REPO / "tasks", root / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any JOBLINE_ variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    return {**env, **extra}


@dataclass
class Banner:
    """What `jobline dev` printed once everything was up."""

    base: str
    email: str
    password: str
    commands: list[str]


@dataclass
class DevRun:
    """A `jobline dev` process started by a test, leading its own process group."""

    popen: subprocess.Popen[bytes]
    log: Path
    workdir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = START_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"jobline dev exited ({self.popen.returncode}):\n{out[-4000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(f"jobline dev did not print {text!r}:\n{self.output()[-4000:]}")

    def banner(self) -> Banner:
        out = self.wait_for(BANNER)
        # The banner is printed whole, after the line that announces it.
        out = self.wait_for("curl -N", timeout=10)
        base = re.search(r"API docs\s+(http://\S+)/docs", out)
        account = re.search(r"demo account\s+(\S+)\s+password: (\S+)", out)
        assert base and account, out[-3000:]
        commands = re.findall(r"^  ((?:export TOKEN=|JOB=\$\(curl |curl -N ).*)$", out, re.M)
        assert len(commands) == 3, out[-3000:]
        return Banner(base.group(1), account.group(1), account.group(2), commands)

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the foreground process group."""
        os.killpg(self.popen.pid, signal.SIGINT)
        try:
            return self.popen.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """Clean up after a failed test: the whole tree, whatever state it is in."""
        for pid in [self.popen.pid, *descendants(self.popen.pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_SECONDS)


def start_dev(workdir: Path, env: Mapping[str, str], *args: str) -> DevRun:
    """Start `jobline dev` in `workdir` with exactly these JOBLINE_ variables."""
    log = workdir / f"dev-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [JOBLINE, "dev", *args],
            cwd=workdir,
            env=clean_env(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return DevRun(popen, log, workdir)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def descendants(root: int) -> set[int]:
    """Every process below `root` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[1]
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie is dead: only its exit status is left for its parent)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def processes_in(workdir: Path) -> set[int]:
    """Live processes whose working directory is `workdir` (everything dev starts runs there)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = (entry / "cwd").readlink()
        except OSError:
            continue
        if cwd == workdir and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


def login(base: str, email: str, password: str) -> httpx.Client:
    """A client logged in over HTTP with the printed credentials."""
    r = httpx.post(
        f"{base}/api/v1/auth/jwt/login", data={"username": email, "password": password}, timeout=30
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def wait_final(client: httpx.Client, job_id: str, within: float = START_SECONDS) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = client.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
        time.sleep(0.1)


def run_shell(script: str, cwd: Path, timeout: float = START_SECONDS) -> str:
    """Run lines as a user pastes them into bash; returns stdout (stderr on failure)."""
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{script}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout
