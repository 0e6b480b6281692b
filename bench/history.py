"""History at scale: listing pages of a big `jobs` table, keyset cursor against OFFSET.

On a database seeded by bench/seed.py (1,000,000 jobs and 10,000,000 events in the full
run), one API process answers, sequentially:

- GET /api/v1/jobs: the first page and pages deep in the walk (a cursor made for the row
  at that depth), for the main owner (owner index) and a superuser (all jobs), unfiltered
  and filtered by state and by type;
- GET /api/v1/jobs/{id}/events, the first page and after a seq.

Beside it the same page read straight from MariaDB, by the keyset query jobline sends
(captured from its store) and by LIMIT ... OFFSET at the same depth, and the plans of
both (EXPLAIN FORMAT=JSON, and ANALYZE FORMAT=JSON for what they really read).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit
from uuid import UUID

from bench.common import (
    PASSWORD,
    Scratch,
    Server,
    admin_connection,
    jobline_env,
    login,
    percentile,
    run_jobline,
    start_jobline_api,
)
from bench.seed import _credentials, seed

PAGE = 50
FULL_DEPTHS = (0, 1_000, 10_000, 100_000, 400_000, 800_000)
QUICK_DEPTHS = (0, 100, 1_000, 2_000)
OFFSET_BUDGET_SECONDS = 20.0  # per depth: OFFSET pages far down take seconds each


@dataclass(frozen=True)
class HistoryOptions:
    jobs: int = 1_000_000
    events: int = 10_000_000
    database: str = "jobline_bench_history"
    depths: tuple[int, ...] = FULL_DEPTHS
    samples: int = 100
    offset_samples: int = 5
    reuse: bool = True  # keep a database already seeded with `jobs` jobs
    max_event_seconds: float | None = 600.0


class Client:
    """Sequential GETs on one keep-alive connection (http.client: little client overhead)."""

    def __init__(self, base: str, token: str) -> None:
        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port
        self.conn = http.client.HTTPConnection(self.host, self.port)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: Any) -> tuple[float, dict[str, Any]]:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        target = f"{path}?{query}" if query else path
        try:
            started = time.perf_counter()
            self.conn.request("GET", target, headers=self.headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # The server closed an idle keep-alive connection: a new one, not timed.
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port)
            self.conn.request("GET", target, headers=self.headers)
            self.conn.getresponse().read()
            started = time.perf_counter()
            self.conn.request("GET", target, headers=self.headers)
            response = self.conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path} {params}: {response.status} {body[:300]!r}")
        return elapsed, json.loads(body)


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "samples": len(ms),
    }


def _existing(database: str) -> int:
    try:
        with admin_connection(database) as db, db.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM jobs")
            return int(cur.fetchone()[0])
    except Exception:
        return -1


def migrate_seeded(database: str) -> str:
    """`jobline migrate` on a kept seeded database; what it printed."""
    user, password, hostport = _credentials()
    env = {
        "JOBLINE_DATABASE_URL": f"mysql://{user}:{password}@{hostport}/{database}",
        "JOBLINE_SECRET_KEY": "bench-secret-" + "x" * 40,
        "JOBLINE_ENV": "test",
    }
    return run_jobline(["migrate"], env).strip()


def run(options: HistoryOptions, logdir: Path) -> dict[str, Any]:
    """Seed (or reuse) the database, then time the pages; returns the figures."""
    seeded: dict[str, Any] = {"reused": False}
    if options.reuse and _existing(options.database) == options.jobs:
        seeded["reused"] = True
        print(f"  history: reusing {options.database} ({options.jobs:,} jobs)", flush=True)
        # Seeded by an earlier version: its schema gets the migrations since (the API of
        # this one reads columns and tables they add).
        seeded["migrated"] = migrate_seeded(options.database)
    else:
        began = time.monotonic()
        result = seed(
            options.database,
            options.jobs,
            options.events,
            max_event_seconds=options.max_event_seconds,
        )
        seeded.update(result.as_dict(), wall_seconds=time.monotonic() - began)
    with admin_connection(options.database) as db, db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM job_events")
        seeded["events"] = int(cur.fetchone()[0])
        seeded["jobs"] = _existing(options.database)
        cur.execute("SELECT email, id, is_superuser FROM users")
        accounts = {bool(s): (email, UUID(str(i))) for email, i, s in cur.fetchall()}
    scratch = Scratch.create()  # its vhost is the API's broker; its database stays unused
    api: Server | None = None
    try:
        env = jobline_env(
            scratch,
            logdir,
            JOBLINE_DATABASE_URL=scratch.mysql_url.rsplit("/", 1)[0] + f"/{options.database}",
        )
        api = start_jobline_api(env, logdir)
        secret = env["JOBLINE_SECRET_KEY"]
        figures = measure(api, secret, accounts, options)
        figures["plans"] = asyncio.run(plans(env["JOBLINE_DATABASE_URL"], accounts, options))
    finally:
        if api is not None:
            api.stop()
        scratch.drop()
    figures["seed"] = seeded
    figures["indexes"] = indexes(options.database)
    return figures


def _row_at(database: str, where: str, args: tuple[Any, ...], index: str, depth: int) -> Any:
    """(created_at, id) of the row at `depth` of a listing, by an index-only scan."""
    with admin_connection(database) as db, db.cursor() as cur:
        cur.execute(
            f"SELECT created_at, id FROM jobs FORCE INDEX ({index}) WHERE {where} "
            f"ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET %s",
            (*args, depth),
        )
        return cur.fetchone()


def _count(database: str, where: str, args: tuple[Any, ...]) -> int:
    with admin_connection(database) as db, db.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM jobs WHERE {where}", args)
        return int(cur.fetchone()[0])


@dataclass(frozen=True)
class Listing:
    """One listing to walk: who, which filter, its SQL condition and index."""

    name: str
    superuser: bool
    params: dict[str, str]
    where: str
    args: tuple[Any, ...]
    index: str


def listings(accounts: dict[bool, tuple[str, UUID]]) -> list[Listing]:
    owner = str(accounts[False][1])
    return [
        Listing("owner", False, {}, "owner_id = %s", (owner,), "idx_jobs_owner_created"),
        Listing(
            "owner state=failed",
            False,
            {"state": "failed"},
            "owner_id = %s AND state = %s",
            (owner, "failed"),
            "idx_jobs_owner_state",
        ),
        Listing(
            "owner type=video.render",
            False,
            {"type": "video.render"},
            "owner_id = %s AND type = %s",
            (owner, "video.render"),
            "idx_jobs_owner_created",
        ),
        Listing("all (superuser)", True, {}, "1 = 1", (), "idx_jobs_created"),
        Listing(
            "all type=video.render",
            True,
            {"type": "video.render"},
            "type = %s",
            ("video.render",),
            "idx_jobs_type",
        ),
        Listing(
            "all state=failed",
            True,
            {"state": "failed"},
            "state = %s",
            ("failed",),
            "idx_jobs_state",
        ),
    ]


def _cursor(secret: str, caller: UUID, superuser: bool, params: dict[str, str], row: Any) -> str:
    """The next_page cursor the API would have issued after `row`, for this caller and filter."""
    from jobline.api.cursors import CursorCodec
    from jobline.jobs.states import JobState
    from jobline.jobs.store import JobQuery

    query = JobQuery(
        owner_id=None if superuser else caller,
        state=JobState(params["state"]) if "state" in params else None,
        type=params.get("type"),
    )
    created, job_id = row
    return CursorCodec(secret).encode(
        f"jobs:{caller}:{query}", [created.replace(tzinfo=UTC).isoformat(), str(job_id)]
    )


def measure(
    api: Server, secret: str, accounts: dict[bool, tuple[str, UUID]], options: HistoryOptions
) -> dict[str, Any]:
    clients = {
        superuser: Client(api.base, login(api.base, email))
        for superuser, (email, _) in accounts.items()
    }
    rows: list[dict[str, Any]] = []
    for listing in listings(accounts):
        client = clients[listing.superuser]
        caller = accounts[listing.superuser][1]
        total = _count(options.database, listing.where, listing.args)
        for depth in options.depths:
            if depth >= total:
                continue
            row = _row_at(options.database, listing.where, listing.args, listing.index, depth)
            cursor = (
                _cursor(secret, caller, listing.superuser, listing.params, row) if depth else None
            )
            client.get("/api/v1/jobs", size=PAGE, cursor=cursor, **listing.params)  # warm
            times = []
            for _ in range(options.samples):
                elapsed, page = client.get(
                    "/api/v1/jobs", size=PAGE, cursor=cursor, **listing.params
                )
                times.append(elapsed)
            expected = min(PAGE, total - depth - 1 if depth else total)
            assert len(page["items"]) == expected, (listing.name, depth, len(page["items"]))
            rows.append({"listing": listing.name, "depth": depth, "rows": total, **_stats(times)})
            print(
                f"  history {listing.name:24} depth {depth:>8,}: "
                f"p50 {rows[-1]['p50_ms']:6.2f} ms  p95 {rows[-1]['p95_ms']:6.2f} ms",
                flush=True,
            )
    events = events_pages(clients[False], options)
    sql = sql_keyset_vs_offset(accounts, options)
    return {"api": rows, "events": events, "sql": sql, **targets(rows)}


def targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets: p95 < 10 ms at any depth; deep pages within 1.2x of the first."""
    worst = max(rows, key=lambda r: r["p95_ms"])
    ratios = []
    for row in rows:
        first = next(r for r in rows if r["listing"] == row["listing"] and r["depth"] == 0)
        ratios.append(
            {
                "listing": row["listing"],
                "depth": row["depth"],
                "p50_vs_first": row["p50_ms"] / first["p50_ms"],
                "p95_vs_first": row["p95_ms"] / first["p95_ms"],
            }
        )
    return {
        "worst_p95_ms": worst["p95_ms"],
        "worst_p95_at": f"{worst['listing']} depth {worst['depth']}",
        "worst_deep_vs_first": max(r["p95_vs_first"] for r in ratios),
        "worst_deep_vs_first_p50": max(r["p50_vs_first"] for r in ratios),
        "deep_vs_first": ratios,
    }


def events_pages(client: Client, options: HistoryOptions) -> dict[str, Any]:
    """GET /jobs/{id}/events for random jobs of the main owner: first page and after a seq."""
    rng = random.Random(options.samples)
    jobs: list[tuple[str, int]] = []
    with admin_connection(options.database) as db, db.cursor() as cur:
        # Random jobs by the primary key (ORDER BY RAND() reads the whole table).
        for _ in range(options.samples * 10):
            if len(jobs) == options.samples:
                break
            cur.execute(
                "SELECT id, last_seq FROM jobs WHERE id >= %s AND last_seq >= 4 "
                "ORDER BY id LIMIT 1",
                (str(uuid.UUID(int=rng.getrandbits(128))),),
            )
            found = cur.fetchone()
            if found is not None:
                jobs.append((str(found[0]), int(found[1])))
    first, after = [], []
    for job_id, last_seq in jobs:
        try:
            elapsed, page = client.get(f"/api/v1/jobs/{job_id}/events", size=PAGE)
        except RuntimeError:
            continue  # another owner's job: 404 (the main owner holds most of them)
        first.append(elapsed)
        assert len(page["items"]) == last_seq
        elapsed, page = client.get(
            f"/api/v1/jobs/{job_id}/events", size=PAGE, after_seq=last_seq // 2
        )
        after.append(elapsed)
    return {"first_page": _stats(first), "after_seq": _stats(after)}


def sql_keyset_vs_offset(
    accounts: dict[bool, tuple[str, UUID]], options: HistoryOptions
) -> list[dict[str, Any]]:
    """The main owner's page at each depth, by keyset (jobline's SQL) and by OFFSET."""
    owner = str(accounts[False][1])
    out: list[dict[str, Any]] = []
    with admin_connection(options.database) as db, db.cursor() as cur:
        for depth in options.depths:
            row = _row_at(
                options.database, "owner_id = %s", (owner,), "idx_jobs_owner_created", depth
            )
            if row is None:
                continue
            keyset = [
                _time(cur, KEYSET_SQL, (owner, row[0], row[0], row[1]))
                for _ in range(options.samples)
            ]
            offset: list[float] = []
            budget = time.monotonic() + OFFSET_BUDGET_SECONDS
            while len(offset) < options.offset_samples and (
                not offset or time.monotonic() < budget
            ):
                offset.append(_time(cur, OFFSET_SQL, (owner, depth)))
            out.append(
                {
                    "depth": depth,
                    "keyset": _stats(keyset),
                    "offset": _stats(offset),
                    "offset_vs_keyset_p50": percentile(offset, 50) / percentile(keyset, 50),
                }
            )
            print(
                f"  history SQL depth {depth:>8,}: keyset p50 {out[-1]['keyset']['p50_ms']:7.2f} ms"
                f"  offset p50 {out[-1]['offset']['p50_ms']:9.2f} ms",
                flush=True,
            )
    return out


# The keyset page as jobline's store sends it for an owner (see plans(): captured from it),
# and the OFFSET page people write instead.
KEYSET_SQL = (
    "SELECT * FROM jobs FORCE INDEX (idx_jobs_owner_created) WHERE owner_id = %s "
    "AND (created_at < %s OR (created_at = %s AND id < %s)) "
    "ORDER BY created_at DESC, id DESC LIMIT 51"
)
OFFSET_SQL = (
    "SELECT * FROM jobs WHERE owner_id = %s ORDER BY created_at DESC, id DESC LIMIT 51 OFFSET %s"
)


def _time(cur: Any, sql: str, args: tuple[Any, ...]) -> float:
    started = time.perf_counter()
    cur.execute(sql, args)
    cur.fetchall()
    return time.perf_counter() - started


class Captured(logging.Handler):
    """The SELECTs Tortoise logs (its `tortoise.db_client` logger at DEBUG): (sql, args)."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[tuple[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).startswith("SELECT"):
            self.queries.append((str(args[0]), args[1]))


@contextmanager
def captured_selects() -> Iterator[Captured]:
    """Capture the SELECTs the store sends, for as long as the block runs; the logger's
    level is restored after."""
    handler = Captured()
    db_log = logging.getLogger("tortoise.db_client")
    level = db_log.level
    db_log.addHandler(handler)
    db_log.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        db_log.removeHandler(handler)
        db_log.setLevel(level)


async def plans(
    database_url: str, accounts: dict[bool, tuple[str, UUID]], options: HistoryOptions
) -> dict[str, Any]:
    """The SQL jobline's store sends (captured from its log) and MariaDB's plans for it."""
    from datetime import datetime

    from jobline.config import Settings
    from jobline.db import close_db, open_db
    from jobline.jobs.states import JobState
    from jobline.jobs.store import JobQuery, JobStore

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, env="test", database_url=database_url, secret_key="x" * 40
    )
    owner = accounts[False][1]
    depth = max(d for d in options.depths if d < _existing(options.database) * 0.8)
    row = _row_at(options.database, "owner_id = %s", (str(owner),), "idx_jobs_owner_created", depth)
    after = (row[0].replace(tzinfo=UTC), UUID(str(row[1])))
    cases: dict[str, tuple[JobQuery, tuple[datetime, UUID] | None]] = {
        "owner first page": (JobQuery(owner_id=owner), None),
        f"owner keyset at depth {depth:,}": (JobQuery(owner_id=owner), after),
        "owner state=failed first page": (JobQuery(owner_id=owner, state=JobState.FAILED), None),
        "owner type=video.render first page": (JobQuery(owner_id=owner, type="video.render"), None),
        "all first page": (JobQuery(), None),
        "all type=video.render first page": (JobQuery(type="video.render"), None),
    }
    sent: dict[str, tuple[str, Any]] = {}
    with captured_selects() as captured:
        await open_db(settings)
        store = JobStore()
        try:
            for name, (query, key) in cases.items():
                captured.queries.clear()
                await store.list_jobs(query, key, PAGE + 1)
                sent[name] = captured.queries[-1]
            # The dashboard's Previous page from the same depth: the keys just newer than
            # `after`.
            captured.queries.clear()
            await store.newer_keys(JobQuery(owner_id=owner), after, PAGE + 1)
            sent[f"owner previous page at depth {depth:,}"] = captured.queries[-1]
            captured.queries.clear()
            job_id = UUID(str(row[1]))
            await store.events(job_id, 0, PAGE + 1)
            sent["events of a job"] = captured.queries[-1]
        finally:
            await close_db()
    sent[f"OFFSET at depth {depth:,} (not used by jobline)"] = (OFFSET_SQL, (str(owner), depth))
    out: dict[str, Any] = {}
    with admin_connection(options.database) as db, db.cursor() as cur:
        for name, (sql, args) in sent.items():
            literal = cur.mogrify(sql.replace("?", "%s"), tuple(args or ()))
            cur.execute(f"EXPLAIN FORMAT=JSON {literal}")
            explain = json.loads(cur.fetchone()[0])
            cur.execute(f"ANALYZE FORMAT=JSON {literal}")
            analyze = json.loads(cur.fetchone()[0])
            out[name] = {
                "sql": literal,
                "explain": explain,
                "analyze": analyze,
                "summary": plan_summary(analyze),
            }
    return out


def plan_summary(analyze: dict[str, Any]) -> dict[str, Any]:
    """Index used, rows examined and time, from MariaDB's ANALYZE FORMAT=JSON."""
    block = analyze.get("query_block", {})
    text = json.dumps(block)
    tables: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "table_name" in node:
                tables.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(block)
    table = tables[0] if tables else {}
    return {
        "index": table.get("key"),
        "key_parts": table.get("used_key_parts"),
        "access": table.get("access_type"),
        "rows_read": table.get("r_rows"),
        "pages": table.get("r_engine_stats", {}).get("pages_accessed"),
        "time_ms": block.get("r_total_time_ms"),
        "filesort": "filesort" in text,
    }


def indexes(database: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with admin_connection(database) as db, db.cursor() as cur:
        for table in ("jobs", "job_events"):
            cur.execute(f"SHOW INDEX FROM {table}")
            by_name: dict[str, list[str]] = {}
            for row in cur.fetchall():
                by_name.setdefault(row[2], []).append(row[4])
            out[table] = [f"{name} ({', '.join(cols)})" for name, cols in by_name.items()]
    return out


def table(result: dict[str, Any]) -> list[str]:
    lines = [f"{'listing':24} {'depth':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"]
    for row in result["api"]:
        lines.append(
            f"{row['listing']:24} {row['depth']:>9,} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} "
            f"{row['p99_ms']:8.2f}"
        )
    ev = result["events"]
    lines.append(
        f"{'events first page':24} {'':>9} {ev['first_page']['p50_ms']:8.2f} "
        f"{ev['first_page']['p95_ms']:8.2f} {ev['first_page']['p99_ms']:8.2f}"
    )
    lines.append(
        f"{'events after_seq':24} {'':>9} {ev['after_seq']['p50_ms']:8.2f} "
        f"{ev['after_seq']['p95_ms']:8.2f} {ev['after_seq']['p99_ms']:8.2f}"
    )
    lines.append(f"{'SQL page':24} {'depth':>9} {'keyset':>8} {'OFFSET':>10} {'x':>7}")
    for row in result["sql"]:
        lines.append(
            f"{'':24} {row['depth']:>9,} {row['keyset']['p50_ms']:8.2f} "
            f"{row['offset']['p50_ms']:10.2f} {row['offset_vs_keyset_p50']:7.1f}"
        )
    lines.append(
        f"worst API p95 {result['worst_p95_ms']:.2f} ms ({result['worst_p95_at']}); "
        f"worst deep/first: p50 x{result['worst_deep_vs_first_p50']:.2f}, "
        f"p95 x{result['worst_deep_vs_first']:.2f}"
    )
    return lines


def quick_options() -> HistoryOptions:
    """A few thousand rows in a scratch database of its own."""
    return HistoryOptions(
        jobs=3_000,
        events=30_000,
        database=f"jobline_bench_hq_{random.randrange(16**6):06x}",
        depths=QUICK_DEPTHS,
        samples=10,
        offset_samples=2,
        reuse=False,
        max_event_seconds=None,
    )


def drop(database: str) -> None:
    with admin_connection() as db, db.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{database}`")


__all__ = ["PASSWORD", "HistoryOptions", "drop", "quick_options", "run", "table"]
