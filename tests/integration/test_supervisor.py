"""supervisor, run for real: the generated deploy/supervisor/jobline.conf under `supervisord`.

A deployment directory like /srv/jobline (queues.yaml with two `music` processes, tasks/,
asgi.py, deploy/gunicorn.conf.py, .venv, and its settings in `.env`), Debian's own
supervisord.conf with its paths moved into a temporary directory, and the README's
`prod-supervisor` commands. Against MariaDB and RabbitMQ (a database and a vhost of this
module's own): every process RUNNING, the API under gunicorn, two consumers on the music
queue, the relay and Flower; then `kill -9` of the worker running a job, and `supervisorctl
stop all` with jobs running. Run with -s to see the figures.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.chaos import AMQP_ADMIN_URL, ChaosStack
from tests.integration.dev_helpers import clean_env
from tests.integration.test_readme import block
from tests.support import (
    JOBLINE,
    PASSWORD,
    RABBIT_API,
    REPO,
    add_vhost,
    drop_vhost,
    free_port,
    tree,
)

pytestmark = pytest.mark.integration

DEBIAN_CONF = Path("/etc/supervisor/supervisord.conf")
MUSIC_PROCESSES = 2
START_SECONDS = 180.0
WAIT = 120.0
SHORT = {"source": "short.wav", "chunks": 4, "step_seconds": 0.25}
# Long enough to be killed or stopped mid-run.
LONG = {"source": "long.wav", "chunks": 40, "step_seconds": 0.25}
FLOWER_PURGE_SECONDS = 5
STATUS_LINE = re.compile(r"^(\S+)\s+([A-Z]+)\s*(.*)$")


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (supervisor numbers processes by port)."""
    while True:
        first = free_port()
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue


@dataclass
class Supervised:
    """A supervisord running the generated programs, and the stack they run against."""

    stack: ChaosStack
    root: Path
    conf: Path
    daemon: subprocess.Popen[bytes]
    log: Path
    api: str
    flower: str
    flower_auth: tuple[str, str]
    metrics_port: int

    def ctl(self, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["supervisorctl", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def status(self) -> dict[str, tuple[str, int | None]]:
        """Each process: its state and pid, as `supervisorctl status` prints them."""
        out: dict[str, tuple[str, int | None]] = {}
        for line in self.ctl("status").stdout.splitlines():
            match = STATUS_LINE.match(line)
            if match:
                pid = re.search(r"pid (\d+)", match.group(3))
                out[match.group(1)] = (match.group(2), int(pid.group(1)) if pid else None)
        return out

    def wait_states(self, state: str, within: float = START_SECONDS) -> dict[str, int | None]:
        deadline = time.monotonic() + within
        while True:
            status = self.status()
            if status and all(s == state for s, _ in status.values()):
                return {name: pid for name, (_, pid) in status.items()}
            assert time.monotonic() < deadline, (status, self.logs())
            time.sleep(0.5)

    def logs(self) -> str:
        tails = [f"--- supervisord\n{self.log.read_text(errors='replace')[-2000:]}"]
        for path in sorted((self.root / "log").glob("*.log")):
            tails.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(tails)

    def music_workers(self) -> dict[str, int]:
        """supervisor's name -> pid of every music worker process."""
        return {
            name: pid
            for name, (_, pid) in self.status().items()
            if "jobline-worker-music-" in name and pid is not None
        }


def flower_workers(sup: Supervised) -> dict[str, bool]:
    """Flower's worker list (its dashboard's data): node name -> online."""
    r = httpx.get(f"{sup.flower}/workers", params={"json": 1}, auth=sup.flower_auth, timeout=30)
    assert r.status_code == 200, r.text
    return {w["hostname"]: bool(w["status"]) for w in r.json()["data"]}


def consumers(amqp_url: str, queue: str) -> int:
    """Consumers of a queue, from RabbitMQ's management API."""
    vhost = amqp_url.rsplit("/", 1)[1]
    r = httpx.get(f"{RABBIT_API}/queues/{vhost}/{queue}", auth=("jobline", "jobline"), timeout=10)
    assert r.status_code == 200, r.text
    return int(r.json().get("consumers", 0))


def wait_consumers(amqp_url: str, queue: str, count: int, within: float = WAIT) -> None:
    deadline = time.monotonic() + within
    while (found := consumers(amqp_url, queue)) != count:
        assert time.monotonic() < deadline, f"{found} consumers on {queue}, not {count}"
        time.sleep(1)


def deployment(root: Path, env_lines: dict[str, str]) -> None:
    """What a checkout at /srv/jobline holds: the app's files, .venv and .env."""
    (root / ".venv").symlink_to(REPO / ".venv")
    (root / "deploy").mkdir()
    shutil.copy(REPO / "deploy" / "gunicorn.conf.py", root / "deploy")
    shutil.copy(REPO / "asgi.py", root)
    shutil.copytree(REPO / "tasks", root / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    queues = yaml.safe_load((REPO / "queues.yaml").read_text())
    queues["domains"]["music"]["processes"] = MUSIC_PROCESSES
    # The test's one user must keep both processes busy: no fair-share cap (queues.yaml's
    # default leaves a slot to other users, which would run its jobs one at a time).
    queues["domains"]["music"]["max_running_per_user"] = 0
    (root / "queues.yaml").write_text(yaml.safe_dump(queues, sort_keys=False))
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in env_lines.items()))


def supervisord_conf(here: Path) -> Path:
    """Debian's supervisord.conf, its socket, logs and conf.d moved under `here`."""
    text = DEBIAN_CONF.read_text()
    moves = {
        "/var/run/": f"{here}/run/",
        "/var/log/supervisor": f"{here}/log/supervisor",
        "/etc/supervisor/conf.d": f"{here}/conf.d",
    }
    for old, new in moves.items():
        assert old in text, f"{DEBIAN_CONF} no longer names {old}"
        text = text.replace(old, new)
        Path(new.rstrip("/")).mkdir(parents=True, exist_ok=True)
    conf = here / "supervisord.conf"
    conf.write_text(text)
    return conf


def run_bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0, f"{script}\n--- out\n{done.stdout}\n--- err\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def supervised(
    tmp_path_factory: pytest.TempPathFactory, logdir: Path, var_dir: Path
) -> Iterator[Supervised]:
    stack = ChaosStack("supervisor", logdir, var_dir)
    stack.create()  # its own database (migrated) and vhost
    root = tmp_path_factory.mktemp("srv")
    here = tmp_path_factory.mktemp("supervisor")
    api_port, flower_port, metrics_port = free_port(), free_port(), free_ports(MUSIC_PROCESSES + 1)
    flower_auth = ("ops", "flower-" + os.urandom(8).hex())
    deployment(
        root,
        {
            "JOBLINE_ENV": "production",
            "JOBLINE_DATABASE_URL": stack.env["JOBLINE_DATABASE_URL"],
            "JOBLINE_BROKER_URL": stack.env["JOBLINE_BROKER_URL"],
            "JOBLINE_SECRET_KEY": os.urandom(32).hex(),
            "JOBLINE_FLOWER_BASIC_AUTH": ":".join(flower_auth),
            "JOBLINE_API_PORT": str(api_port),
            "JOBLINE_API_WORKERS": "1",
            "JOBLINE_FLOWER_PORT": str(flower_port),
            "JOBLINE_FLOWER_PURGE_OFFLINE_SECONDS": str(FLOWER_PURGE_SECONDS),
        },
    )
    # Settings come from .env alone, as under a real supervisord.
    env = clean_env({})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    logs = root / "log"
    out = run_bash(
        f"{JOBLINE} check-config\n"
        f'{JOBLINE} deploy supervisor --root "$PWD" --user "$(id -un)"'
        f" --log-dir {logs} --metrics-port {metrics_port}",
        root,
        env,
    )
    assert "processes=2" in out, out
    conf = supervisord_conf(here)
    log = here / "supervisord.out"
    with log.open("wb") as sink:
        daemon = subprocess.Popen(
            ["supervisord", "--nodaemon", "-c", str(conf)],
            cwd=here,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sup = Supervised(
        stack,
        root,
        conf,
        daemon,
        log,
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{flower_port}",
        flower_auth,
        metrics_port,
    )
    try:
        deadline = time.monotonic() + WAIT
        while sup.ctl("pid").returncode != 0:
            assert daemon.poll() is None and time.monotonic() < deadline, sup.logs()
            time.sleep(0.2)
        # The README's commands, with /etc/supervisor and /var/log moved here.
        commands = (
            block("prod-supervisor")
            .replace("/var/log/jobline", str(logs))
            .replace("/etc/supervisor/conf.d", str(here / "conf.d"))
            .replace("supervisorctl", f"supervisorctl -c {conf}")
        )
        run_bash(commands, root, env)
        yield sup
    finally:
        sup.ctl("shutdown", timeout=WAIT)
        try:
            daemon.wait(WAIT)
        except subprocess.TimeoutExpired:
            for pid in reversed(tree(daemon.pid)):
                os.kill(pid, signal.SIGKILL)
            daemon.wait()
        stack.destroy()


@pytest.fixture(scope="module")
def client(supervised: Supervised) -> Iterator[httpx.Client]:
    """A user of the supervised API, made as production makes accounts (registration is
    closed there): `jobline users create` with the password on stdin, settings from .env."""
    supervised.wait_states("RUNNING")
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{supervised.api}/readyz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, supervised.logs()
        time.sleep(0.5)
    with httpx.Client(base_url=supervised.api, timeout=30) as c:
        email = f"ops-{os.urandom(4).hex()}@example.com"
        made = subprocess.run(
            [JOBLINE, "users", "create", email],
            cwd=supervised.root,
            env=clean_env({}),
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        r = c.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield c


def submit(client: httpx.Client, payload: dict[str, Any]) -> str:
    r = client.post("/api/v1/jobs", json={"type": "music.transcode", "payload": payload})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def events(stack: ChaosStack, job_id: str) -> list[tuple[str, int, str]]:
    """(type, attempt, data) of a job's events, in order, read from the database."""
    return [
        (str(t), int(a), str(d))
        for t, a, d in stack.query(
            "SELECT type, attempt, data FROM job_events WHERE job_id = %s ORDER BY seq", [job_id]
        )
    ]


def started_by(stack: ChaosStack, job_id: str, within: float = WAIT) -> str:
    """The node name in the job's first `started` event, once there is one."""
    deadline = time.monotonic() + within
    while True:
        rows = stack.query(
            "SELECT JSON_VALUE(data, '$.worker') FROM job_events"
            " WHERE job_id = %s AND type = 'started' ORDER BY seq",
            [job_id],
        )
        if rows:
            return str(rows[0][0])
        assert time.monotonic() < deadline, f"job {job_id} never started"
        time.sleep(0.2)


def assert_each_ran_once(stack: ChaosStack, ids: list[str]) -> None:
    """Every job succeeded, with one terminal event, no transition twice, replay clean."""
    assert stack.wait_final(ids, WAIT) == []
    assert set(stack.states(ids).values()) == {"succeeded"}
    assert stack.duplicate_transitions(ids) == []
    assert set(stack.terminal_counts(ids).values()) == {1}
    verify = stack.replay_verify()
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_worker_that_cannot_start_exits_non_zero(supervised: Supervised) -> None:
    """Celery reports an unrecoverable error; `jobline worker` used to exit 0 after it."""
    vhost = f"{supervised.stack.vhost}_bad"
    broker = add_vhost(AMQP_ADMIN_URL, vhost)
    try:
        # A queue declared with other arguments: the worker's own declaration is refused.
        r = httpx.put(
            f"{RABBIT_API}/queues/{vhost}/video",
            auth=("jobline", "jobline"),
            json={"durable": True, "arguments": {"x-max-priority": 5}},
            timeout=10,
        )
        assert r.status_code in (201, 204), r.text
        done = subprocess.run(
            [JOBLINE, "worker", "--domain=video", "--concurrency=1"],
            cwd=REPO,
            env={
                **os.environ,
                **supervised.stack.env,
                "JOBLINE_BROKER_URL": broker,
                "JOBLINE_QUEUES_FILE": str(REPO / "queues.yaml"),
            },
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
    finally:
        drop_vhost(AMQP_ADMIN_URL, vhost)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Unrecoverable error" in done.stdout + done.stderr


def test_every_program_runs_the_api_answers_and_flower_and_the_relay_run(
    supervised: Supervised, client: httpx.Client
) -> None:
    port = supervised.metrics_port
    names = {
        "jobline:jobline-api",
        *(f"jobline:jobline-worker-music-{port + i}" for i in range(MUSIC_PROCESSES)),
        f"jobline:jobline-worker-video-{port + MUSIC_PROCESSES}",
        "jobline:jobline-relay",
        "jobline:jobline-flower",
    }
    pids = supervised.wait_states("RUNNING")
    assert set(pids) == names
    assert supervised.ctl("status").returncode == 0
    api = Path(f"/proc/{pids['jobline:jobline-api']}/cmdline").read_bytes().split(b"\0")
    assert any(part.endswith(b"gunicorn") for part in api), api
    job_id = submit(client, SHORT)
    assert supervised.stack.wait_final([job_id], WAIT) == []
    assert client.get(f"/api/v1/jobs/{job_id}").json()["state"] == "succeeded"
    relay_log = supervised.root / "log" / "relay.log"
    assert "publishing the outbox" in relay_log.read_text()
    flower = supervised.flower
    assert httpx.get(f"{flower}/healthcheck", timeout=10).status_code == 401
    assert httpx.get(f"{flower}/healthcheck", auth=supervised.flower_auth, timeout=10).text == "OK"


def test_two_processes_of_a_domain_consume_its_queue_under_their_own_names(
    supervised: Supervised, client: httpx.Client
) -> None:
    broker = supervised.stack.env["JOBLINE_BROKER_URL"]
    wait_consumers(broker, "music", MUSIC_PROCESSES)
    wait_consumers(broker, "video", 1)
    host = socket.gethostname()
    expected = {f"music@{host}:{pid}" for pid in supervised.music_workers().values()}
    assert len(expected) == MUSIC_PROCESSES
    # Flower sees each process as a worker of its own, still `music@host`.
    deadline = time.monotonic() + WAIT
    while True:
        r = httpx.get(
            f"{supervised.flower}/api/workers",
            params={"refresh": 1},
            auth=supervised.flower_auth,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        in_flower = {name for name in r.json() if name.startswith("music@")}
        if expected <= in_flower:
            break
        assert time.monotonic() < deadline, (in_flower, expected)
        time.sleep(1)
    # Each process serves /metrics on the port supervisor numbered it with, once it has
    # started its server (a full run of 6 December asked one that had not yet: refused).
    for i in range(MUSIC_PROCESSES + 1):
        url = f"http://127.0.0.1:{supervised.metrics_port + i}/metrics"
        deadline = time.monotonic() + WAIT
        while True:
            try:
                r = httpx.get(url, timeout=10)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, f"nothing serves {url}"
                time.sleep(0.5)
        assert r.status_code == 200
    # RabbitMQ hands the jobs round to both consumers: both run some, named in `started`.
    ids = [submit(client, SHORT) for _ in range(4 * MUSIC_PROCESSES)]
    assert_each_ran_once(supervised.stack, ids)
    ran_on = Counter(started_by(supervised.stack, job_id) for job_id in ids)
    print(f"\nSUPERVISOR jobs per music process: {dict(ran_on)}")
    assert set(ran_on) == expected


def test_a_worker_killed_with_9_is_restarted_and_its_job_ends_once(
    supervised: Supervised, client: httpx.Client
) -> None:
    stack = supervised.stack
    job_id = submit(client, LONG)
    worker = started_by(stack, job_id)
    pid = int(worker.rsplit(":", 1)[1])
    (name,) = [n for n, p in supervised.music_workers().items() if p == pid]
    deadline = time.monotonic() + WAIT
    while flower_workers(supervised).get(worker) is not True:
        assert time.monotonic() < deadline, flower_workers(supervised)
        time.sleep(1)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + START_SECONDS
    while True:
        state, new_pid = supervised.status()[name]
        if state == "RUNNING" and new_pid not in (None, pid):
            break
        assert time.monotonic() < deadline, supervised.logs()
        time.sleep(0.5)
    restarted = time.monotonic() - killed_at
    wait_consumers(stack.env["JOBLINE_BROKER_URL"], "music", MUSIC_PROCESSES)
    assert_each_ran_once(stack, [job_id])
    history = [(t, a, d) for t, a, d in events(stack, job_id) if t != "progress"]
    print(
        f"\nSUPERVISOR kill -9 of {worker}: RUNNING again as pid {new_pid} after"
        f" {restarted:.1f} s; the job's events: {history}"
    )
    assert [t for t, _, _ in history].count("succeeded") == 1
    # The restarted process is a new node; Flower forgets the killed one once it has been
    # offline JOBLINE_FLOWER_PURGE_OFFLINE_SECONDS.
    host = socket.gethostname()
    alive = {f"music@{host}:{p}" for p in supervised.music_workers().values()}
    deadline = time.monotonic() + WAIT
    while True:
        listed = flower_workers(supervised)
        if worker not in listed and all(listed.get(n) for n in alive):
            break
        assert time.monotonic() < deadline, (listed, worker, alive)
        time.sleep(1)


def test_stop_all_stops_every_process_and_loses_no_job(
    supervised: Supervised, client: httpx.Client
) -> None:
    stack = supervised.stack
    ids = [submit(client, {**LONG, "chunks": 12}) for _ in range(6)]
    deadline = time.monotonic() + WAIT
    while Counter(stack.states(ids).values())["running"] < MUSIC_PROCESSES:
        assert time.monotonic() < deadline, stack.states(ids)
        time.sleep(0.2)
    began = time.monotonic()
    stopped = supervised.ctl("stop", "all")
    took = time.monotonic() - began
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    supervised.wait_states("STOPPED", within=10)
    # Nothing of jobline is left running: supervisord is alone in its process tree.
    assert tree(supervised.daemon.pid) == [supervised.daemon.pid]
    states = Counter(stack.states(ids).values())
    print(f"\nSUPERVISOR stop all took {took:.1f} s; the jobs then: {dict(states)}")
    # A stopping worker finishes the jobs it runs; the rest wait in the queue.
    assert set(states) <= {"succeeded", "queued"}, states
    started = supervised.ctl("start", "all")
    assert started.returncode == 0, started.stdout + started.stderr
    supervised.wait_states("RUNNING")
    assert_each_ran_once(stack, ids)
