"""End to end: N no-op jobs from the first submit to the last one `succeeded`.

- `jobline`: wrk POSTs the jobs to /api/v1/jobs (one uvicorn worker); `jobline worker
  --domain bench` runs them, each recording submitted, queued, started and succeeded;
- `baseline`: plain Celery. The submitter calls apply_async; the task inserts one row.

Both workers: prefork, the same concurrency and prefetch (bench/queues.yaml), the same
worker flags. Rounds alternate between the two. A round's time runs from just before its
first submit to the last job's end as stored (jobline: finished_at; baseline: the row's
created_at, written by the task). Worker CPU is the worker's whole process tree (main
process and pool children) from /proc, before and after the round.
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
    from jobline.queueing.spec import load_queues

    domain = load_queues(BENCH_QUEUES, check_imports=False).domains["bench"]
    return domain.pool, domain.concurrency, domain.prefetch


def run(options: E2EOptions, logdir: Path) -> dict[str, Any]:
    """Run the end-to-end benchmark; returns its figures."""
    from bench.baseline.celery_app import DDL, QUEUE

    pool, concurrency, prefetch = _worker_settings()
    scratch = Scratch.create()
    procs: list[Proc] = []
    api: Server | None = None
    try:
        env = jobline_env(scratch, logdir)
        email = prepare_jobline(env)
        scratch.query(DDL)
        api = start_jobline_api(env, logdir)
        token = login(api.base, email)
        jobline_worker = start_jobline_worker(env, logdir)
        baseline_worker = start_baseline_worker(env, logdir, pool, concurrency, prefetch)
        procs = [jobline_worker, baseline_worker]
        wait_consuming(scratch, "bench")
        wait_consuming(scratch, QUEUE)
        time.sleep(IDLE_SETTLE_SECONDS)
        workers = {"jobline": jobline_worker.popen.pid, "baseline": baseline_worker.popen.pid}
        trees = {name: tree(pid) for name, pid in workers.items()}
        idle_rss = {name: _rss(pids) for name, pids in trees.items()}
        rounds: list[Round] = []
        with PeakRss([pid for pids in trees.values() for pid in pids]) as peak:
            for index in range(options.rounds):
                order = ("jobline", "baseline") if index % 2 == 0 else ("baseline", "jobline")
                for target in order:
                    if target == "jobline":
                        result = jobline_round(scratch, api, token, trees[target], options)
                    else:
                        result = baseline_round(scratch, trees[target], options)
                    rounds.append(result)
                    print(
                        f"  e2e {target:8} round {index + 1}: {result.jobs} jobs in "
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
        peak_rss = {
            name: {"main": peak.peak[pids[0]], "child": max(peak.peak[p] for p in pids[1:])}
            for name, pids in trees.items()
        }
    finally:
        for proc in procs:
            proc.stop()
        if api is not None:
            api.stop()
        scratch.drop()
    result = summary(rounds, idle_rss, peak_rss, options, pool, concurrency, prefetch)
    result["worker_profile"] = profile
    return result


def _rss(pids: list[int]) -> dict[str, float]:
    """RSS of a worker's main process and of its largest pool child."""
    return {"main": rss_mb(pids[0]), "child": max((rss_mb(p) for p in pids[1:]), default=0.0)}


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


def summary(
    rounds: list[Round],
    idle_rss: dict[str, dict[str, float]],
    peak_rss: dict[str, dict[str, float]],
    options: E2EOptions,
    pool: str,
    concurrency: int,
    prefetch: int,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for target in ("jobline", "baseline"):
        mine = [r for r in rounds if r.target == target]
        figures[target] = {
            "jobs_per_second": median([r.jobs_per_second for r in mine]),
            "worker_cpu_ms_per_job": median([r.worker_cpu_s / r.jobs * 1000 for r in mine]),
            "worker_main_cpu_ms_per_job": median(
                [r.worker_main_cpu_s / r.jobs * 1000 for r in mine]
            ),
            "api_cpu_ms_per_job": median([r.api_cpu_s / r.jobs * 1000 for r in mine]),
            "history_complete": all(r.history_complete for r in mine),
            "rounds": [r.as_dict() for r in mine],
        }
    j, b = figures["jobline"], figures["baseline"]
    return {
        "options": {"jobs": options.jobs, "rounds": options.rounds},
        "worker": {"pool": pool, "concurrency": concurrency, "prefetch": prefetch},
        "jobline": j,
        "baseline": b,
        "ratio_jobs_per_second": ratio(j["jobs_per_second"], b["jobs_per_second"]),
        "ratio_worker_cpu_per_job": ratio(j["worker_cpu_ms_per_job"], b["worker_cpu_ms_per_job"]),
        "rss_mb": {name: {"idle": idle_rss[name], "peak": peak_rss[name]} for name in idle_rss},
    }


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        f"{'target':8} {'jobs/s':>8} {'worker CPU ms/job':>18} {'API CPU ms/job':>15} {'history':>8}"
    ]
    for target in ("jobline", "baseline"):
        f = result[target]
        lines.append(
            f"{target:8} {f['jobs_per_second']:8.0f} {f['worker_cpu_ms_per_job']:18.2f} "
            f"{f['api_cpu_ms_per_job']:15.2f} {'full' if f['history_complete'] else 'MISSING':>8}"
        )
    lines.append(
        f"jobline/baseline: jobs/s x{result['ratio_jobs_per_second']:.2f}, "
        f"worker CPU per job x{result['ratio_worker_cpu_per_job']:.2f}"
    )
    return lines
