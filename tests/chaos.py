"""A private jobline stack to break: its own database, vhost, API server and workers.

Used by tests/integration/test_faults*.py and by the long run (bench/chaos_run.py). Faults
act on real processes and the shared services: kill -9 of pool children and workers,
`rabbitmqctl stop_app`/`start_app`, `mariadb-admin shutdown` then `deploy/local/services up`.
The checks read the database directly, so they work while the API is down.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pymysql
import pytest
from celery import Celery

from tests.support import (
    JOBLINE,
    RABBIT_API,
    REPO,
    Proc,
    add_vhost,
    drop_vhost,
    register,
    start,
    start_server,
    start_worker,
)

CHAOS_QUEUES = REPO / "tests" / "chaos_queues.yaml"
TERMINAL = ("succeeded", "failed", "cancelled")
MYSQL_ADMIN_URL = os.environ.get(
    "JOBLINE_TEST_DATABASE_URL", "mysql://jobline:jobline@127.0.0.1:3306/jobline_test"
)
AMQP_ADMIN_URL = os.environ.get(
    "JOBLINE_TEST_BROKER_URL", "amqp://jobline:jobline@127.0.0.1:5672/jobline_test"
)
SERVICES = REPO / "deploy" / "local" / "services"
SERVICE_WAIT_SECONDS = 120.0


def _url_parts(url: str) -> tuple[str, str, str, int, str]:
    """(user, password, host, port, path) of a mysql:// or amqp:// URL."""
    rest = url.split("://", 1)[1]
    creds, hostpart = rest.rsplit("@", 1)
    user, password = creds.split(":", 1)
    hostport, _, path = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    return user, password, host, int(port or 0), path


@dataclass
class Figures:
    """What a fault run reports: jobs submitted, faults injected, jobs lost, duplicate transitions."""

    name: str
    submitted: int
    faults: int
    lost: int
    duplicates: int
    outcomes: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items() if not k.startswith("_"))
        return (
            f"FAULT-FIGURES {self.name}: submitted={self.submitted} faults={self.faults} "
            f"lost={self.lost} duplicate_transitions={self.duplicates} outcomes={self.outcomes} {extra}"
        ).rstrip()


class ChaosStack:
    """One private stack; `create()` it, `destroy()` it."""

    def __init__(self, name: str, logdir: Path, var_dir: Path) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.name = name
        self.logdir = logdir
        user, password, host, port, _ = _url_parts(MYSQL_ADMIN_URL)
        self.mysql = {"user": user, "password": password, "host": host, "port": port or 3306}
        self.database = f"jobline_test_chaos_{name}_{suffix}"
        a_user, a_password, a_host, a_port, _ = _url_parts(AMQP_ADMIN_URL)
        self.vhost = f"jobline_test_chaos_{name}_{suffix}"
        self.rabbit_auth = (a_user, a_password)
        self.env = {
            "JOBLINE_ENV": "test",
            "JOBLINE_DATABASE_URL": (
                f"mysql://{user}:{password}@{host}:{self.mysql['port']}/{self.database}"
            ),
            "JOBLINE_BROKER_URL": f"amqp://{a_user}:{a_password}@{a_host}:{a_port or 5672}/{self.vhost}",
            "JOBLINE_SECRET_KEY": "chaos-secret-" + "x" * 40,
            "JOBLINE_VAR_DIR": str(var_dir),
            "JOBLINE_QUEUES_FILE": str(CHAOS_QUEUES),
            "JOBLINE_PROGRESS_MIN_INTERVAL_MS": "100",
            "JOBLINE_CANCEL_POLL_SECONDS": "0.3",
            "JOBLINE_RELAY_INTERVAL_SECONDS": "0.3",
            "JOBLINE_BROKER_RECHECK_SECONDS": "2",
            "JOBLINE_BROKER_PUBLISH_TIMEOUT_SECONDS": "2",
            "JOBLINE_AUDIT_ENABLED": "false",
        }
        self.procs: list[Proc] = []
        self.workers: dict[str, Proc] = {}
        self.base_url = ""

    # -- life cycle -------------------------------------------------------------------------

    def create(self) -> None:
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        self.make_vhost()
        out = self.cli("migrate")
        assert out.returncode == 0, out.stdout + out.stderr

    def make_vhost(self) -> None:
        """The stack's vhost on the shared node (a stack on a node of its own overrides it)."""
        add_vhost(AMQP_ADMIN_URL, self.vhost)

    def destroy(self) -> None:
        for proc in self.procs:
            proc.stop()
        wait_for_mariadb()
        with self.admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        wait_for_rabbitmq()
        drop_vhost(AMQP_ADMIN_URL, self.vhost)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run `jobline ARGS` against this stack."""
        return subprocess.run(
            [JOBLINE, *args],
            cwd=REPO,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def admin(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(**self.mysql, autocommit=True)  # type: ignore[arg-type]

    def db(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(**self.mysql, database=self.database, autocommit=True)  # type: ignore[arg-type]

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query on this stack's database, waiting out a MariaDB restart."""
        deadline = time.monotonic() + SERVICE_WAIT_SECONDS
        while True:
            try:
                with self.db() as conn, conn.cursor() as cur:
                    cur.execute(sql, args)
                    return list(cur.fetchall())
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    # -- processes --------------------------------------------------------------------------

    def start_worker(self, domain: str, *extra: str) -> Proc:
        proc = start_worker(domain, self.env, self.logdir, *extra)
        self.procs.append(proc)
        self.workers[domain] = proc
        return proc

    def start_server(self, **env: str) -> str:
        proc, base = start_server({**self.env, **env}, self.logdir)
        self.procs.append(proc)
        self.base_url = base
        return base

    def start_relay(self, **env: str) -> Proc:
        proc = start("relay", ["relay"], {**self.env, **env}, self.logdir)
        self.procs.append(proc)
        return proc

    def pool_children(self, domain: str) -> list[int]:
        """Pids of the prefork children of a domain's worker."""
        parent = self.workers[domain].popen.pid
        out = subprocess.run(
            ["ps", "--ppid", str(parent), "-o", "pid="], capture_output=True, text=True
        )
        return [int(p) for p in out.stdout.split()]

    def kill_child(self, domain: str, rng: random.Random) -> bool:
        children = self.pool_children(domain)
        if not children:
            return False
        try:
            os.kill(rng.choice(children), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def kill_worker(self, domain: str) -> None:
        """kill -9 the whole worker (main process and pool) and start a new one."""
        old = self.workers[domain]
        old.stop(signal.SIGKILL)
        self.start_worker(domain)

    # -- the API ----------------------------------------------------------------------------

    async def client(self) -> httpx.AsyncClient:
        """A client of the stack's API server, logged in as a new user."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as anon:
            _, _, token = await register(anon)
        return httpx.AsyncClient(
            base_url=self.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        )

    async def submit_many(
        self,
        client: httpx.AsyncClient,
        specs: Iterable[tuple[str, dict[str, Any]]],
        concurrency: int = 8,
    ) -> tuple[list[str], list[float]]:
        """POST every (type, payload); returns the job ids and each request's seconds."""
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def one(type: str, payload: dict[str, Any]) -> str:
            async with gate:
                began = time.monotonic()
                r = await client.post("/api/v1/jobs", json={"type": type, "payload": payload})
                latencies.append(time.monotonic() - began)
            assert r.status_code == 202, r.text
            return str(r.json()["id"])

        ids = await asyncio.gather(*(one(t, p) for t, p in specs))
        return list(ids), latencies

    # -- checks -----------------------------------------------------------------------------

    def states(self, ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(ids, 500):
            marks = ",".join(["%s"] * len(chunk))
            out.update(self.query(f"SELECT id, state FROM jobs WHERE id IN ({marks})", chunk))  # type: ignore[arg-type]
        return out

    def wait_final(self, ids: Sequence[str], within: float) -> list[str]:
        """Wait until every job is final; returns the ones that are not (lost)."""
        deadline = time.monotonic() + within
        while True:
            states = self.states(ids)
            open_ = [i for i in ids if states.get(i) not in TERMINAL]
            if not open_ or time.monotonic() > deadline:
                return open_
            time.sleep(0.5)

    def duplicate_transitions(self, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """(job, attempt, type, count) recorded more than once; progress may repeat, and so
        may requeued (a job lost twice in one attempt: each is a new generation)."""
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(ids, 500):
            marks = ",".join(["%s"] * len(chunk))
            rows += self.query(
                "SELECT job_id, attempt, type, COUNT(*) FROM job_events "
                f"WHERE job_id IN ({marks}) AND type NOT IN ('progress', 'requeued') "
                "GROUP BY job_id, attempt, type HAVING COUNT(*) > 1",
                chunk,
            )
        return rows

    def terminal_counts(self, ids: Sequence[str]) -> dict[str, int]:
        """Terminal events per job and run: a retry on request starts a new run of the job."""
        counts = dict.fromkeys(ids, 0)
        for chunk in _chunks(ids, 500):
            marks = ",".join(["%s"] * len(chunk))
            for job_id, n in self.query(
                "SELECT job_id, SUM(CASE WHEN type = 'retrying' THEN -1 ELSE 1 END) "
                f"FROM job_events WHERE job_id IN ({marks}) AND ("
                "type IN ('succeeded', 'failed', 'cancelled') "
                "OR (type = 'retrying' AND JSON_VALUE(data, '$.by') = 'request')) "
                "GROUP BY job_id",
                chunk,
            ):
                counts[job_id] = int(n)
        return counts

    def events(self, job_id: str) -> list[tuple[Any, ...]]:
        """(seq, type, attempt, data) of one job."""
        return self.query(
            "SELECT seq, type, attempt, data FROM job_events WHERE job_id = %s ORDER BY seq",
            (job_id,),
        )

    def outcomes(self, ids: Sequence[str]) -> dict[str, int]:
        return dict(Counter(self.states(ids).values()))

    def replay_verify(self) -> subprocess.CompletedProcess[str]:
        return self.cli("replay", "--verify")

    def figures(self, name: str, ids: Sequence[str], faults: int, within: float) -> Figures:
        """Wait for every job, then count what the issue asks for; the caller asserts on it."""
        lost = self.wait_final(ids, within)
        dupes = self.duplicate_transitions(ids)
        terminal = self.terminal_counts(ids)
        not_one = {k: v for k, v in terminal.items() if v != 1}
        verify = self.replay_verify()
        figures = Figures(
            name,
            submitted=len(ids),
            faults=faults,
            lost=len(lost),
            duplicates=len(dupes),
            outcomes=self.outcomes(ids),
            extra={
                "not_one_terminal": len(not_one),
                "replay_verify_rc": verify.returncode,
            },
        )
        figures.extra["_details"] = {
            "lost": lost[:10],
            "dupes": dupes[:10],
            "not_one": list(not_one.items())[:10],
            "verify": verify.stdout[-2000:] + verify.stderr[-2000:],
        }
        return figures

    # -- broker access ----------------------------------------------------------------------

    def celery(self) -> Celery:
        """A bare Celery app on this stack's vhost, to publish messages behind the API's back."""
        return Celery("chaos", broker=self.env["JOBLINE_BROKER_URL"], set_as_current=False)

    def message_count(self, queue: str) -> int:
        """Messages ready in a queue, straight from the broker (the management stats lag)."""
        app = self.celery()
        try:
            with app.connection_for_write() as conn:
                declared = conn.default_channel.queue_declare(queue, passive=True)
                return int(declared.message_count)
        finally:
            app.close()

    def queue_info(self, queue: str) -> dict[str, Any]:
        r = httpx.get(
            f"{RABBIT_API}/queues/{self.vhost}/{queue}", auth=self.rabbit_auth, timeout=10
        )
        assert r.status_code == 200, r.text
        info: dict[str, Any] = r.json()
        return info


S = TypeVar("S", bound=ChaosStack)


@contextmanager
def serving(stack: S, *workers: str) -> Iterator[S]:
    """`stack` created and serving the API, with a worker per domain named; destroyed afterwards."""
    stack.create()
    try:
        stack.start_server()
        for domain in workers:
            stack.start_worker(domain)
        yield stack
    finally:
        stack.destroy()


def running_stack(
    name: str, logdir: Path, var_dir: Path, **env: str
) -> AbstractContextManager[ChaosStack]:
    """A stack of its own (`env` on top of the chaos settings) with one `chaos` worker."""
    stack = ChaosStack(name, logdir, var_dir)
    stack.env.update(env)
    return serving(stack, "chaos")


def assert_clean(figures: Figures) -> None:
    """The invariants every fault test checks."""
    details = figures.extra.get("_details", {})
    assert figures.lost == 0, details
    assert figures.duplicates == 0, details
    assert figures.extra["not_one_terminal"] == 0, details
    assert figures.extra["replay_verify_rc"] == 0, details


# -- faults on the shared services (keep them short: other engineers' runs share them) ------


def rabbitmq_stop() -> None:
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)


def rabbitmq_start() -> None:
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
    wait_for_rabbitmq()


def wait_for_rabbitmq() -> None:
    deadline = time.monotonic() + SERVICE_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(
                f"{RABBIT_API}/overview", auth=("jobline", "jobline"), timeout=5
            ).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("RabbitMQ did not come back")


def mariadb_stop() -> None:
    subprocess.run(["mariadb-admin", "--protocol=socket", "shutdown"], check=True)


def mariadb_start() -> None:
    subprocess.run([str(SERVICES), "up"], check=True, capture_output=True, timeout=300)
    wait_for_mariadb()


def wait_for_mariadb() -> None:
    deadline = time.monotonic() + SERVICE_WAIT_SECONDS
    user, password, host, port, _ = _url_parts(MYSQL_ADMIN_URL)
    while time.monotonic() < deadline:
        try:
            pymysql.connect(host=host, port=port or 3306, user=user, password=password).close()
            return
        except pymysql.err.OperationalError:
            time.sleep(0.5)
    raise TimeoutError("MariaDB did not come back")


def _chunks(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def stack_client_fixture() -> Callable[..., Any]:
    """The `client` fixture of a module whose `stack` fixture is a ChaosStack: one logged-in
    client of the stack's API for the module (`client = stack_client_fixture()`)."""

    @pytest.fixture(scope="module", name="client")
    async def client(stack: ChaosStack) -> AsyncIterator[httpx.AsyncClient]:
        c = await stack.client()
        yield c
        await c.aclose()

    return client
