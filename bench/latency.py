"""Latency at a fixed offered rate (open loop): submit, and submit to `started`.

wrk and `bench.client.post_jobs` are closed loops: each connection sends its next request
when the last is answered, so the offered load adapts to the server and the latency is
Little's law of the connection count. Here `bench.client.open_loop` sends on a schedule
and measures each request from its scheduled time (coordinated omission cannot hide a
queue), side by side in the same run:

- `submit`: POST /api/v1/jobs at `submit_rate` per second for `seconds` against every
  target of the submit benchmark (`publish`, `insert`, `procrastinate`, `jobline`; no
  worker runs, as in `submit`), in turn, the order alternating per round; p50/p95/p99 of
  every request of every round together;
- `started`: POSTs at `started_rate` per second with the workers running, and for each
  job the time from its scheduled send to its `started`, as each target stores it:
  jobline's `started` event `at` (the time the job began, also when written late),
  the peer's `started` row of `procrastinate_events`, and for plain Celery (the
  `publish` endpoint and its worker) the row the task writes when it runs (a no-op: its
  start). Clocks: all on this machine, stored with microseconds.

Targets (issue 17): jobline's submit p99 <= 50 ms at 800 req/s; submit to `started`
p50 <= 25 ms and p99 <= 100 ms at 200 jobs/s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support import tree

from bench import submit as submit_bench
from bench.client import OpenLoopResult, Sent, run_open_loop
from bench.common import (
    NOOP_BODY,
    Proc,
    Scratch,
    Server,
    cpu_seconds,
    jobline_env,
    login,
    percentile,
    prepare_jobline,
    ratio,
    start_baseline_worker,
    start_jobline_worker,
    wait_consuming,
)
from bench.peer import stack as peer

SUBMIT_TARGETS = submit_bench.TARGETS
# `insert`'s endpoint writes the row the Celery task writes too (same id): only `publish`
# pairs with the plain Celery worker.
STARTED_TARGETS = ("publish", "procrastinate", "jobline")
TARGET_SUBMIT_P99_MS = 50.0
TARGET_STARTED_P50_MS = 25.0
TARGET_STARTED_P99_MS = 100.0
POLL_SECONDS = 0.1
IDLE_SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class LatencyOptions:
    """Offered rates, how long each is offered, rounds; the waits for `started`."""

    submit_rate: float = 800.0
    started_rate: float = 200.0
    seconds: float = 10.0
    rounds: int = 2
    warmup_seconds: float = 2.0
    started_timeout_seconds: float = 120.0


def quick_options() -> LatencyOptions:
    """A tiny size for `--quick`: proves it runs, its figures mean nothing."""
    return LatencyOptions(
        submit_rate=100.0, started_rate=50.0, seconds=2.0, rounds=1, warmup_seconds=0.5
    )


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values, 50) * 1000,
        "p95_ms": percentile(values, 95) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values) * 1000 if values else float("nan"),
    }


def _round_figures(run: OpenLoopResult, cpu_s: float) -> dict[str, Any]:
    ok = run.ok
    return {
        "requests": len(run.sent),
        "errors": run.errors,
        "achieved_rps": len(ok) / run.seconds if run.seconds else 0.0,
        **_ms([s.latency for s in ok]),
        # The client's own lateness (in the latency already): near 0 means it kept the rate.
        "client_lag_p99_ms": percentile([s.lag for s in run.sent], 99) * 1000,
        "connections_used": run.connections_used,
        "cpu_ms_per_request": cpu_s * 1000 / max(len(run.sent), 1),
    }


def _pooled(rounds: list[tuple[OpenLoopResult, dict[str, Any]]]) -> dict[str, Any]:
    """Percentiles over every request of every round; the rounds' own figures kept."""
    ok = [s.latency for run, _ in rounds for s in run.ok]
    return {
        "requests": sum(len(run.sent) for run, _ in rounds),
        "errors": sum(run.errors for run, _ in rounds),
        **_ms(ok),
        "achieved_rps": min(f["achieved_rps"] for _, f in rounds),
        "client_lag_p99_ms": max(f["client_lag_p99_ms"] for _, f in rounds),
        "connections_used": max(f["connections_used"] for _, f in rounds),
        "cpu_ms_per_request": sum(f["cpu_ms_per_request"] for _, f in rounds) / len(rounds),
        "rounds": [f for _, f in rounds],
    }


def _count(options: LatencyOptions, rate: float) -> int:
    return max(1, round(rate * options.seconds))


def _epoch(at: datetime) -> float:
    # jobline and the baseline store naive UTC; PostgreSQL's timestamptz comes back aware.
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class StartedTimes:
    """Where each target stores when a job started: `times(ids)` maps job id to epoch."""

    def __init__(self, scratch: Scratch, peer_db: peer.PeerDatabase) -> None:
        self.scratch = scratch
        self.peer_db = peer_db

    def times(self, target: str, ids: list[str]) -> dict[str, float]:
        """The start time of each job of `ids` that has started so far."""
        from bench.baseline.celery_app import TABLE

        found: dict[str, float] = {}
        for chunk in (ids[i : i + 1000] for i in range(0, len(ids), 1000)):
            if target == "procrastinate":
                rows = self.peer_db.query(
                    "SELECT job_id, at FROM procrastinate_events"
                    " WHERE type = 'started' AND job_id = ANY(%s)",
                    ([int(i) for i in chunk],),
                )
            else:
                marks = ",".join(["%s"] * len(chunk))
                sql = (
                    f"SELECT job_id, at FROM job_events WHERE type = 'started' AND job_id IN ({marks})"
                    if target == "jobline"
                    else f"SELECT id, created_at FROM {TABLE} WHERE id IN ({marks})"
                )
                rows = self.scratch.query(sql, chunk)
            found.update({str(job_id): _epoch(at) for job_id, at in rows})
        return found

    def wait(self, target: str, sent: list[Sent], timeout: float) -> dict[str, float]:
        """Start times of every job in `sent`, once all have started (or `timeout` passed)."""
        ids = [s.job_id for s in sent]
        deadline = time.monotonic() + timeout
        found = self.times(target, ids)
        while len(found) < len(ids) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            found.update(self.times(target, [i for i in ids if i not in found]))
        return found


def run(options: LatencyOptions, logdir: Path) -> dict[str, Any]:
    """Run both parts of the latency benchmark; returns its figures (see `summary`)."""
    from bench.baseline.celery_app import QUEUE as BASELINE_QUEUE

    scratch = Scratch.create()
    peer_db: peer.PeerDatabase | None = None
    servers: dict[str, Server] = {}
    procs: list[Proc] = []
    try:
        peer_db = peer.PeerDatabase.create()
        env = jobline_env(scratch, logdir, purges_queue=True)
        email = prepare_jobline(env)
        submit_bench.start_servers(scratch, peer_db, env, logdir, servers)
        token = login(servers["jobline"].base, email)
        queues = {"publish": BASELINE_QUEUE, "insert": BASELINE_QUEUE, "jobline": "bench"}

        def offer(target: str, rate: float, count: int) -> tuple[OpenLoopResult, dict[str, Any]]:
            cpu = cpu_seconds([servers[target].pid])
            run = run_open_loop(
                servers[target].base, token if target == "jobline" else None, NOOP_BODY, rate, count
            )
            return run, _round_figures(run, cpu_seconds([servers[target].pid]) - cpu)

        # Part 1: submit alone, no worker running (as in `submit`).
        time.sleep(IDLE_SETTLE_SECONDS)
        for target in SUBMIT_TARGETS:
            offer(target, options.submit_rate, round(options.submit_rate * options.warmup_seconds))
        submit_rounds: dict[str, list[tuple[OpenLoopResult, dict[str, Any]]]] = {
            t: [] for t in SUBMIT_TARGETS
        }
        for index in range(options.rounds):
            order: tuple[str, ...] = SUBMIT_TARGETS if index % 2 == 0 else SUBMIT_TARGETS[::-1]
            for target in order:
                measured = offer(target, options.submit_rate, _count(options, options.submit_rate))
                submit_rounds[target].append(measured)
                _print("submit", target, index, options.submit_rate, measured[1])
        # Nobody was to run part 1's jobs: its messages go, and the peer's waiting rows
        # (its events with them), or its workers would start on them below.
        for queue in set(queues.values()):
            scratch.purge(queue)
        peer_db.query("DELETE FROM procrastinate_jobs WHERE status = 'todo' RETURNING id")

        # Part 2: submit to `started`, each target's workers running.
        pool, concurrency, prefetch = _worker_settings()
        jobline_worker = start_jobline_worker(env, logdir)
        procs.append(jobline_worker)
        procs.append(start_baseline_worker(env, logdir, pool, concurrency, prefetch))
        procs.extend(peer.start_workers(peer_db, logdir))
        wait_consuming(scratch, "bench")
        wait_consuming(scratch, BASELINE_QUEUE)
        time.sleep(IDLE_SETTLE_SECONDS)
        starts = StartedTimes(scratch, peer_db)
        # Warm each worker (its first jobs open connections, import, fill caches).
        for target in STARTED_TARGETS:
            run, _ = offer(target, options.started_rate, max(1, round(options.started_rate)))
            starts.wait(target, run.ok, options.started_timeout_seconds)
        started_rounds: dict[str, list[dict[str, Any]]] = {t: [] for t in STARTED_TARGETS}
        for index in range(options.rounds):
            order = STARTED_TARGETS if index % 2 == 0 else STARTED_TARGETS[::-1]
            for target in order:
                run, figures = offer(
                    target, options.started_rate, _count(options, options.started_rate)
                )
                found = starts.wait(target, run.ok, options.started_timeout_seconds)
                to_started = [found[s.job_id] - s.scheduled for s in run.ok if s.job_id in found]
                figures = {
                    **figures,
                    "started": len(to_started),
                    "not_started": len(run.ok) - len(to_started),
                    "to_started": to_started,
                    **{f"started_{k}": v for k, v in _ms(to_started).items()},
                }
                started_rounds[target].append(figures)
                _print("started", target, index, options.started_rate, figures)
        worker_pids = tree(jobline_worker.popen.pid)
    finally:
        for proc in procs:
            proc.stop()
        for server in servers.values():
            server.stop()
        if peer_db is not None:
            peer_db.drop()
        scratch.drop()
    return summary(options, submit_rounds, started_rounds, len(worker_pids))


def _worker_settings() -> tuple[str, int, int]:
    from bench.e2e import _worker_settings as settings

    return settings()


def _print(part: str, target: str, index: int, rate: float, f: dict[str, Any]) -> None:
    extra = (
        f", to started p50 {f['started_p50_ms']:.1f} p99 {f['started_p99_ms']:.1f} ms"
        f" ({f['not_started']} not started)"
        if part == "started"
        else ""
    )
    print(
        f"  latency {part:7} {target:13} round {index + 1}: {rate:.0f}/s offered, "
        f"{f['achieved_rps']:.0f}/s answered, submit p50 {f['p50_ms']:.1f} p99 {f['p99_ms']:.1f}"
        f" ms, {f['errors']} errors, client lag p99 {f['client_lag_p99_ms']:.1f} ms{extra}",
        flush=True,
    )


def summary(
    options: LatencyOptions,
    submit_rounds: dict[str, list[tuple[OpenLoopResult, dict[str, Any]]]],
    started_rounds: dict[str, list[dict[str, Any]]],
    jobline_worker_processes: int,
) -> dict[str, Any]:
    """Pooled percentiles per target, jobline's ratios to each other target, the verdicts.

    Ratios are jobline's latency over the other's (below 1: jobline is faster).
    """
    submit_figures = {t: _pooled(rounds) for t, rounds in submit_rounds.items()}
    started_figures: dict[str, Any] = {}
    for target, rounds in started_rounds.items():
        pooled = [v for f in rounds for v in f["to_started"]]
        started_figures[target] = {
            "jobs": sum(f["requests"] for f in rounds),
            "errors": sum(f["errors"] for f in rounds),
            "started": len(pooled),
            "not_started": sum(f["not_started"] for f in rounds),
            **_ms(pooled),
            "submit_p99_ms": max(f["p99_ms"] for f in rounds),
            "client_lag_p99_ms": max(f["client_lag_p99_ms"] for f in rounds),
            "rounds": [{k: v for k, v in f.items() if k != "to_started"} for f in rounds],
        }
    j_submit, j_started = submit_figures["jobline"], started_figures["jobline"]
    jobline_vs = {
        "submit": {
            other: {
                "p50": ratio(j_submit["p50_ms"], submit_figures[other]["p50_ms"]),
                "p99": ratio(j_submit["p99_ms"], submit_figures[other]["p99_ms"]),
            }
            for other in SUBMIT_TARGETS
            if other != "jobline"
        },
        "started": {
            other: {
                "p50": ratio(j_started["p50_ms"], started_figures[other]["p50_ms"]),
                "p99": ratio(j_started["p99_ms"], started_figures[other]["p99_ms"]),
            }
            for other in STARTED_TARGETS
            if other != "jobline"
        },
    }
    # A target counts as met only if every request was answered and every job started.
    whole_submit = j_submit["errors"] == 0
    whole_started = j_started["errors"] == 0 and j_started["not_started"] == 0
    targets = {
        "submit_p99_ms": _verdict(j_submit["p99_ms"], TARGET_SUBMIT_P99_MS, whole_submit),
        "started_p50_ms": _verdict(j_started["p50_ms"], TARGET_STARTED_P50_MS, whole_started),
        "started_p99_ms": _verdict(j_started["p99_ms"], TARGET_STARTED_P99_MS, whole_started),
    }
    return {
        "options": {
            "submit_rate": options.submit_rate,
            "started_rate": options.started_rate,
            "seconds": options.seconds,
            "rounds": options.rounds,
            "jobline_worker_processes": jobline_worker_processes,
        },
        "submit": submit_figures,
        "started": started_figures,
        "jobline_vs": jobline_vs,
        "targets": targets,
    }


def _verdict(value: float, limit: float, whole: bool) -> dict[str, Any]:
    return {"value": value, "limit": limit, "met": bool(whole and value <= limit)}


def table(result: dict[str, Any]) -> list[str]:
    """The printed tables of a latency result: both parts, ratios and verdicts."""
    o = result["options"]
    lines = [
        f"submit at {o['submit_rate']:.0f} req/s offered (open loop, {o['seconds']:.0f} s x "
        f"{o['rounds']} rounds; latency from each request's scheduled time)",
        f"{'target':13} {'answered/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'errors':>6} {'conns':>5} {'lag p99':>7}",
    ]
    for target, f in result["submit"].items():
        lines.append(
            f"{target:13} {f['achieved_rps']:10.0f} {f['p50_ms']:8.1f} {f['p95_ms']:8.1f} "
            f"{f['p99_ms']:8.1f} {f['max_ms']:8.1f} {f['errors']:6} {f['connections_used']:5} "
            f"{f['client_lag_p99_ms']:7.1f}"
        )
    lines += [
        "",
        f"submit to started at {o['started_rate']:.0f} jobs/s offered (workers running)",
        f"{'target':13} {'jobs':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'not started':>11} {'submit p99':>10}",
    ]
    for target, f in result["started"].items():
        lines.append(
            f"{target:13} {f['jobs']:6} {f['p50_ms']:8.1f} {f['p95_ms']:8.1f} {f['p99_ms']:8.1f} "
            f"{f['max_ms']:8.1f} {f['not_started']:11} {f['submit_p99_ms']:10.1f}"
        )
    lines.append("")
    for part, by_other in result["jobline_vs"].items():
        for other, r in by_other.items():
            lines.append(f"jobline/{other} {part}: p50 x{r['p50']:.2f}, p99 x{r['p99']:.2f}")
    for name, v in result["targets"].items():
        lines.append(
            f"target jobline {name} <= {v['limit']:.0f}: {v['value']:.1f} - "
            f"{'met' if v['met'] else 'MISSED'}"
        )
    return lines
