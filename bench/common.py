"""What every benchmark needs: a scratch database and vhost, processes, wrk, /proc readings.

The services are the local MariaDB and RabbitMQ (deploy/local/services up). Each run makes
its own database and vhost and drops them afterwards, like the test suite does, so it never
touches another engineer's data.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pymysql

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import PASSWORD as PASSWORD  # noqa: E402
from tests.support import Proc as Proc  # noqa: E402
from tests.support import free_port, spawn  # noqa: E402

BIN = Path(sys.executable).parent
JOBLINE = str(BIN / "jobline")
MYSQL_ADMIN = os.environ.get(
    "JOBLINE_TEST_DATABASE_URL", "mysql://jobline:jobline@127.0.0.1:3306/jobline_test"
)
AMQP_ADMIN = os.environ.get(
    "JOBLINE_TEST_BROKER_URL", "amqp://jobline:jobline@127.0.0.1:5672/jobline_test"
)
RABBIT_API = os.environ.get("JOBLINE_TEST_RABBIT_API", "http://127.0.0.1:15672/api")
BENCH_QUEUES = REPO / "bench" / "queues.yaml"
WRK_SCRIPT = REPO / "bench" / "wrk" / "submit.lua"
NOOP_BODY = '{"type":"bench.noop","payload":{}}'
READY_SECONDS = 90.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024
# Both sides' API processes: one uvicorn worker on uvloop and httptools, no access log.
UVICORN_FLAGS = (
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--workers",
    "1",
    "--no-access-log",
    "--log-level",
    "warning",
)


def _split(url: str) -> tuple[str, str, str, str]:
    """(user, password, host:port, path) of a mysql:// or amqp:// URL."""
    rest = url.split("://", 1)[1]
    creds, hostpart = rest.rsplit("@", 1)
    user, password = creds.split(":", 1)
    hostport, _, path = hostpart.partition("/")
    return user, password, hostport, path


def admin_connection(database: str | None = None, **extra: Any) -> Any:
    """A pymysql connection as the jobline user (which has ALL on jobline%)."""
    user, password, hostport, _ = _split(MYSQL_ADMIN)
    host, _, port = hostport.partition(":")
    return pymysql.connect(
        host=host,
        port=int(port or 3306),
        user=user,
        password=password,
        database=database,
        autocommit=True,
        **extra,
    )


@dataclass
class Scratch:
    """A private database and RabbitMQ vhost, both named `name`, dropped by `drop()`."""

    name: str
    mysql_url: str
    amqp_url: str

    @classmethod
    def create(cls, prefix: str = "jobline_bench") -> Scratch:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        user, password, hostport, _ = _split(MYSQL_ADMIN)
        with admin_connection() as db, db.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        a_user, a_password, a_hostport, _ = _split(AMQP_ADMIN)
        scratch = cls(
            name,
            f"mysql://{user}:{password}@{hostport}/{name}",
            f"amqp://{a_user}:{a_password}@{a_hostport}/{name}",
        )
        auth = (a_user, a_password)
        try:
            httpx.put(f"{RABBIT_API}/vhosts/{name}", auth=auth, timeout=10).raise_for_status()
            httpx.put(
                f"{RABBIT_API}/permissions/{name}/{a_user}",
                auth=auth,
                json={"configure": ".*", "write": ".*", "read": ".*"},
                timeout=10,
            ).raise_for_status()
        except BaseException:
            scratch.drop()
            raise
        return scratch

    def drop(self) -> None:
        """Drop both; each is tried even when the other fails (a service may be restarting)."""
        failures: list[Exception] = []
        try:
            with admin_connection() as db, db.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        except pymysql.MySQLError as exc:
            failures.append(exc)
        a_user, a_password, _, _ = _split(AMQP_ADMIN)
        try:
            httpx.delete(f"{RABBIT_API}/vhosts/{self.name}", auth=(a_user, a_password), timeout=10)
        except httpx.HTTPError as exc:
            failures.append(exc)
        if failures:
            print(f"  (could not drop all of {self.name}: {failures}; drop it by hand)")

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with admin_connection(self.name) as db, db.cursor() as cur:
            cur.execute(sql, tuple(args))
            return list(cur.fetchall())

    def purge(self, queue: str) -> None:
        """Empty a queue of this vhost (messages nobody consumes pile up between runs)."""
        a_user, a_password, _, _ = _split(AMQP_ADMIN)
        r = httpx.delete(
            f"{RABBIT_API}/queues/{quote(self.name, safe='')}/{queue}/contents",
            auth=(a_user, a_password),
            timeout=30,
        )
        if r.status_code not in (204, 404):
            r.raise_for_status()

    def queue_depth(self, queue: str) -> int:
        a_user, a_password, _, _ = _split(AMQP_ADMIN)
        r = httpx.get(
            f"{RABBIT_API}/queues/{quote(self.name, safe='')}/{queue}",
            auth=(a_user, a_password),
            timeout=10,
        )
        return int(r.json().get("messages", 0)) if r.status_code == 200 else 0


def jobline_env(
    scratch: Scratch, logdir: Path, *, purges_queue: bool = False, **extra: str
) -> dict[str, str]:
    """JOBLINE_* of a benchmark's jobline processes: the scratch services, bench/queues.yaml.

    `purges_queue`: the benchmark purges jobline's queue between runs (no worker consumes
    there). Its jobs stay `queued` in the database with no message, which is a lost message
    to the reconciler (queueing/reconcile.py): it would rightly publish them again, 500 per
    round, during the next runs (the API's own CPU, and in `latency` jobs its workers run).
    So reconciliation is off in those APIs; `e2e` purges nothing and runs it as shipped.
    """
    if purges_queue:
        extra = {"JOBLINE_RECONCILE_INTERVAL_SECONDS": "0", **extra}
    return {
        "JOBLINE_ENV": "test",
        "JOBLINE_DATABASE_URL": scratch.mysql_url,
        "JOBLINE_BROKER_URL": scratch.amqp_url,
        "JOBLINE_SECRET_KEY": "bench-secret-" + "x" * 40,
        "JOBLINE_VAR_DIR": str(logdir / "var"),
        "JOBLINE_QUEUES_FILE": str(BENCH_QUEUES),
        "JOBLINE_LOG_LEVEL": "WARNING",
        # The submit benchmark leaves hundreds of thousands of jobs queued (nobody consumes
        # them): the per-user cap on unfinished jobs would refuse them after 10,000.
        "JOBLINE_MAX_ACTIVE_JOBS_PER_USER": str(10**9),
        "BENCH_DATABASE_URL": scratch.mysql_url,
        "BENCH_BROKER_URL": scratch.amqp_url,
        **extra,
    }


def run_jobline(args: list[str], env: Mapping[str, str], stdin: str | None = None) -> str:
    """Run a `jobline` command to completion; its output, or an error naming it."""
    done = subprocess.run(
        [JOBLINE, *args],
        env={**os.environ, **env},
        cwd=REPO,
        input=stdin,
        text=True,
        capture_output=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"jobline {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare_jobline(env: Mapping[str, str], *, superuser: bool = False) -> str:
    """Migrate the scratch database and create a user; returns the user's email."""
    run_jobline(["migrate"], env)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    run_jobline(
        ["users", "create", email, *(["--superuser"] if superuser else [])], env, PASSWORD + "\n"
    )
    return email


def login(base: str, email: str) -> str:
    """A bearer token of `email` from the running API at `base`."""
    r = httpx.post(
        f"{base}/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD}, timeout=30
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


@dataclass
class Server:
    """An API process (uvicorn) and its base URL."""

    proc: Proc
    base: str

    @property
    def pid(self) -> int:
        return self.proc.popen.pid

    def stop(self) -> None:
        self.proc.stop()


def start_uvicorn(
    name: str, app: str, env: Mapping[str, str], logdir: Path, *, factory: bool = False
) -> Server:
    """One uvicorn worker (uvloop, httptools) serving `app`; returns once /healthz answers."""
    port = free_port()
    argv = [str(BIN / "uvicorn"), *UVICORN_FLAGS, "--host", "127.0.0.1", "--port", str(port)]
    if factory:
        argv.append("--factory")
    proc = spawn(name, [*argv, app], env, logdir)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return Server(proc, base)
        except httpx.HTTPError:
            pass
        if proc.popen.poll() is not None:
            break
        time.sleep(0.2)
    proc.stop()
    raise RuntimeError(f"{name} did not become ready:\n{proc.output()[-3000:]}")


def start_jobline_api(env: Mapping[str, str], logdir: Path) -> Server:
    return start_uvicorn("jobline-api", "jobline.app:create_app", env, logdir, factory=True)


def start_jobline_worker(env: Mapping[str, str], logdir: Path) -> Proc:
    """`jobline worker --domain bench`: pool, concurrency and prefetch from bench/queues.yaml.

    At WARNING, like the baseline's: Celery's INFO lines cost a write per job. Ready once
    it consumes (see wait_consuming), since at WARNING it prints no " ready." line.
    """
    return spawn(
        "jobline-worker", [JOBLINE, "worker", "--domain=bench", "--loglevel=WARNING"], env, logdir
    )


def start_baseline_worker(
    env: Mapping[str, str], logdir: Path, pool: str, concurrency: int, prefetch: int
) -> Proc:
    """The plain Celery worker, with the same pool/concurrency/prefetch and flags as jobline's."""
    from bench.baseline.celery_app import QUEUE

    proc = spawn(
        "baseline-worker",
        [
            str(BIN / "celery"),
            "-A",
            "bench.baseline.celery_app",
            "worker",
            f"--queues={QUEUE}",
            "--hostname=baseline@%h",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            f"--prefetch-multiplier={prefetch}",
            # The flags `jobline worker` passes, so both workers run the same way: no
            # --task-events (bench/queues.yaml leaves `task_events` off, Celery's default).
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        env,
        logdir,
    )
    return proc


def wait_consuming(scratch: Scratch, queue: str, consumers: int = 1) -> None:
    """Wait until a queue exists with a consumer (a worker that says nothing at WARNING)."""
    a_user, a_password, _, _ = _split(AMQP_ADMIN)
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{RABBIT_API}/queues/{quote(scratch.name, safe='')}/{queue}",
            auth=(a_user, a_password),
            timeout=10,
        )
        if r.status_code == 200 and int(r.json().get("consumers", 0)) >= consumers:
            return
        time.sleep(0.3)
    raise TimeoutError(f"nobody consumes {queue} after {READY_SECONDS}s")


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds the processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * PAGE_SIZE / MB


class PeakRss:
    """Samples the RSS of some processes on a thread; `peak[pid]` is the largest seen."""

    def __init__(self, pids: Iterable[int], interval: float = 0.2) -> None:
        self.pids = list(pids)
        self.interval = interval
        self.peak: dict[int, float] = dict.fromkeys(self.pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_mb(pid))
            self._stop.wait(self.interval)


# --------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    """One wrk run: requests/s, latency percentiles (ms) and error counts."""

    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    timeouts: int
    percentiles_ms: list[tuple[float, float]] = field(default_factory=list)
    # Filled in by the caller, which knows the server's pid.
    cpu_ms_per_request: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


WRK_LINE = re.compile(r"^BENCH_JSON (\{.*\})$", re.MULTILINE)


def run_wrk(
    base: str,
    connections: int,
    seconds: float,
    *,
    token: str | None = None,
    threads: int = 2,
    timeout_seconds: float = 2.0,
) -> WrkResult:
    """wrk POSTs a no-op job to `base`/api/v1/jobs for `seconds`."""
    env = {**os.environ, "BENCH_BODY": NOOP_BODY}
    if token:
        env["BENCH_TOKEN"] = token
    threads = min(threads, connections)
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout_seconds))}s",
            "-s",
            str(WRK_SCRIPT),
            base,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    found = WRK_LINE.search(done.stdout)
    if found is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(found.group(1))
    points = [(float(q), us / 1000) for q, us in raw["percentiles_us"]]
    by_q = dict(points)
    duration = raw["duration_us"] / 1e6
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return WrkResult(
        connections=connections,
        seconds=duration,
        requests=raw["requests"],
        rps=raw["requests"] / duration if duration else 0.0,
        p50_ms=by_q[50],
        p90_ms=by_q[90],
        p99_ms=by_q[99],
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        timeouts=raw["timeout"],
        percentiles_ms=points,
    )


# --------------------------------------------------------------------------- figures


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    versions: dict[str, str] = {}
    try:
        with admin_connection() as db, db.cursor() as cur:
            cur.execute("SELECT VERSION(), @@innodb_buffer_pool_size")
            version, pool = cur.fetchone()
            versions["mariadb"] = str(version)
            versions["innodb_buffer_pool_mb"] = str(int(pool) // MB)
    except pymysql.MySQLError:
        pass
    try:
        a_user, a_password, _, _ = _split(AMQP_ADMIN)
        overview = httpx.get(f"{RABBIT_API}/overview", auth=(a_user, a_password), timeout=10)
        versions["rabbitmq"] = str(overview.json().get("rabbitmq_version"))
    except httpx.HTTPError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


# --------------------------------------------------------------------------- profiles


@dataclass
class Profile:
    """A py-spy recording of one process: where its CPU went, by function.

    `folded` is the recording itself, in folded-stack form (speedscope.app and
    flamegraph.pl draw it).
    """

    pid: int
    samples: int
    self_top: list[tuple[float, str]]
    inclusive_top: list[tuple[float, str]]
    folded: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# A thread waiting (a queue, a lock, the selector) is not where CPU goes.
IDLE_FRAMES = ("Condition.wait", "EpollSelector.select", "Queue.get", "Event.wait")
PROFILE_TOP = 30


class PySpy:
    """`py-spy record` of a process in the background; `result()` once it is done."""

    def __init__(self, pid: int, seconds: float, folded: Path) -> None:
        self.pid = pid
        self.folded = folded
        self.proc: subprocess.Popen[bytes] | None = None
        binary = BIN / "py-spy"
        if not binary.exists():
            print("  (py-spy is not installed: no profile; pip install py-spy)")
            return
        folded.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(binary),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                "100",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(folded),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def result(self) -> Profile | None:
        if self.proc is None:
            return None
        self.proc.wait()
        if not self.folded.exists():
            return None
        self_counts: dict[str, int] = {}
        inclusive: dict[str, int] = {}
        total = 0
        for line in self.folded.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            if any(idle in frames[-1] for idle in IDLE_FRAMES):
                continue
            n = int(count)
            total += n
            self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n

        def top(counts: dict[str, int]) -> list[tuple[float, str]]:
            ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:PROFILE_TOP]
            return [(round(100 * n / max(total, 1), 1), frame) for frame, n in ranked]

        return Profile(self.pid, total, top(self_counts), top(inclusive), str(self.folded))
