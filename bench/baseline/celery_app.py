"""The hand-written Celery that jobline replaces: a task that inserts one row, nothing else.

Celery's defaults (no result backend, early ack, no publisher confirms), as people write
it. The benchmark's runner gives its worker the same pool, concurrency and prefetch as
jobline's (bench/queues.yaml), on the command line:

    celery -A bench.baseline.celery_app worker -Q bench_baseline -P prefork -c 2 --prefetch-multiplier 1
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pymysql
from celery import Celery

QUEUE = "bench_baseline"
TABLE = "baseline_jobs"
# The row a baseline job leaves: what the hand-written version stores about a job.
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id CHAR(36) NOT NULL PRIMARY KEY,
    type VARCHAR(100) NOT NULL,
    payload JSON NOT NULL,
    state VARCHAR(16) NOT NULL,
    created_at DATETIME(6) NOT NULL
)
"""
INSERT = f"INSERT INTO {TABLE} (id, type, payload, state, created_at) VALUES (%s, %s, %s, %s, %s)"

app = Celery("baseline", broker=os.environ.get("BENCH_BROKER_URL", "amqp://localhost//"))
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)

_local = threading.local()


def mysql_params(url: str) -> dict[str, Any]:
    """pymysql/aiomysql connect arguments of a mysql:// URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": parts.username or "",
        "password": parts.password or "",
        "db": parts.path.lstrip("/"),
    }


def _connection() -> Any:
    # One connection per pool process, opened on its first job.
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = pymysql.connect(**mysql_params(os.environ["BENCH_DATABASE_URL"]), autocommit=True)
        _local.conn = conn
    return conn


@app.task(name="baseline.noop")  # type: ignore[untyped-decorator]  # celery ships no types
def noop(payload: dict[str, Any], job_id: str | None = None) -> None:
    """The job's whole record: one row, written when it ran."""
    with _connection().cursor() as cur:
        cur.execute(
            INSERT,
            (
                job_id or noop.request.id,
                "baseline.noop",
                json.dumps(payload),
                "succeeded",
                datetime.now(UTC).replace(tzinfo=None),
            ),
        )
