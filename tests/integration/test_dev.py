"""`jobline dev`: one command runs the platform; Ctrl-C leaves nothing running.

Each test starts `jobline dev` as a user would, in a directory holding only queues.yaml and
tasks/, logs in with the credentials it printed, runs a job to `succeeded` (through httpx
and through the very shell lines it printed), then interrupts it and looks in /proc for
anything left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from jobline.config import Settings
from tests.conftest import AMQP_ADMIN_URL, RUN_ID
from tests.integration.dev_helpers import (
    DevRun,
    alive,
    clean_env,
    descendants,
    login,
    processes_in,
    project_dir,
    run_shell,
    start_dev,
    wait_final,
)
from tests.support import REPO, add_vhost, drop_vhost, free_port

pytestmark = pytest.mark.integration

DOMAINS = ("music", "video")
BURST_JOBS = 60
BURST_THREADS = 8


BURST = [
    ("music.transcode", {"source": "burst.wav", "chunks": 4, "step_seconds": 0.01}),
    ("music.fingerprint", {"source": "burst.wav", "step_seconds": 0.01}),
    ("video.thumbnail", {"source": "burst.mp4", "step_seconds": 0.01}),
]


def burst(client: httpx.Client, jobs: int) -> None:
    """Many jobs at once: the API and every worker process write to the database together."""
    with ThreadPoolExecutor(BURST_THREADS) as pool:
        answers = list(
            pool.map(
                lambda i: client.post(
                    "/api/v1/jobs", json={"type": BURST[i % 3][0], "payload": BURST[i % 3][1]}
                ),
                range(jobs),
            )
        )
    assert [a.status_code for a in answers] == [202] * jobs, [a.text for a in answers]
    states = [wait_final(client, a.json()["id"])["state"] for a in answers]
    assert states == ["succeeded"] * jobs


def run_a_job_then_interrupt(dev: DevRun, burst_jobs: int = 0) -> str:
    """The whole user story; returns dev's output."""
    banner = dev.banner()
    try:
        client = login(banner.base, banner.email, banner.password)
        burst(client, burst_jobs)
        r = client.post(
            "/api/v1/jobs",
            json={"type": "music.transcode", "payload": {"source": "song.wav", "chunks": 3}},
        )
        assert r.status_code == 202, r.text
        job = wait_final(client, r.json()["id"])
        assert job["state"] == "succeeded", job
        assert job["result"]["output"] == "song.wav.ogg"

        # The printed lines, pasted into a shell: submit, then follow the stream to its end.
        stream = run_shell("\n".join(banner.commands), dev.workdir)
        assert "event: submitted" in stream and "event: started" in stream, stream
        assert stream.rstrip().splitlines()[-1].startswith("data: "), stream
        last = json.loads(stream.rstrip().splitlines()[-1].removeprefix("data: "))
        assert last["type"] == "succeeded", stream

        tree = descendants(dev.popen.pid)
        # The API, and per domain a worker with at least one pool process.
        assert len(tree) >= 1 + 2 * len(DOMAINS), tree
    except BaseException:
        dev.kill()
        raise
    code = dev.interrupt()
    out = dev.output()
    assert code == 0, out[-3000:]
    assert "dev: every process stopped" in out
    survivors = {pid for pid in tree if alive(pid)} | processes_in(dev.workdir)
    assert not survivors, f"still running after Ctrl-C: {survivors}"
    return out


def test_dev_on_the_embedded_default_runs_a_job_and_stops_everything(tmp_path: Path) -> None:
    workdir = project_dir(tmp_path / "project")
    port = free_port()
    env = {"JOBLINE_API_PORT": str(port)}
    out = run_a_job_then_interrupt(start_dev(workdir, env), burst_jobs=BURST_JOBS)

    assert "(created now;" in out
    assert "database      sqlite://var/jobline.sqlite3" in out
    assert "broker        filesystem://" in out
    assert all(f"{domain}@" in out for domain in DOMAINS)
    assert "Flower" not in out, "the embedded broker has no events for Flower"
    assert (workdir / "var" / "jobline.sqlite3").exists()
    assert (workdir / "var" / "broker" / "queue").is_dir()
    # SQLite with the API and four pool processes writing at once: nobody waited in vain.
    assert "database is locked" not in out and '" 500' not in out

    # A second start: nothing to migrate, the same account and password, still working.
    again = start_dev(workdir, env)
    first = re.search(r"password: (\S+)", out)
    out2 = run_a_job_then_interrupt(again)
    second = re.search(r"password: (\S+)", out2)
    assert first and second and first.group(1) == second.group(1)
    assert "(0 migration(s) applied)" in out2 and "(existing;" in out2


def test_dev_refuses_a_busy_port_in_one_line(tmp_path: Path) -> None:
    import socket

    workdir = project_dir(tmp_path / "project")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        dev = start_dev(workdir, {"JOBLINE_API_PORT": str(port)})
        code = dev.popen.wait(120)
    out = dev.output()
    assert code == 1, out
    assert f"error: cannot listen on 127.0.0.1:{port}" in out
    assert "Traceback" not in out
    assert not processes_in(workdir)


def test_dev_refuses_production(tmp_path: Path) -> None:
    workdir = project_dir(tmp_path / "project")
    dev = start_dev(
        workdir,
        {
            "JOBLINE_ENV": "production",
            "JOBLINE_DATABASE_URL": "mysql://u:p@127.0.0.1:3306/x",
            "JOBLINE_BROKER_URL": "amqp://u:p@127.0.0.1:5672/x",
            "JOBLINE_SECRET_KEY": "k" * 48,
        },
    )
    assert dev.popen.wait(60) == 2
    assert "jobline dev is for development" in dev.output()


@pytest.fixture(scope="module")
def dev_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of its own: dev's workers are named music@host like the suite's."""
    vhost = f"jobline_dev_{RUN_ID}"
    yield add_vhost(AMQP_ADMIN_URL, vhost)
    drop_vhost(AMQP_ADMIN_URL, vhost)


def test_dev_on_mariadb_and_rabbitmq_runs_the_same_way_with_flower(
    tmp_path: Path, migrated: Settings, dev_vhost: str
) -> None:
    workdir = project_dir(tmp_path / "project")
    flower_port = free_port()
    env = {
        "JOBLINE_API_PORT": str(free_port()),
        "JOBLINE_DATABASE_URL": migrated.database_url,
        "JOBLINE_BROKER_URL": dev_vhost,
        "JOBLINE_FLOWER_PORT": str(flower_port),
        # The relay then runs as a process of its own.
        "JOBLINE_API_RELAY": "false",
    }
    dev = start_dev(workdir, env)
    banner = dev.banner()
    flower = f"http://127.0.0.1:{flower_port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                anonymous = httpx.get(flower, timeout=5)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, dev.output()[-3000:]
                time.sleep(0.5)
        assert anonymous.status_code == 401
        authed = httpx.get(flower, auth=(banner.email, banner.password), timeout=10)
        assert authed.status_code == 200
    except BaseException:
        dev.kill()
        raise
    out = run_a_job_then_interrupt(dev)
    assert "database      mysql://jobline:***@" in out
    assert "broker        amqp://jobline:***@" in out
    assert f"Flower        http://127.0.0.1:{flower_port}" in out
    assert "relay         its own process" in out and "relay  | relay " in out
    assert ":jobline@" not in out, "the database and broker passwords are masked"


def test_scripts_dev_names_a_python_too_old_to_run_jobline(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "dev", tmp_path / "scripts" / "dev")
    old = tmp_path / "python3.9"
    old.write_text('#!/bin/sh\n[ "$1" = "-V" ] && echo "Python 3.9.2" && exit 0\nexit 1\n')
    old.chmod(0o755)
    done = subprocess.run(
        [str(tmp_path / "scripts" / "dev")],
        env=clean_env({"PYTHON": str(old)}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"jobline needs Python 3.11 or newer; {old} is Python 3.9.2" in done.stderr
    assert not (tmp_path / ".venv").exists()


def test_a_child_that_dies_stops_dev_and_the_rest(tmp_path: Path) -> None:
    workdir = project_dir(tmp_path / "project")
    dev = start_dev(workdir, {"JOBLINE_API_PORT": str(free_port())})
    try:
        dev.banner()
        tree = descendants(dev.popen.pid)
        (music,) = [
            pid
            for pid in tree
            if "--domain=music" in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
            and _parent(pid) == dev.popen.pid
        ]
        os.kill(music, signal.SIGKILL)
        code = dev.popen.wait(120)
    except BaseException:
        dev.kill()
        raise
    out = dev.output()
    assert code == 1, out[-3000:]
    said = "dev: music exited with code -9; stopping the rest. Its last lines:\n"
    assert said in out
    # Its own last lines follow, so why it stopped is on the screen, not scrolled away.
    music_lines = {line.split("| ", 1)[1] for line in out.splitlines() if line.startswith("music")}
    after = out.split(said, 1)[1].splitlines()
    repeated = list(itertools.takewhile(lambda line: line.startswith("  "), after))
    assert repeated, after[:5]
    assert {line[2:] for line in repeated} <= music_lines, repeated
    assert "dev: every process stopped" in out
    assert not ({pid for pid in tree if alive(pid)} | processes_in(workdir))


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
