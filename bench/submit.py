"""Submit: POST /api/v1/jobs under wrk, jobline against two hand-written baselines and a peer.

- `publish`: a FastAPI endpoint that only calls apply_async (no storage, no auth);
- `insert`:  one that INSERTs the row with aiomysql, then calls apply_async;
- `procrastinate`: the durable peer, FastAPI deferring a Procrastinate task (one
  transactional INSERT into PostgreSQL with its `deferred` event; bench/peer/);
- `jobline`: POST /api/v1/jobs, authenticated, stored with its event and outbox row.

Each is one uvicorn worker (uvloop, httptools, no access log), all four up at once and
measured in turn, the order alternating per round; figures are the median of the rounds.
The same run samples the API processes' RSS, idle and at their peak under load.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    PeakRss,
    PySpy,
    Scratch,
    Server,
    WrkResult,
    cpu_seconds,
    jobline_env,
    login,
    median,
    prepare_jobline,
    ratio,
    rss_mb,
    run_wrk,
    start_jobline_api,
    start_uvicorn,
)
from bench.peer import stack as peer

TARGETS = ("publish", "insert", "procrastinate", "jobline")
# What jobline's figures are divided by, in the ratios of the summary.
BASELINES = ("publish", "insert", "procrastinate")
JOBLINE_QUEUE = "bench"
IDLE_SETTLE_SECONDS = 2.0
WARMUP_CONNECTIONS = 20


@dataclass(frozen=True)
class SubmitOptions:
    connections: tuple[int, ...] = (50, 200)
    seconds: float = 10.0
    rounds: int = 3
    warmup_seconds: float = 3.0
    # py-spy records jobline's API during one more run at the largest connection count,
    # its folded stacks written here.
    profile: Path | None = None


def start_servers(
    scratch: Scratch,
    peer_db: peer.PeerDatabase,
    env: dict[str, str],
    logdir: Path,
    servers: dict[str, Server],
) -> None:
    """Start every target's API into `servers` (filled as they start: the caller stops them)."""
    from bench.baseline.celery_app import DDL

    scratch.query(DDL)
    servers["procrastinate"] = peer.start_api(peer_db, logdir)
    for mode in ("publish", "insert"):
        servers[mode] = start_uvicorn(
            f"baseline-{mode}",
            "bench.baseline.submit_app:app",
            {**env, "BENCH_BASELINE": mode},
            logdir,
        )
    servers["jobline"] = start_jobline_api(env, logdir)


def run(options: SubmitOptions, logdir: Path) -> dict[str, Any]:
    """Run the submit benchmark; returns its figures (see `summary`)."""
    from bench.baseline.celery_app import QUEUE as BASELINE_QUEUE

    scratch = Scratch.create()
    peer_db: peer.PeerDatabase | None = None
    servers: dict[str, Server] = {}
    try:
        peer_db = peer.PeerDatabase.create()
        env = jobline_env(scratch, logdir, purges_queue=True)
        email = prepare_jobline(env)
        start_servers(scratch, peer_db, env, logdir, servers)
        token = login(servers["jobline"].base, email)
        # Messages nobody consumes, emptied after each run; the peer's are rows in its table.
        queues = {"publish": BASELINE_QUEUE, "insert": BASELINE_QUEUE, "jobline": JOBLINE_QUEUE}

        def wrk(target: str, connections: int, seconds: float) -> WrkResult:
            cpu = cpu_seconds([servers[target].pid])
            result = run_wrk(
                servers[target].base,
                connections,
                seconds,
                token=token if target == "jobline" else None,
            )
            result.cpu_ms_per_request = (
                (cpu_seconds([servers[target].pid]) - cpu) * 1000 / max(result.requests, 1)
            )
            if target in queues:
                scratch.purge(queues[target])
            return result

        time.sleep(IDLE_SETTLE_SECONDS)
        idle_rss = {t: rss_mb(servers[t].pid) for t in TARGETS}
        for target in TARGETS:
            wrk(target, WARMUP_CONNECTIONS, options.warmup_seconds)
        runs: dict[str, dict[int, list[WrkResult]]] = {t: {} for t in TARGETS}
        with PeakRss([servers[t].pid for t in TARGETS]) as peak:
            for connections in options.connections:
                for round_ in range(options.rounds):
                    order = TARGETS if round_ % 2 == 0 else TARGETS[::-1]
                    for target in order:
                        result = wrk(target, connections, options.seconds)
                        runs[target].setdefault(connections, []).append(result)
                        print(
                            f"  submit {target:13} c={connections:<4} round {round_ + 1}: "
                            f"{result.rps:8.0f} req/s  p50 {result.p50_ms:6.1f} ms  "
                            f"p99 {result.p99_ms:7.1f} ms  errors {result.errors}",
                            flush=True,
                        )
        peak_rss = {t: peak.peak[servers[t].pid] for t in TARGETS}
        profile = None
        if options.profile is not None:
            profile = record_profile(
                servers["jobline"], token, max(options.connections), options, scratch
            )
        jobs_stored = {
            "jobline": scratch.query("SELECT COUNT(*) FROM jobs")[0][0],
            "procrastinate": peer_db.query("SELECT COUNT(*) FROM procrastinate_jobs")[0][0],
        }
    finally:
        for server in servers.values():
            server.stop()
        if peer_db is not None:
            peer_db.drop()
        scratch.drop()
    return summary(runs, idle_rss, peak_rss, options, jobs_stored, profile)


def record_profile(
    server: Server, token: str, connections: int, options: SubmitOptions, scratch: Scratch
) -> dict[str, Any] | None:
    """py-spy of jobline's API during one more wrk run; where its CPU went."""
    assert options.profile is not None
    spy = PySpy(server.pid, options.seconds, options.profile)
    run_wrk(server.base, connections, options.seconds, token=token)
    scratch.purge(JOBLINE_QUEUE)
    profile = spy.result()
    return profile.as_dict() if profile is not None else None


def summary(
    runs: dict[str, dict[int, list[WrkResult]]],
    idle_rss: dict[str, float],
    peak_rss: dict[str, float],
    options: SubmitOptions,
    jobs_stored: dict[str, int],
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    """Medians over rounds per target and connection count, and jobline's ratios to the others.

    `rps_vs_publish` of each target is its req/s over `publish`'s; `jobline_vs[other]` holds
    jobline's req/s over the other's (`rps`, above 1 is faster) and its p99 over the other's
    (`p99`, below 1 is better), for each baseline and the peer.
    """
    figures: dict[str, Any] = {}
    for target, by_connections in runs.items():
        for connections, results in by_connections.items():
            figures.setdefault(str(connections), {})[target] = {
                "rps": median([r.rps for r in results]),
                "p50_ms": median([r.p50_ms for r in results]),
                "p90_ms": median([r.p90_ms for r in results]),
                "p99_ms": median([r.p99_ms for r in results]),
                "max_ms": max(r.max_ms for r in results),
                "errors": sum(r.errors for r in results),
                "timeouts": sum(r.timeouts for r in results),
                "requests": sum(r.requests for r in results),
                "cpu_ms_per_request": median([r.cpu_ms_per_request for r in results]),
                # The median round's full curve, for the plot.
                "percentiles_ms": sorted(results, key=lambda r: r.rps)[
                    len(results) // 2
                ].percentiles_ms,
                "rounds": [r.as_dict() for r in results],
            }
    jobline_vs: dict[str, dict[str, dict[str, float]]] = {}
    for clients, by_target in figures.items():
        base = by_target["publish"]
        for target in TARGETS:
            by_target[target]["rps_vs_publish"] = ratio(by_target[target]["rps"], base["rps"])
            by_target[target]["p99_vs_publish"] = ratio(by_target[target]["p99_ms"], base["p99_ms"])
        jobline = by_target["jobline"]
        jobline_vs[clients] = {
            other: {
                "rps": ratio(jobline["rps"], by_target[other]["rps"]),
                "p99": ratio(jobline["p99_ms"], by_target[other]["p99_ms"]),
                "cpu_per_request": ratio(
                    jobline["cpu_ms_per_request"], by_target[other]["cpu_ms_per_request"]
                ),
            }
            for other in BASELINES
        }
    return {
        "options": {
            "connections": list(options.connections),
            "seconds": options.seconds,
            "rounds": options.rounds,
        },
        "by_connections": figures,
        "jobline_vs": jobline_vs,
        "rss_mb": {t: {"idle": idle_rss[t], "peak": peak_rss[t]} for t in TARGETS},
        "jobline_jobs_stored": jobs_stored["jobline"],
        "procrastinate_jobs_stored": jobs_stored["procrastinate"],
        "profile": profile,
    }


def table(result: dict[str, Any]) -> list[str]:
    """The printed table of a submit result."""
    lines = [
        f"{'clients':>7} {'target':13} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'CPU ms/req':>10} {'x publish':>9}"
    ]
    for connections, by_target in result["by_connections"].items():
        for target in TARGETS:
            f = by_target[target]
            lines.append(
                f"{connections:>7} {target:13} {f['rps']:8.0f} {f['p50_ms']:8.1f} "
                f"{f['p99_ms']:8.1f} {f['errors']:>7} {f['cpu_ms_per_request']:10.3f} "
                f"{f['rps_vs_publish']:9.2f}"
            )
    for connections, by_other in result["jobline_vs"].items():
        lines.append(
            f"jobline at {connections} clients: "
            + ", ".join(
                f"x{r['rps']:.2f} req/s and p99 x{r['p99']:.2f} of {other}"
                for other, r in by_other.items()
            )
        )
    return lines
