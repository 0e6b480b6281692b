"""Audit overhead: POST /jobs and GET /jobs/{id} throughput with the audit log on and off.

    .venv/bin/python -m bench.audit_overhead.run            # 5 rounds x 8 s per case
    .venv/bin/python -m bench.audit_overhead.run --quick    # 1 round x 2 s: a smoke run

Two API processes (one uvicorn worker each, the same code and database) differ only in
JOBLINE_AUDIT_ENABLED. wrk drives each case in turn, the order alternating per round so
neither side always runs on a warmer machine; a figure is the median over the rounds.
Prints requests/s on and off, the median of the per-round on/off ratios (target: on >=
0.95 x off), and the audit writer's own counters (rows written, records dropped) from
the audited server's /metrics. On a machine other work shares, look at the per-round
figures too: their spread says how much the ratio can be trusted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import (
    NOOP_BODY,
    WRK_LINE,
    Scratch,
    Server,
    cpu_seconds,
    jobline_env,
    login,
    median,
    prepare_jobline,
    ratio,
    start_jobline_api,
)

SCRIPT = Path(__file__).with_name("request.lua")
QUEUE = "bench"
TARGET_RATIO = 0.95


def wrk(
    server: Server, token: str, method: str, path: str, connections: int, seconds: float
) -> tuple[float, float]:
    """Requests/s of one wrk run and the API's CPU microseconds per request.

    A non-2xx answer fails the benchmark. CPU time is what the audit log really costs the
    API process (its writer runs on the same event loop); unlike requests/s, it hardly moves
    when other work slows the machine down.
    """
    env = {
        **os.environ,
        "BENCH_METHOD": method,
        "BENCH_PATH": path,
        "BENCH_BODY": NOOP_BODY,
        "BENCH_TOKEN": token,
    }
    cpu_before = cpu_seconds([server.pid])
    done = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(SCRIPT),
            server.base,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = WRK_LINE.search(done.stdout)
    if found is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(found.group(1))
    if raw["status"] or raw["other"]:
        raise RuntimeError(f"{method} {path}: {raw['status']} non-2xx, {raw['other']} errors")
    cpu_us = (cpu_seconds([server.pid]) - cpu_before) * 1e6
    return float(raw["requests"]) / (raw["duration_us"] / 1e6), cpu_us / max(1, raw["requests"])


def audit_counters(server: Server) -> dict[str, float]:
    text = httpx.get(f"{server.base}/metrics", timeout=10).text
    out = {"written": 0.0, "dropped": 0.0}
    for line in text.splitlines():
        if line.startswith("jobline_audit_written_total"):
            out["written"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("jobline_audit_dropped_total"):
            out["dropped"] += float(line.rsplit(" ", 1)[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per case")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.connections = 1, 2.0, 8

    scratch = Scratch.create("jobline_bench_audit")
    servers: dict[str, Server] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="jobline-audit-bench-") as tmp:
            logdir = Path(tmp)
            # No outbox relay in the API processes: one server's relay would publish the other
            # server's jobs and charge its CPU to the wrong side.
            base_env = jobline_env(scratch, logdir, JOBLINE_API_RELAY="false")
            email = prepare_jobline(base_env)
            for name, enabled in (("on", "true"), ("off", "false")):
                servers[name] = start_jobline_api(
                    {**base_env, "JOBLINE_AUDIT_ENABLED": enabled}, logdir / name
                )
            token = login(servers["on"].base, email)
            r = httpx.post(
                f"{servers['on'].base}/api/v1/jobs",
                content=NOOP_BODY,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=30,
            )
            r.raise_for_status()
            job_path = f"/api/v1/jobs/{r.json()['id']}"
            cases = {"POST /jobs": ("POST", "/api/v1/jobs"), "GET /jobs/{id}": ("GET", job_path)}
            rps: dict[tuple[str, str], list[float]] = {}
            cpu: dict[tuple[str, str], list[float]] = {}
            for round_no in range(args.rounds):
                order = ["on", "off"] if round_no % 2 == 0 else ["off", "on"]
                for case, (method, path) in cases.items():
                    for name in order:
                        value, cpu_us = wrk(
                            servers[name], token, method, path, args.connections, args.seconds
                        )
                        rps.setdefault((case, name), []).append(value)
                        cpu.setdefault((case, name), []).append(cpu_us)
                scratch.purge(QUEUE)  # nobody consumes the jobs: keep RabbitMQ small
            time.sleep(1.0)  # let the writer flush its last batch before reading its counters
            counters = audit_counters(servers["on"])
    finally:
        for server in servers.values():
            server.stop()
        try:
            scratch.drop()
        except Exception as exc:  # keep the run's own error, if any, in view
            print(f"warning: scratch {scratch.name} not dropped: {exc}", file=sys.stderr)

    print(
        f"audit overhead: {args.rounds} round(s) x {args.seconds:g} s, "
        f"{args.connections} connections, one uvicorn worker per side"
    )
    worst = float("inf")
    for case in cases:
        on, off = median(rps[(case, "on")]), median(rps[(case, "off")])
        # The ratio of each round's adjacent on/off runs, then their median: a slow spell
        # of the (shared) machine hits both runs of a round, not one side's median.
        r_on_off = median(
            [ratio(a, b) for a, b in zip(rps[(case, "on")], rps[(case, "off")], strict=True)]
        )
        worst = min(worst, r_on_off)
        print(
            f"  {case:<16} audit on {on:8.1f} req/s   off {off:8.1f} req/s   "
            f"on/off {r_on_off:.3f}  (cost {100 * (1 - r_on_off):+.1f}%)"
        )
        for name in ("on", "off"):
            print(f"      {name:>3} per round: " + " ".join(f"{v:.0f}" for v in rps[(case, name)]))
        cpu_on, cpu_off = median(cpu[(case, "on")]), median(cpu[(case, "off")])
        print(
            f"      API CPU per request: on {cpu_on:.0f} us, off {cpu_off:.0f} us, "
            f"on/off {ratio(cpu_on, cpu_off):.3f}"
        )
    print(
        f"  audit rows written {counters['written']:.0f}, dropped {counters['dropped']:.0f}; "
        f"target on/off >= {TARGET_RATIO}: {'met' if worst >= TARGET_RATIO else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
