"""What an unauthenticated flood costs the audit log: rows per second, bytes per row.

    .venv/bin/python -m bench.audit_overhead.flood              # 15 s, 32 connections
    .venv/bin/python -m bench.audit_overhead.flood --seconds 3  # a smoke run

One API process (one uvicorn worker, audit on) on a scratch database; wrk sends
`GET /api/v1/jobs` with no valid credentials (every answer 401) as fast as the API
answers. Every request writes an audit row: the figures are the rows written per second
(the writer's own counter), the rows the table holds afterwards, and the bytes the table
grew by (data and indexes, from InnoDB after ANALYZE TABLE) per row. The retention
(JOBLINE_AUDIT_RETENTION_DAYS) bounds what such a flood leaves: rows/s x retention.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.audit_overhead.run import audit_counters, wrk
from bench.common import Scratch, Server, jobline_env, prepare_jobline, start_jobline_api

SECONDS_PER_DAY = 86_400


def table_bytes(scratch: Scratch) -> tuple[int, int]:
    """(data + index bytes, exact row count) of audit_log."""
    scratch.query("ANALYZE TABLE audit_log")
    ((size,),) = scratch.query(
        "SELECT data_length + index_length FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'audit_log'"
    )
    ((rows,),) = scratch.query("SELECT COUNT(*) FROM audit_log")
    return int(size), int(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    scratch = Scratch.create("jobline_bench_flood")
    server: Server | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="jobline-flood-bench-") as tmp:
            logdir = Path(tmp)
            env = jobline_env(scratch, logdir, JOBLINE_API_RELAY="false")
            prepare_jobline(env)
            server = start_jobline_api(env, logdir / "api")
            size_before, rows_before = table_bytes(scratch)
            started = time.monotonic()
            try:
                wrk(server, "not-a-token", "GET", "/api/v1/jobs", args.connections, args.seconds)
            except RuntimeError as exc:
                # Every answer is a 401 by design: wrk's non-2xx count is the flood itself.
                if "non-2xx" not in str(exc):
                    raise
            elapsed = time.monotonic() - started
            time.sleep(2.0)  # the writer's last batch
            counters = audit_counters(server)
            size_after, rows_after = table_bytes(scratch)
    finally:
        if server is not None:
            server.stop()
        scratch.drop()
    rows = rows_after - rows_before
    per_second = counters["written"] / elapsed
    per_row = (size_after - size_before) / max(rows, 1)
    result = {
        "seconds": round(elapsed, 1),
        "connections": args.connections,
        "rows_written": int(counters["written"]),
        "rows_dropped": int(counters["dropped"]),
        "rows_per_second": round(per_second, 1),
        "rows_in_table": rows,
        "bytes_per_row": round(per_row, 1),
        "gib_per_day_of_flood": round(per_second * per_row * SECONDS_PER_DAY / 2**30, 2),
    }
    print(
        f"unauthenticated flood: {result['rows_per_second']} audit rows/s "
        f"({result['rows_written']} written, {result['rows_dropped']} dropped in "
        f"{result['seconds']} s), {result['bytes_per_row']} bytes/row in the table: "
        f"{result['gib_per_day_of_flood']} GiB per day of flood"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
