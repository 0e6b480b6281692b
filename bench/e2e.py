"""End to end: N no-op jobs from the first submit to the last one `succeeded`.

- `jobline`: bench.client POSTs the jobs to /api/v1/jobs (one uvicorn worker); `jobline
  worker --domain bench` runs them, each recording submitted, queued, started and succeeded;
- `baseline`: plain Celery. The submitter calls apply_async; the task inserts one row;
- `procrastinate`: the durable peer (bench/peer/). The same client POSTs the jobs to its
  FastAPI endpoint (one uvicorn worker), which defers a Procrastinate task; two
  `procrastinate worker` processes at concurrency 1 run them, each job leaving its
  deferred, started and succeeded events in PostgreSQL.

Both Celery workers: prefork, the same concurrency and prefetch (bench/queues.yaml), the
same worker flags; the peer's two processes match the pool's two children. Rounds
alternate between the three. A round's time runs from just before its first submit to the
last job's end as stored (jobline: finished_at; baseline: the row's created_at, written by
the task; the peer: its last `succeeded` event's time). Worker CPU is the workers' whole
process trees (Celery: main process and pool children) from /proc, before and after.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support import tree

from bench.client import post_jobs
from bench.common import (
    NOOP_BODY,
    PeakRss,
    Proc,
    PySpy,
    Scratch,
    Server,
    cpu_seconds,
    jobline_env,
    login,
    median,
    prepare_jobline,
    ratio,
    rss_mb,
    start_baseline_worker,
    start_jobline_api,
    start_jobline_worker,
    wait_consuming,
)
from bench.peer import stack as peer

TARGETS = ("jobline", "baseline", "procrastinate")
# Events each target stores per job (the baseline: one row, no history).
EVENTS_PER_JOB = {"jobline": 4, "baseline": 0, "procrastinate": 3}

POLL_SECONDS = 0.05
PROFILE_SECONDS = 10.0
SUBMIT_CONNECTIONS = 50
IDLE_SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class E2EOptions:
    jobs: int = 5000
    rounds: int = 2
    timeout_seconds: float = 600.0
    # py-spy records one jobline pool child during one more round, folded stacks here.
    profile: Path | None = None


@dataclass
class Round:
    target: str
    jobs: int
    seconds: float
    worker_cpu_s: float
    api_cpu_s: float
    history_complete: bool
    # Of worker_cpu_s, the Celery main process's share (the rest: its pool children).
    worker_main_cpu_s: float = 0.0

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "jobs_per_second": self.jobs_per_second}


def _worker_settings() -> tuple[str, int, int]:
    """Pool, concurrency and prefetch of the bench domain: the baseline gets the same."""
    from bench.common import BENCH_QUEUES
    from jobline.jobs.spec import load_queues

    domain = load_queues(BENCH_QUEUES, check_imports=False).domains["bench"]
    return domain.pool, domain.concurrency, domain.prefetch


def run(options: E2EOptions, logdir: Path) -> dict[str, Any]:
    """Run the end-to-end benchmark; returns its figures."""
    from bench.baseline.celery_app import DDL, QUEUE

    pool, concurrency, prefetch = _worker_settings()
    scratch = Scratch.create()
    peer_db: peer.PeerDatabase | None = None
    procs: list[Proc] = []
    servers: list[Server] = []
    try:
        peer_db = peer.PeerDatabase.create()
        env = jobline_env(scratch, logdir)
        email = prepare_jobline(env)
        scratch.query(DDL)
        api = start_jobline_api(env, logdir)
        servers.append(api)
        peer_api = peer.start_api(peer_db, logdir)
        servers.append(peer_api)
        token = login(api.base, email)
        jobline_worker = start_jobline_worker(env, logdir)
        procs.append(jobline_worker)
        baseline_worker = start_baseline_worker(env, logdir, pool, concurrency, prefetch)
        procs.append(baseline_worker)
        peer_workers = peer.start_workers(peer_db, logdir)
        procs.extend(peer_workers)
        wait_consuming(scratch, "bench")
        wait_consuming(scratch, QUEUE)
        time.sleep(IDLE_SETTLE_SECONDS)
        # Celery's: the main process first, then its pool children; the peer's: its two
        # worker processes (each one process, its threads counted in its /proc figures).
        trees = {
            "jobline": tree(jobline_worker.popen.pid),
            "baseline": tree(baseline_worker.popen.pid),
            "procrastinate": [pid for w in peer_workers for pid in tree(w.popen.pid)],
        }
        idle_rss = {name: _rss(name, pids) for name, pids in trees.items()}
        rounds: list[Round] = []
        with PeakRss([pid for pids in trees.values() for pid in pids]) as peak:
            for index in range(options.rounds):
                order = TARGETS if index % 2 == 0 else TARGETS[::-1]
                for target in order:
                    if target == "jobline":
                        result = jobline_round(scratch, api, token, trees[target], options)
                    elif target == "baseline":
                        result = baseline_round(scratch, trees[target], options)
                    else:
                        result = peer_round(peer_db, peer_api, trees[target], options)
                    rounds.append(result)
                    print(
                        f"  e2e {target:13} round {index + 1}: {result.jobs} jobs in "
                        f"{result.seconds:6.2f} s = {result.jobs_per_second:7.0f} jobs/s, "
                        f"worker CPU {result.worker_cpu_s / result.jobs * 1000:.2f} ms/job, "
                        f"history complete: {result.history_complete}",
                        flush=True,
                    )
        profile = None
        if options.profile is not None:
            spy = PySpy(trees["jobline"][1], PROFILE_SECONDS, options.profile)
            jobline_round(scratch, api, token, trees["jobline"], options)
            recorded = spy.result()
            profile = recorded.as_dict() if recorded is not None else None
        peak_rss = {name: _rss(name, pids, peak.peak) for name, pids in trees.items()}
    finally:
        for proc in procs:
            proc.stop()
        for server in servers:
            server.stop()
        if peer_db is not None:
            peer_db.drop()
        scratch.drop()
    figures = summary(rounds, idle_rss, peak_rss, options, pool, concurrency, prefetch)
    figures["worker_profile"] = profile
    return figures


def _rss(target: str, pids: list[int], seen: dict[int, float] | None = None) -> dict[str, float]:
    """RSS of a Celery worker's main process and largest pool child, or of the peer's
    largest worker process; now, or the peaks `seen` by PeakRss."""
    size = (lambda pid: seen[pid]) if seen is not None else rss_mb
    if target == "procrastinate":
        return {"process": max(size(p) for p in pids)}
    return {"main": size(pids[0]), "child": max((size(p) for p in pids[1:]), default=0.0)}


def _wait_until(count: Any, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {count()} of {target} jobs done after {timeout:.0f}s")
        time.sleep(POLL_SECONDS)


def jobline_round(
    scratch: Scratch, api: Server, token: str, workers: list[int], options: E2EOptions
) -> Round:
    """Submit N jobs with wrk, wait until all succeeded; time to the last finished_at."""
    done_before = scratch.query("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")[0][0]
    started = datetime.now(UTC).replace(tzinfo=None)
    cpu0, api0, main0 = cpu_seconds(workers), cpu_seconds([api.pid]), cpu_seconds(workers[:1])
    asyncio.run(post_jobs(api.base, token, NOOP_BODY, options.jobs, SUBMIT_CONNECTIONS))
    jobs = options.jobs
    _wait_until(
        lambda: scratch.query("SELECT COUNT(*) FROM jobs WHERE state = 'succeeded'")[0][0],
        done_before + jobs,
        options.timeout_seconds,
    )
    worker_cpu = cpu_seconds(workers) - cpu0
    main_cpu = cpu_seconds(workers[:1]) - main0
    api_cpu = cpu_seconds([api.pid]) - api0
    last, count = scratch.query(
        "SELECT MAX(finished_at), COUNT(*) FROM jobs WHERE created_at >= %s", (started,)
    )[0]
    # Full history: each job's four events, in order, and nothing else.
    histories = scratch.query(
        "SELECT COUNT(*) FROM ("
        " SELECT e.job_id, GROUP_CONCAT(e.type ORDER BY e.seq) AS types"
        " FROM job_events e JOIN jobs j ON j.id = e.job_id"
        " WHERE j.created_at >= %s GROUP BY e.job_id) h"
        " WHERE h.types = 'submitted,queued,started,succeeded'",
        (started,),
    )[0][0]
    return Round(
        "jobline",
        int(count),
        (last - started).total_seconds(),
        worker_cpu,
        api_cpu,
        history_complete=int(histories) == jobs == int(count),
        worker_main_cpu_s=main_cpu,
    )


def baseline_round(scratch: Scratch, workers: list[int], options: E2EOptions) -> Round:
    """apply_async N times from this process, wait for N rows; time to the last row."""
    from bench.baseline.celery_app import TABLE, app, noop

    rows_before = scratch.query(f"SELECT COUNT(*) FROM {TABLE}")[0][0]
    cpu0, main0 = cpu_seconds(workers), cpu_seconds(workers[:1])
    started = datetime.now(UTC).replace(tzinfo=None)
    # The submitter's own connection to this run's vhost (the module read no URL at import).
    with (
        app.connection_for_write(scratch.amqp_url) as connection,
        connection.Producer() as producer,
    ):
        for _ in range(options.jobs):
            job_id = str(uuid.uuid4())
            noop.apply_async(
                kwargs={"payload": {}, "job_id": job_id}, task_id=job_id, producer=producer
            )
    _wait_until(
        lambda: scratch.query(f"SELECT COUNT(*) FROM {TABLE}")[0][0],
        rows_before + options.jobs,
        options.timeout_seconds,
    )
    worker_cpu = cpu_seconds(workers) - cpu0
    main_cpu = cpu_seconds(workers[:1]) - main0
    last, count = scratch.query(
        f"SELECT MAX(created_at), COUNT(*) FROM {TABLE} WHERE created_at >= %s", (started,)
    )[0]
    return Round(
        "baseline",
        int(count),
        (last - started).total_seconds(),
        worker_cpu,
        0.0,
        history_complete=int(count) == options.jobs,
        worker_main_cpu_s=main_cpu,
    )


def peer_round(
    database: peer.PeerDatabase, api: Server, workers: list[int], options: E2EOptions
) -> Round:
    """POST N jobs to the peer's API, wait until all succeeded; time to the last `succeeded`."""
    first_id = int(database.query("SELECT COALESCE(MAX(id), 0) FROM procrastinate_jobs")[0][0])
    done_before = database.succeeded()
    started = datetime.now(UTC)
    cpu0, api0 = cpu_seconds(workers), cpu_seconds([api.pid])
    asyncio.run(post_jobs(api.base, None, NOOP_BODY, options.jobs, SUBMIT_CONNECTIONS))
    _wait_until(database.succeeded, done_before + options.jobs, options.timeout_seconds)
    worker_cpu = cpu_seconds(workers) - cpu0
    api_cpu = cpu_seconds([api.pid]) - api0
    last, count = database.query(
        "SELECT MAX(e.at), COUNT(*) FROM procrastinate_events e"
        " WHERE e.type = 'succeeded' AND e.job_id > %s",
        (first_id,),
    )[0]
    # Full history: each job's three events, in order, and nothing else.
    histories = database.query(
        "SELECT COUNT(*) FROM ("
        " SELECT job_id, string_agg(type::text, ',' ORDER BY id) AS types"
        " FROM procrastinate_events WHERE job_id > %s GROUP BY job_id) h"
        " WHERE h.types = 'deferred,started,succeeded'",
        (first_id,),
    )[0][0]
    return Round(
        "procrastinate",
        int(count),
        (last - started).total_seconds(),
        worker_cpu,
        api_cpu,
        history_complete=int(histories) == options.jobs == int(count),
    )


def summary(
    rounds: list[Round],
    idle_rss: dict[str, dict[str, float]],
    peak_rss: dict[str, dict[str, float]],
    options: E2EOptions,
    pool: str,
    concurrency: int,
    prefetch: int,
) -> dict[str, Any]:
    """Medians over rounds per target, and jobline's ratios to the baseline and the peer.

    `ratio_jobs_per_second` and `ratio_worker_cpu_per_job` are jobline's over the Celery
    baseline's; `jobline_vs[other]` has both for each other target.
    """
    figures: dict[str, Any] = {}
    for target in TARGETS:
        mine = [r for r in rounds if r.target == target]
        figures[target] = {
            "jobs_per_second": median([r.jobs_per_second for r in mine]),
            "worker_cpu_ms_per_job": median([r.worker_cpu_s / r.jobs * 1000 for r in mine]),
            "worker_main_cpu_ms_per_job": median(
                [r.worker_main_cpu_s / r.jobs * 1000 for r in mine]
            ),
            "api_cpu_ms_per_job": median([r.api_cpu_s / r.jobs * 1000 for r in mine]),
            "history_complete": all(r.history_complete for r in mine),
            "events_per_job": EVENTS_PER_JOB[target],
            "rounds": [r.as_dict() for r in mine],
        }
    j, b = figures["jobline"], figures["baseline"]
    jobline_vs = {
        other: {
            "jobs_per_second": ratio(j["jobs_per_second"], figures[other]["jobs_per_second"]),
            "worker_cpu_per_job": ratio(
                j["worker_cpu_ms_per_job"], figures[other]["worker_cpu_ms_per_job"]
            ),
        }
        for other in TARGETS
        if other != "jobline"
    }
    return {
        "options": {"jobs": options.jobs, "rounds": options.rounds},
        "worker": {
            "pool": pool,
            "concurrency": concurrency,
            "prefetch": prefetch,
            "procrastinate_processes": peer.WORKERS,
            "procrastinate_concurrency": peer.WORKER_CONCURRENCY,
        },
        **figures,
        "ratio_jobs_per_second": ratio(j["jobs_per_second"], b["jobs_per_second"]),
        "ratio_worker_cpu_per_job": ratio(j["worker_cpu_ms_per_job"], b["worker_cpu_ms_per_job"]),
        "jobline_vs": jobline_vs,
        "rss_mb": {name: {"idle": idle_rss[name], "peak": peak_rss[name]} for name in idle_rss},
    }


def table(result: dict[str, Any]) -> list[str]:
    """The printed table of an e2e result."""
    lines = [
        f"{'target':13} {'jobs/s':>8} {'worker CPU ms/job':>18} {'API CPU ms/job':>15} "
        f"{'events/job':>10} {'history':>8}"
    ]
    for target in TARGETS:
        f = result[target]
        lines.append(
            f"{target:13} {f['jobs_per_second']:8.0f} {f['worker_cpu_ms_per_job']:18.2f} "
            f"{f['api_cpu_ms_per_job']:15.2f} {f['events_per_job']:>10} "
            f"{'full' if f['history_complete'] else 'MISSING':>8}"
        )
    for other, r in result["jobline_vs"].items():
        lines.append(
            f"jobline/{other}: jobs/s x{r['jobs_per_second']:.2f}, "
            f"worker CPU per job x{r['worker_cpu_per_job']:.2f}"
        )
    return lines
