"""The benchmarks' one entry point: each alone or all, a table of figures and ratios, JSON.

    .venv/bin/python -m bench                       # everything, full size (takes a while)
    .venv/bin/python -m bench submit e2e            # some of them
    .venv/bin/python -m bench --quick               # everything at a tiny size (the test runs it)
    .venv/bin/python -m bench submit e2e --profile  # + py-spy: where jobline's API and worker spend CPU

Benchmarks: submit, e2e, latency (bench/latency.py: open loop at a fixed offered rate,
submit and submit to `started`), worker (bench/worker_body.py: recording a job without Celery),
history, memory (from submit and e2e), sse (bench/sse_fanout, the streaming issue's),
audit (bench/audit_overhead, the operations issue's). Needs MariaDB, RabbitMQ and, for
the peer (FastAPI + Procrastinate, bench/peer/), PostgreSQL (deploy/local/services up) and
wrk; every run makes its own databases and vhost.
Results go to bench/results/<name>.json (--out), with the machine and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import e2e, history, latency, submit
from bench.common import REPO, load_average, machine
from bench.peer.stack import server_version

RESULTS = REPO / "bench" / "results"
ALL = ("submit", "e2e", "latency", "worker", "history", "memory", "sse", "audit")
EXTERNAL = {
    # The other issues' benchmarks, run as their authors wrote them.
    "sse": [sys.executable, str(REPO / "bench" / "sse_fanout" / "run.py")],
    "audit": [sys.executable, "-m", "bench.audit_overhead.run"],
    # Its own process: it runs a worker runtime (event loop thread, Tortoise) in-process.
    "worker": [sys.executable, "-m", "bench.worker_body"],
}
EXTERNAL_TIMEOUT_SECONDS = 3600


def _stop_on_sigterm() -> None:
    # A plain SIGTERM would skip the `finally` blocks that stop servers and drop databases.
    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def run_submit(quick: bool, logdir: Path, profile: Path | None) -> dict[str, Any]:
    options = (
        submit.SubmitOptions(seconds=2, rounds=1, warmup_seconds=1, profile=profile)
        if quick
        else submit.SubmitOptions(profile=profile)
    )
    return submit.run(options, logdir)


def run_e2e(quick: bool, logdir: Path, profile: Path | None) -> dict[str, Any]:
    options = (
        e2e.E2EOptions(jobs=100, rounds=1, timeout_seconds=120, profile=profile)
        if quick
        else e2e.E2EOptions(profile=profile)
    )
    return e2e.run(options, logdir)


def run_latency(quick: bool, logdir: Path) -> dict[str, Any]:
    options = latency.quick_options() if quick else latency.LatencyOptions()
    return latency.run(options, logdir)


def run_history(quick: bool, logdir: Path) -> dict[str, Any]:
    if not quick:
        return history.run(history.HistoryOptions(), logdir)
    options = history.quick_options()
    try:
        return history.run(options, logdir)
    finally:
        history.drop(options.database)


def memory(results: dict[str, Any]) -> dict[str, Any]:
    """RSS of one API process (idle, peak under submit) and one worker (idle, peak under e2e)."""
    api = results["submit"]["rss_mb"]
    workers = results["e2e"]["rss_mb"]
    return {
        "api": {target: api[target] for target in submit.TARGETS},
        "worker": workers,
    }


def run_external(name: str, quick: bool) -> dict[str, Any]:
    command = [*EXTERNAL[name], *(["--quick"] if quick else [])]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=EXTERNAL_TIMEOUT_SECONDS,
    )
    return {
        "command": " ".join(Path(c).name if c == sys.executable else c for c in command),
        "exit_code": done.returncode,
        "seconds": time.monotonic() - started,
        "output": done.stdout,
        "errors": done.stderr[-4000:] if done.returncode else "",
    }


def table_memory(result: dict[str, Any]) -> list[str]:
    lines = [f"{'process':28} {'idle MB':>8} {'peak MB':>8}"]
    for target, rss in result["api"].items():
        lines.append(f"{'API ' + target:28} {rss['idle']:8.1f} {rss['peak']:8.1f}")
    for target, rss in result["worker"].items():
        # Celery's: main process and pool child; the peer's: one of its worker processes.
        for part in rss["idle"]:
            lines.append(
                f"{f'worker {target} {part}':28} {rss['idle'][part]:8.1f} {rss['peak'][part]:8.1f}"
            )
    return lines


def table_external(result: dict[str, Any]) -> list[str]:
    lines = [f"$ {result['command']}  (exit {result['exit_code']}, {result['seconds']:.0f} s)"]
    # Their own summary: the last lines they print.
    lines.extend(line for line in result["output"].strip().splitlines()[-14:])
    return lines


TABLES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "submit": submit.table,
    "e2e": e2e.table,
    "latency": latency.table,
    "history": history.table,
    "memory": table_memory,
    "sse": table_external,
    "audit": table_external,
    "worker": table_external,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmarks", nargs="*", help=f"any of {', '.join(ALL)}; default: all")
    parser.add_argument("--quick", action="store_true", help="every benchmark at a tiny size")
    parser.add_argument("--out", type=Path, default=None, help="the JSON file to write")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy jobline's API (submit) and a worker (e2e)"
    )
    parser.add_argument("--logdir", type=Path, default=None, help="the processes' logs")
    args = parser.parse_args(argv)
    unknown = [b for b in args.benchmarks if b not in ALL]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(ALL)}")
    wanted = list(dict.fromkeys(args.benchmarks or ALL))
    if "memory" in wanted:
        # Memory is read during these two: run them first if asked for alone.
        for needed in ("submit", "e2e"):
            if needed not in wanted:
                wanted.insert(wanted.index("memory"), needed)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"run-{stamp}{'-quick' if args.quick else ''}"
    out = args.out or RESULTS / f"{name}.json"
    logdir = args.logdir or Path(f"/tmp/jobline-bench-{stamp}")
    profiles = {
        bench_name: RESULTS / f"{name}-{bench_name}-profile.folded.txt" if args.profile else None
        for bench_name in ("submit", "e2e")
    }
    _stop_on_sigterm()
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "command": " ".join(["python -m bench", *sys.argv[1:]]) if argv is None else "",
        "machine": {**machine(), "postgresql": server_version()},
        "results": {},
        "load_average": {},
    }
    print(f"machine: {report['machine']}")
    for bench_name in wanted:
        before = load_average()
        print(f"\n== {bench_name}  (load average {before[0]:.2f} {before[1]:.2f} {before[2]:.2f})")
        began = time.monotonic()
        try:
            if bench_name == "submit":
                result = run_submit(args.quick, logdir, profiles["submit"])
            elif bench_name == "e2e":
                result = run_e2e(args.quick, logdir, profiles["e2e"])
            elif bench_name == "latency":
                result = run_latency(args.quick, logdir)
            elif bench_name == "history":
                result = run_history(args.quick, logdir)
            elif bench_name == "memory":
                result = memory(report["results"])
            else:
                result = run_external(bench_name, args.quick)
        except Exception as exc:
            # The services are shared (fault tests restart them): one failed benchmark
            # leaves the others to run, and the run's exit status says it failed.
            traceback.print_exc()
            result = {"error": repr(exc)}
        result["seconds"] = time.monotonic() - began
        report["results"][bench_name] = result
        report["load_average"][bench_name] = {"before": before, "after": load_average()}
        print()
        if "error" in result:
            print(f"{bench_name} FAILED: {result['error']} (logs: {logdir})")
        else:
            print("\n".join(TABLES[bench_name](result)))
        # Written after each benchmark: a long run that fails late keeps what it measured.
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults: {out}")
    if not args.quick:
        print(f"figure: {draw(report, out.with_suffix('.png'))}")
    failed = [
        n for n, result in report["results"].items() if "error" in result or result.get("exit_code")
    ]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def draw(report: dict[str, Any], out: Path) -> str:
    """The README's figure of this run (bench/plot.py), beside its JSON."""
    try:
        from bench import plot
    except ImportError as exc:  # matplotlib comes with the dev extra
        return f"not drawn ({exc}); pip install matplotlib"
    return str(plot.plot(report, out))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
