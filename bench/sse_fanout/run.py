"""bench/sse_fanout: N followers of live job progress on ONE API process.

    .venv/bin/python bench/sse_fanout/run.py            # N = 10, 100, 1000
    .venv/bin/python bench/sse_fanout/run.py --quick    # N = 5, 20; a few seconds each

Needs the local MariaDB and RabbitMQ (deploy/local/services up); it makes a private
database and vhost, starts one music worker and one API process (`jobline serve`), and
drops them afterwards. Per N it submits chatty jobs (progress written every
--progress-ms), connects N followers to their streams (raw sockets, so the client costs
little), and measures while the jobs run:

- latency: event `at` (stamped in the appending transaction, just before its commit)
  to the follower's receipt, p50 and p99;
- database queries per second of the API process's streaming side (its feed and the
  replays, counted by the feed: /api/v1/stream/stats), and MariaDB's Com_select per
  second for the whole server (the workers' reads included);
- the API process's peak RSS.

Then ratios against the smallest N. The baseline (bench/sse_fanout/baseline.py: one
database poll per follower every --baseline-poll-ms) runs side by side up to
--baseline-max followers. A benchmark, not a test: it prints, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pymysql
import uvloop

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support import (  # noqa: E402
    JOBLINE,
    PASSWORD,
    Proc,
    free_port,
    start_server,
    start_worker,
)

MYSQL_ADMIN = os.environ.get(
    "JOBLINE_TEST_DATABASE_URL", "mysql://jobline:jobline@127.0.0.1:3306/jobline_test"
)
AMQP_ADMIN = os.environ.get(
    "JOBLINE_TEST_BROKER_URL", "amqp://jobline:jobline@127.0.0.1:5672/jobline_test"
)
RABBIT_API = os.environ.get("JOBLINE_TEST_RABBIT_API", "http://127.0.0.1:15672/api")
AT = re.compile(rb'"at":"([^"]+)"')
TYPE = re.compile(rb'"type":"([a-z_]+)"')
TERMINAL = {b"succeeded", b"failed", b"cancelled"}
MB = 1024 * 1024
READY_TIMEOUT = 120.0
POLL_SECONDS = 0.02
# Chatty jobs call ctx.progress this often per second (the worker writes one per --progress-ms).
CALLS_PER_SECOND = 1000


@dataclass
class Follower:
    """One raw SSE connection's receipts: (receipt time, event `at`) per event."""

    received: list[tuple[float, float]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    done: bool = False
    error: str | None = None


@dataclass
class Result:
    target: str
    n: int
    window: float
    delivered: int
    p50_ms: float
    p99_ms: float
    stream_qps: float
    server_selects_ps: float
    rss_mb: float
    api_cpu: float  # CPU seconds per second of the API process
    client_cpu: float  # ... and of this process (the followers)
    errors: int


@dataclass
class Target:
    """An API to follow: jobline, or the per-follower polling baseline."""

    name: str
    base: str
    pid: int
    stats: Callable[[], Awaitable[dict[str, Any]]]


async def follow(base: str, path: str, headers: dict[str, str], out: Follower) -> None:
    """Read one SSE stream until its terminal event, recording when each event arrived."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        out.error = str(exc)
        out.connected.set()
        return
    try:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            out.error = head.split(b"\r\n", 1)[0].decode()
            out.connected.set()
            return
        chunked = b"transfer-encoding: chunked" in head.lower()
        buffer = b""
        while True:
            if chunked:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                data = (await reader.readexactly(size + 2))[:-2]
            else:
                data = await reader.read(65536)
                if not data:
                    break
            now = time.time()
            buffer += data
            while (end := buffer.find(b"\n\n")) >= 0:
                block, buffer = buffer[:end], buffer[end + 2 :]
                at = AT.search(block)
                if at is None:
                    continue  # the retry hint, a ping
                out.received.append((now, datetime.fromisoformat(at[1].decode()).timestamp()))
                out.connected.set()
                kind = TYPE.search(block)
                if kind is not None and kind[1] in TERMINAL:
                    out.done = True
                    return
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    finally:
        out.connected.set()
        writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    return 0.0


def com_select(db: Any) -> int:
    """MariaDB's SELECT count since it started (whole server: other users' queries too)."""
    db.ping(reconnect=True)
    with db.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
        return int(cur.fetchone()[1])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(
    target: Target, api: httpx.AsyncClient, db: Any, n: int, args: argparse.Namespace
) -> Result:
    """Submit the jobs, connect N followers, measure while the jobs run."""
    # The jobs wait until the followers are (likely) connected, then run for --seconds.
    delay = args.connect_seconds + n / args.connects_per_second
    jobs = []
    for _ in range(args.jobs):
        r = await api.post(
            "/api/v1/jobs",
            json={
                "type": "music.chatty",
                "payload": {
                    "calls": int(args.seconds * CALLS_PER_SECOND),
                    "seconds": args.seconds,
                },
                "delay_seconds": delay,
            },
        )
        r.raise_for_status()
        jobs.append(r.json()["id"])
    followers = [Follower() for _ in range(n)]
    headers = {"Authorization": api.headers["Authorization"]}
    tasks = [
        asyncio.create_task(
            follow(target.base, f"/api/v1/jobs/{jobs[i % len(jobs)]}/stream", headers, f)
        )
        for i, f in enumerate(followers)
    ]
    async with asyncio.timeout(READY_TIMEOUT):
        for f in followers:
            await f.connected.wait()
    t0 = time.time()
    # Measure from the first event after every follower is in: the jobs have started.
    while not any(at >= t0 for f in followers for _, at in f.received[-1:]):
        if all(t.done() for t in tasks):
            break
        await asyncio.sleep(POLL_SECONDS)
    started = time.time()
    s0, c0 = (await target.stats())["queries"], com_select(db)
    api_cpu0, own_cpu0 = cpu_seconds(target.pid), time.process_time()
    peak = rss_mb(target.pid)
    pending = set(tasks)
    async with asyncio.timeout(delay + args.seconds + READY_TIMEOUT):
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.5)
            peak = max(peak, rss_mb(target.pid))
    t1 = max((f.received[-1][0] for f in followers if f.received), default=time.time())
    api_cpu, own_cpu = cpu_seconds(target.pid) - api_cpu0, time.process_time() - own_cpu0
    s1, c1 = (await target.stats())["queries"], com_select(db)
    window = max(t1 - started, 1e-9)
    latencies = [(got - at) * 1000 for f in followers for got, at in f.received if at >= t0]
    if args.dump:
        with Path(f"{args.dump}.{target.name}.{n}.tsv").open("w") as out:  # noqa: ASYNC230
            for i, f in enumerate(followers):
                for got, at in f.received:
                    if at >= t0:
                        out.write(f"{i}\t{at - t0:.4f}\t{(got - at) * 1000:.2f}\n")
    return Result(
        target=target.name,
        n=n,
        window=window,
        delivered=len(latencies),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        stream_qps=(s1 - s0) / window,
        # A restarted server counts from zero again.
        server_selects_ps=(c1 - c0) / window if c1 >= c0 else float("nan"),
        rss_mb=peak,
        api_cpu=api_cpu / window,
        client_cpu=own_cpu / window,
        errors=sum(1 for f in followers if f.error or not f.done),
    )


def provision(run: str) -> tuple[str, str, Any]:
    """A private database and vhost; returns their URLs and an admin connection."""
    rest = MYSQL_ADMIN.split("://", 1)[1]
    creds, hostpart = rest.rsplit("@", 1)
    user, password = creds.split(":", 1)
    hostport = hostpart.split("/", 1)[0]
    host, _, port = hostport.partition(":")
    db = pymysql.connect(
        host=host, port=int(port or 3306), user=user, password=password, autocommit=True
    )
    with db.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{run}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    amqp_rest = AMQP_ADMIN.split("://", 1)[1]
    amqp_creds, amqp_hostpart = amqp_rest.rsplit("@", 1)
    amqp_user, amqp_password = amqp_creds.split(":", 1)
    auth = (amqp_user, amqp_password)
    httpx.put(f"{RABBIT_API}/vhosts/{run}", auth=auth, timeout=10).raise_for_status()
    httpx.put(
        f"{RABBIT_API}/permissions/{run}/{auth[0]}",
        auth=auth,
        json={"configure": ".*", "write": ".*", "read": ".*"},
        timeout=10,
    ).raise_for_status()
    amqp = f"amqp://{amqp_creds}@{amqp_hostpart.split('/', 1)[0]}/{run}"
    return f"mysql://{user}:{password}@{hostport}/{run}", amqp, db


def drop(run: str, db: Any) -> None:
    db.ping(reconnect=True)
    with db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{run}`")
    creds = AMQP_ADMIN.split("://", 1)[1].rsplit("@", 1)[0]
    amqp_user, amqp_password = creds.split(":", 1)
    httpx.delete(f"{RABBIT_API}/vhosts/{run}", auth=(amqp_user, amqp_password), timeout=10)


def table(results: list[Result]) -> None:
    print(
        f"{'target':9} {'N':>5} {'window s':>8} {'events':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'stream q/s':>10} {'server sel/s':>12} {'RSS MB':>7} {'API CPU':>7} {'client':>6} "
        f"{'errors':>6}"
    )
    for r in results:
        print(
            f"{r.target:9} {r.n:>5} {r.window:>8.1f} {r.delivered:>8} {r.p50_ms:>8.1f} "
            f"{r.p99_ms:>8.1f} {r.stream_qps:>10.1f} {r.server_selects_ps:>12.1f} "
            f"{r.rss_mb:>7.1f} {r.api_cpu:>7.0%} {r.client_cpu:>6.0%} {r.errors:>6}"
        )


def ratios(results: list[Result]) -> None:
    for name in dict.fromkeys(r.target for r in results):
        rows = [r for r in results if r.target == name]
        base = rows[0]
        for r in rows[1:]:
            print(
                f"{name} N={r.n} vs N={base.n}: p99 x{r.p99_ms / base.p99_ms:.2f}, "
                f"stream q/s x{r.stream_qps / base.stream_qps if base.stream_qps else float('nan'):.2f}, "
                f"server sel/s x{r.server_selects_ps / base.server_selects_ps if base.server_selects_ps else float('nan'):.2f}, "
                f"RSS x{r.rss_mb / base.rss_mb:.2f}"
            )


@dataclass
class Stack:
    """The processes of a run: a music worker, the API, the baseline; and a superuser."""

    env: dict[str, str]
    api: Proc
    api_base: str
    email: str
    baseline: Proc | None = None
    baseline_base: str = ""

    def stop(self) -> None:
        for proc in (self.baseline, self.api):
            if proc is not None:
                proc.stop()


def start_stack(
    run: str, mysql_url: str, amqp_url: str, args: argparse.Namespace
) -> tuple[Stack, Proc]:
    logdir = Path(args.logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    env = {
        "JOBLINE_ENV": "test",
        "JOBLINE_DATABASE_URL": mysql_url,
        "JOBLINE_BROKER_URL": amqp_url,
        "JOBLINE_SECRET_KEY": "bench-secret-" + "x" * 40,
        "JOBLINE_VAR_DIR": str(logdir / "var"),
        "JOBLINE_QUEUES_FILE": str(REPO / "queues.yaml"),
        "JOBLINE_PROGRESS_MIN_INTERVAL_MS": str(args.progress_ms),
        # All the followers are one user's: let that user hold them all.
        "JOBLINE_MAX_STREAMS_PER_USER": str(max(args.followers)),
    }
    full = {**os.environ, **env}
    subprocess.run([JOBLINE, "migrate"], env=full, check=True, cwd=REPO, capture_output=True)
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    subprocess.run(
        [JOBLINE, "users", "create", email, "--superuser"],
        input=PASSWORD + "\n",
        text=True,
        env=full,
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    worker = start_worker("music", env, logdir)
    api, base = start_server(env, logdir)
    stack = Stack(env, api, base, email)
    if args.baseline_max > 0:
        port = free_port()
        log = logdir / "baseline.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("uvicorn")),
                    *("--app-dir", str(REPO / "bench" / "sse_fanout")),
                    *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
                    "baseline:app",
                ],
                env={**full, "BENCH_POLL_MS": str(args.baseline_poll_ms)},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        stack.baseline = Proc("baseline", popen, log)
        stack.baseline_base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if httpx.get(f"{stack.baseline_base}/api/v1/stream/stats").is_success:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return stack, worker


async def measure(stack: Stack, db: Any, args: argparse.Namespace) -> list[Result]:
    async with httpx.AsyncClient(base_url=stack.api_base, timeout=60) as anon:
        r = await anon.post(
            "/api/v1/auth/jwt/login", data={"username": stack.email, "password": PASSWORD}
        )
        r.raise_for_status()
    token = r.json()["access_token"]
    async with httpx.AsyncClient(
        base_url=stack.api_base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as api:

        def stats_of(url: str) -> Callable[[], Awaitable[dict[str, Any]]]:
            async def stats() -> dict[str, Any]:
                r = await api.get(url)
                r.raise_for_status()
                return dict(r.json())

            return stats

        targets = [
            Target(
                "jobline",
                stack.api_base,
                stack.api.popen.pid,
                stats_of("/api/v1/stream/stats"),
            )
        ]
        if stack.baseline is not None:
            targets.append(
                Target(
                    "baseline",
                    stack.baseline_base,
                    stack.baseline.popen.pid,
                    stats_of(f"{stack.baseline_base}/api/v1/stream/stats"),
                )
            )
        results: list[Result] = []
        for target in targets:
            for n in args.followers:
                if target.name == "baseline" and n > args.baseline_max:
                    continue
                print(f"... {target.name}: {n} followers", flush=True)
                results.append(await phase(target, api, db, n, args))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny: N=5,20, 2 s each")
    parser.add_argument("--followers", default="10,100,1000", help="comma-separated N")
    parser.add_argument("--jobs", type=int, default=2, help="concurrent chatty jobs")
    parser.add_argument("--seconds", type=float, default=10.0, help="progress time per N")
    parser.add_argument("--progress-ms", type=int, default=100, help="worker coalescing")
    parser.add_argument("--connect-seconds", type=float, default=3.0)
    parser.add_argument("--connects-per-second", type=float, default=200.0)
    parser.add_argument("--baseline-max", type=int, default=100, help="0: no baseline")
    parser.add_argument("--baseline-poll-ms", type=int, default=100)
    parser.add_argument(
        "--keep", action="store_true", help="keep the database, the vhost and the logs"
    )
    parser.add_argument("--logdir", default=None, help="the processes' logs (kept)")
    parser.add_argument("--dump", default=None, help="write each receipt to DUMP.<target>.<N>.tsv")
    args = parser.parse_args(argv)
    if args.quick:
        args.followers, args.seconds, args.jobs = "5,20", 2.0, 1
        args.connect_seconds, args.baseline_max = 1.0, min(args.baseline_max, 20)
    args.followers = [int(n) for n in str(args.followers).split(",")]
    run = f"jobline_bench_{uuid.uuid4().hex[:8]}"
    keep_logs = args.keep or args.logdir is not None
    args.logdir = args.logdir or tempfile.mkdtemp(prefix=f"{run}-")
    mysql_url, amqp_url, db = provision(run)
    stack: Stack | None = None
    worker: Proc | None = None
    try:
        stack, worker = start_stack(run, mysql_url, amqp_url, args)
        # uvloop, as the API runs: the followers should cost as little as possible.
        results = uvloop.run(measure(stack, db, args))
    finally:
        if stack is not None:
            stack.stop()
        if worker is not None:
            worker.stop()
        if not args.keep:
            drop(run, db)
        db.close()
        if not keep_logs:
            shutil.rmtree(args.logdir, ignore_errors=True)
    print()
    print(
        f"sse_fanout: {args.jobs} chatty jobs, progress written every {args.progress_ms} ms, "
        f"{args.seconds:g} s of progress per N; one API process; "
        f"baseline polls every {args.baseline_poll_ms} ms per follower"
    )
    table(results)
    print()
    ratios(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
