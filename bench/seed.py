"""Bulk-seed a jobline database with a long history: N jobs and M events, by LOAD DATA.

    .venv/bin/python -m bench.seed --database jobline_bench_history --jobs 1000000 --events 10000000

The database (any name the jobline user may create: jobline%) is dropped and recreated,
migrated by `jobline migrate`, and given two accounts: the owner of most jobs and a
superuser (password tests.support.PASSWORD). Jobs are spread over `--days` days, newest
last; about 90% belong to the main owner, the rest to 99 others. Each job has a
lifecycle (submitted, queued, started, progress..., an outcome) of about M/N events, in
time order across jobs, so event ids grow with time as the live system writes them.

Rows go in by LOAD DATA LOCAL INFILE in chunks, with unique checks off for the load (the
data is unique by construction). `--max-event-seconds` stops loading events once that
much time went by, and the result says how many made it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import PASSWORD, admin_connection, prepare_jobline, run_jobline

TYPES = ("bench.noop", "music.transcode", "music.fingerprint", "video.thumbnail", "video.render")
TYPE_WEIGHTS = (50, 25, 10, 10, 5)
# Final states and their share of jobs; the rest of a job's history follows from it.
OUTCOMES = (("succeeded", 90), ("failed", 5), ("cancelled", 3), ("running", 1), ("queued", 1))
OWNERS = 100
MAIN_OWNER_SHARE = 0.9
CHUNK_JOBS = 50_000
LIFECYCLE_EVENTS = 4  # submitted, queued, started, outcome
QUEUED_EVENTS = 2  # submitted, queued
JOB_COLUMNS = [
    "id",
    "type",
    "queue",
    "state",
    "progress",
    "message",
    "attempt",
    "priority",
    "payload",
    "result",
    "error",
    "owner_id",
    "last_seq",
    "cancel_requested",
    "task_id",
    "idempotency_key",
    "request_hash",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
]
EVENT_COLUMNS = ["job_id", "seq", "type", "attempt", "at", "data", "owner_id"]
NULL = "\\N"


@dataclass
class SeedResult:
    database: str
    jobs: int
    events: int
    jobs_seconds: float
    events_seconds: float
    index_seconds: float
    main_owner: str
    main_email: str
    super_email: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _tsv(value: Any) -> str:
    if value is None:
        return NULL
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _at(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _load(cursor: Any, path: Path, table: str, columns: list[str]) -> None:
    cursor.execute(
        f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
        f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
        f"({', '.join(f'`{c}`' for c in columns)})",
        (str(path),),
    )


def _chunk(
    rng: random.Random,
    start: int,
    count: int,
    total: int,
    first: datetime,
    span: timedelta,
    owners: list[str],
    progress_per_job: float,
) -> tuple[list[str], list[tuple[datetime, str]]]:
    """TSV lines of `count` jobs from index `start`, and their events with their times."""
    jobs, events = [], []
    outcomes = [o for o, _ in OUTCOMES]
    weights = [w for _, w in OUTCOMES]
    for index in range(start, start + count):
        job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        owner = owners[0] if rng.random() < MAIN_OWNER_SHARE else rng.choice(owners[1:])
        job_type = rng.choices(TYPES, TYPE_WEIGHTS)[0]
        queue = job_type.split(".")[0]
        created = first + span * (index / total)
        outcome = rng.choices(outcomes, weights)[0]
        progress_events = int(progress_per_job) + (rng.random() < progress_per_job % 1)
        if outcome == "queued":
            progress_events = 0
        payload = {"source": f"file-{index}.wav"}
        history: list[tuple[str, dict[str, Any]]] = [
            (
                "submitted",
                {
                    "type": job_type,
                    "queue": queue,
                    "payload": payload,
                    "priority": 0,
                    "owner_id": owner,
                    "delay_seconds": None,
                },
            ),
            ("queued", {"task_id": job_id}),
        ]
        result = error = message = None
        progress, started, finished = 0, None, None
        if outcome != "queued":
            history.append(("started", {"worker": f"{queue}@seed"}))
            for step in range(progress_events):
                percent = (step + 1) * 100 // (progress_events + 1)
                message = f"step {step + 1}"
                history.append(("progress", {"progress": percent, "message": message}))
                progress = percent
            if outcome == "succeeded":
                result = {"output": f"file-{index}.ogg"}
                history.append(("succeeded", {"result": result}))
                progress = 100
            elif outcome == "failed":
                error = {"type": "ValueError", "message": "the source is not audio"}
                history.append(("failed", {"error": error}))
            elif outcome == "cancelled":
                history.append(("cancelled", {"reason": "cancelled by request"}))
        at = created
        for seq, (kind, data) in enumerate(history, start=1):
            events.append(
                (
                    at,
                    "\t".join(
                        _tsv(v) for v in (job_id, seq, kind, 1, _at(at), json.dumps(data), owner)
                    ),
                )
            )
            if kind == "started":
                started = at
            if kind in ("succeeded", "failed", "cancelled"):
                finished = at
            last_at = at
            at += timedelta(milliseconds=rng.randint(5, 400))
        state = outcome
        jobs.append(
            "\t".join(
                _tsv(v)
                for v in (
                    job_id,
                    job_type,
                    queue,
                    state,
                    progress,
                    message,
                    1,
                    0,
                    json.dumps(payload),
                    json.dumps(result) if result is not None else None,
                    json.dumps(error) if error is not None else None,
                    owner,
                    len(history),
                    0,
                    job_id,
                    None,
                    None,
                    _at(created),
                    _at(last_at),
                    _at(started) if started else None,
                    _at(finished) if finished else None,
                )
            )
        )
    return jobs, events


def seed(
    database: str,
    jobs: int,
    events: int,
    days: float = 30.0,
    max_event_seconds: float | None = None,
    seed_value: int = 7,
    quiet: bool = False,
) -> SeedResult:
    """(Re)create `database` and fill it; see the module docstring."""

    def say(*args: Any, **kwargs: Any) -> None:
        if not quiet:
            print(*args, **kwargs)

    with admin_connection() as admin, admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cur.execute(
            f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    user, password, hostport = _credentials()
    env = {
        "JOBLINE_DATABASE_URL": f"mysql://{user}:{password}@{hostport}/{database}",
        "JOBLINE_SECRET_KEY": "bench-secret-" + "x" * 40,
        "JOBLINE_ENV": "test",
    }
    main_email = prepare_jobline(env)
    super_email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    run_jobline(["users", "create", super_email, "--superuser"], env, PASSWORD + "\n")
    with admin_connection(database) as db, db.cursor() as cur:
        cur.execute("SELECT id FROM users WHERE email = %s", (main_email,))
        main_owner = str(cur.fetchone()[0])
    rng = random.Random(seed_value)
    owners = [main_owner] + [
        str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(OWNERS - 1)
    ]
    # Progress events per started job, so that the lifecycles add up to about `events`
    # (a job still queued has only submitted and queued).
    queued_share = dict(OUTCOMES)["queued"] / sum(w for _, w in OUTCOMES)
    per_job = events / max(jobs, 1)
    progress_per_job = max(
        0.0, (per_job - queued_share * QUEUED_EVENTS) / (1 - queued_share) - LIFECYCLE_EVENTS
    )
    span = timedelta(days=days)
    first = datetime.now(UTC).replace(tzinfo=None) - span
    loaded_jobs = loaded_events = 0
    jobs_seconds = events_seconds = 0.0
    loading_events = True
    with (
        tempfile.TemporaryDirectory(prefix="jobline-seed-") as folder,
        admin_connection(database, local_infile=True) as db,
        db.cursor() as cur,
    ):
        cur.execute("SET unique_checks = 0")
        for start in range(0, jobs, CHUNK_JOBS):
            count = min(CHUNK_JOBS, jobs - start)
            job_lines, job_events = _chunk(
                rng, start, count, jobs, first, span, owners, progress_per_job
            )
            path = Path(folder) / "jobs.tsv"
            path.write_text("\n".join(job_lines) + "\n")
            began = time.monotonic()
            _load(cur, path, "jobs", JOB_COLUMNS)
            db.commit()
            jobs_seconds += time.monotonic() - began
            loaded_jobs += count
            if loading_events:
                job_events.sort(key=lambda e: e[0])
                path = Path(folder) / "events.tsv"
                path.write_text("\n".join(line for _, line in job_events) + "\n")
                began = time.monotonic()
                _load(cur, path, "job_events", EVENT_COLUMNS)
                db.commit()
                events_seconds += time.monotonic() - began
                loaded_events += len(job_events)
                if max_event_seconds is not None and events_seconds > max_event_seconds:
                    loading_events = False
                    say(f"  events: stopped after {events_seconds:.0f} s (the time budget)")
            say(
                f"  seeded {loaded_jobs:,} jobs ({jobs_seconds:.0f} s), "
                f"{loaded_events:,} events ({events_seconds:.0f} s)",
                flush=True,
            )
        cur.execute("SET unique_checks = 1")
        began = time.monotonic()
        cur.execute("ANALYZE TABLE jobs, job_events")
        cur.fetchall()
        index_seconds = time.monotonic() - began
    return SeedResult(
        database,
        loaded_jobs,
        loaded_events,
        jobs_seconds,
        events_seconds,
        index_seconds,
        main_owner,
        main_email,
        super_email,
    )


def _credentials() -> tuple[str, str, str]:
    from bench.common import MYSQL_ADMIN, _split

    user, password, hostport, _ = _split(MYSQL_ADMIN)
    return user, password, hostport


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default="jobline_bench_history")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--max-event-seconds", type=float, default=None)
    args = parser.parse_args(argv)
    result = seed(args.database, args.jobs, args.events, args.days, args.max_event_seconds)
    print(json.dumps(result.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
