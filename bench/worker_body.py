"""What recording a job costs the worker, without Celery: `python -m bench.worker_body`.

jobline: `run_job` (queueing/worker.py) called in a loop on N queued no-op jobs, in this
process, with the worker's own runtime (its event loop thread, Tortoise pool, notifier).
Each call reads the job, runs it and records `started` and `succeeded`.
Baseline: what the hand-written task does for the same job, one autocommit INSERT of a
row through pymysql (bench/baseline/celery_app.py), in the same loop.

Both run against a scratch MariaDB database, alternating in rounds; figures are CPU of
this whole process (every thread) and wall time, per job. Celery's own share (its main
process, the pool's pipes) is in the end-to-end benchmark, not here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bench.common import Scratch, jobline_env, median, prepare_jobline, ratio


def measure(run_one: Callable[[str], None], ids: list[str]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    for job_id in ids:
        run_one(job_id)
    n = max(len(ids), 1)
    return {
        "cpu_ms_per_job": (time.process_time() - cpu) * 1000 / n,
        "wall_ms_per_job": (time.perf_counter() - wall) * 1000 / n,
    }


def run(jobs: int, rounds: int, logdir: Path) -> dict[str, Any]:
    from bench.baseline.celery_app import DDL, INSERT, mysql_params

    scratch = Scratch.create()
    try:
        env = jobline_env(scratch, logdir)
        prepare_jobline(env)
        scratch.query(DDL)
        os.environ.update(env)
        import pymysql

        from jobline.config import get_settings
        from jobline.jobs.events import EventType
        from jobline.jobs.spec import load_queues
        from jobline.jobs.store import Change, NewJob
        from jobline.queueing import worker
        from jobline.queueing.runtime import runtime

        settings = get_settings()
        job_type = load_queues(settings.queues_file).domain_types("bench")[0]
        function = job_type.load()
        rt = runtime()
        # No task id: the jobs are queued with no message of their own (nothing left behind).
        task = SimpleNamespace(
            request=SimpleNamespace(delivery_info={}, hostname="bench@host", id=None)
        )
        data = {"type": job_type.name, "queue": "bench", "payload": {}, "priority": 0}
        owner = str(uuid.uuid4())
        connection = pymysql.connect(**mysql_params(scratch.mysql_url), autocommit=True)

        def queued_jobs() -> list[str]:
            ids = [uuid.uuid4() for _ in range(jobs)]
            rt.call(rt.store.submit_many([NewJob(i, {**data, "owner_id": owner}) for i in ids]))
            rt.call(rt.store.append_many([Change(i, EventType.QUEUED, {}) for i in ids]))
            return [str(i) for i in ids]

        def jobline(job_id: str) -> None:
            worker.run_job(task, job_type, function, job_id, {})  # type: ignore[arg-type]

        def baseline(job_id: str) -> None:
            with connection.cursor() as cur:
                now = time.strftime("%Y-%m-%d %H:%M:%S")
                cur.execute(INSERT, (job_id, "baseline.noop", "{}", "succeeded", now))

        results: dict[str, list[dict[str, float]]] = {"jobline": [], "baseline": []}
        for index in range(rounds + 1):  # the first round warms both up and is not counted
            ids = queued_jobs()
            order = [("jobline", jobline), ("baseline", baseline)]
            for name, run_one in order if index % 2 else order[::-1]:
                figures = measure(run_one, ids)
                if index:
                    results[name].append(figures)
        histories = scratch.query(
            "SELECT COUNT(*) FROM jobs WHERE state = 'succeeded' AND last_seq = 4"
        )[0][0]
        connection.close()
    finally:
        scratch.drop()
    summary: dict[str, Any] = {"jobs": jobs, "rounds": rounds}
    for name, rows in results.items():
        summary[name] = {key: median([r[key] for r in rows]) for key in rows[0]}
    summary["cpu_ratio"] = ratio(
        summary["jobline"]["cpu_ms_per_job"], summary["baseline"]["cpu_ms_per_job"]
    )
    summary["jobs_with_full_history"] = int(histories)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logdir", type=Path, default=Path("/tmp/jobline-bench-worker-body"))
    parser.add_argument("--quick", action="store_true", help="50 jobs, one round")
    args = parser.parse_args()
    jobs, rounds = (50, 1) if args.quick else (args.jobs, args.rounds)
    result = run(jobs, rounds, args.logdir)
    if result["jobs_with_full_history"] != jobs * (rounds + 1):
        print(f"only {result['jobs_with_full_history']} jobs have their four events")
        return 1
    for name in ("jobline", "baseline"):
        f = result[name]
        print(
            f"{name:8} {f['cpu_ms_per_job']:6.3f} ms CPU/job  {f['wall_ms_per_job']:6.3f} ms wall/job"
        )
    print(f"jobline/baseline CPU per job: x{result['cpu_ratio']:.2f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
