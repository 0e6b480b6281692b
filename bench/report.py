"""Markdown tables of a results JSON, for bench/README.md's Performance section.

.venv/bin/python -m bench.report bench/results/full-run.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def submit(result: dict[str, Any]) -> list[str]:
    lines = [
        _row(
            "clients",
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "API CPU ms/req",
            "x publish",
        ),
        _row(*["---"] * 8),
    ]
    ratios = result.get("jobline_vs", {})
    for clients, by_target in result["by_connections"].items():
        for target, f in by_target.items():
            lines.append(
                _row(
                    clients,
                    target,
                    f"{f['rps']:.0f}",
                    f"{f['p50_ms']:.1f}",
                    f"{f['p99_ms']:.1f}",
                    f"{f['errors']} ({f['timeouts']} timeouts)",
                    f"{f['cpu_ms_per_request']:.3f}",
                    f"{f['rps_vs_publish']:.2f}",
                )
            )
    if ratios:
        others = list(next(iter(ratios.values())))
        lines += [
            "",
            _row("clients", *(f"jobline / {other}: req/s, p99" for other in others)),
            _row(*["---"] * (len(others) + 1)),
        ]
        for clients, by_other in ratios.items():
            lines.append(
                _row(
                    clients,
                    *(f"**x{by_other[o]['rps']:.2f}**, x{by_other[o]['p99']:.2f}" for o in others),
                )
            )
    return lines


def e2e(result: dict[str, Any]) -> list[str]:
    lines = [
        _row(
            "target",
            "jobs/s",
            "worker CPU ms/job",
            "of it, Celery main",
            "API CPU ms/job",
            "events/job",
            "history",
        ),
        _row(*["---"] * 7),
    ]
    targets = [t for t in ("jobline", "baseline", "procrastinate") if t in result]
    for target in targets:
        f = result[target]
        celery = target != "procrastinate"
        lines.append(
            _row(
                target,
                f"{f['jobs_per_second']:.0f}",
                f"{f['worker_cpu_ms_per_job']:.2f}",
                f"{f.get('worker_main_cpu_ms_per_job', float('nan')):.2f}" if celery else "-",
                f"{f['api_cpu_ms_per_job']:.2f}" if target != "baseline" else "-",
                f.get("events_per_job", ""),
                "full" if f["history_complete"] else "MISSING",
            )
        )
    lines.append("")
    worker = result["worker"]
    ratios = result.get("jobline_vs") or {
        "baseline": {
            "jobs_per_second": result["ratio_jobs_per_second"],
            "worker_cpu_per_job": result["ratio_worker_cpu_per_job"],
        }
    }
    lines.append(
        "; ".join(
            f"jobline / {other}: jobs/s **x{r['jobs_per_second']:.2f}**, "
            f"worker CPU per job x{r['worker_cpu_per_job']:.2f}"
            for other, r in ratios.items()
        )
        + f" ({result['options']['jobs']} jobs, {result['options']['rounds']} rounds each; "
        f"Celery: {worker['pool']} pool, concurrency {worker['concurrency']}, "
        f"prefetch {worker['prefetch']}"
        + (
            f"; procrastinate: {worker['procrastinate_processes']} worker processes at "
            f"concurrency {worker['procrastinate_concurrency']})"
            if "procrastinate_processes" in worker
            else ")"
        )
    )
    return lines


def latency(result: dict[str, Any]) -> list[str]:
    o = result["options"]
    lines = [
        f"Submit at {o['submit_rate']:.0f} req/s offered (open loop; latency from each "
        f"request's scheduled time; {o['seconds']:.0f} s x {o['rounds']} rounds, no worker):",
        "",
        _row("target", "answered/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "conns"),
        _row(*["---"] * 8),
    ]
    for target, f in result["submit"].items():
        lines.append(
            _row(
                target,
                f"{f['achieved_rps']:.0f}",
                f"{f['p50_ms']:.1f}",
                f"{f['p95_ms']:.1f}",
                f"{f['p99_ms']:.1f}",
                f"{f['max_ms']:.1f}",
                f["errors"],
                f["connections_used"],
            )
        )
    lines += [
        "",
        f"Submit to `started` at {o['started_rate']:.0f} jobs/s offered (workers running):",
        "",
        _row("target", "jobs", "p50 ms", "p95 ms", "p99 ms", "max ms", "not started"),
        _row(*["---"] * 7),
    ]
    for target, f in result["started"].items():
        lines.append(
            _row(
                target,
                f["jobs"],
                f"{f['p50_ms']:.1f}",
                f"{f['p95_ms']:.1f}",
                f"{f['p99_ms']:.1f}",
                f"{f['max_ms']:.1f}",
                f["not_started"],
            )
        )
    lines.append("")
    for part, by_other in result["jobline_vs"].items():
        lines.append(
            f"jobline / other, {part}: "
            + "; ".join(
                f"{other} p50 x{r['p50']:.2f}, p99 **x{r['p99']:.2f}**"
                for other, r in by_other.items()
            )
        )
    lines.append("")
    for name, v in result["targets"].items():
        verdict = "met" if v["met"] else "missed"
        lines.append(f"Target {name} <= {v['limit']:.0f}: {v['value']:.1f} - **{verdict}**")
    return lines


def history(result: dict[str, Any]) -> list[str]:
    lines = [
        _row("listing", "depth", "p50 ms", "p95 ms", "p99 ms", "p95 / first page"),
        _row(*["---"] * 6),
    ]
    ratios = {(r["listing"], r["depth"]): r["p95_vs_first"] for r in result["deep_vs_first"]}
    for row in result["api"]:
        lines.append(
            _row(
                row["listing"],
                f"{row['depth']:,}",
                f"{row['p50_ms']:.2f}",
                f"{row['p95_ms']:.2f}",
                f"{row['p99_ms']:.2f}",
                f"{ratios[row['listing'], row['depth']]:.2f}",
            )
        )
    ev = result["events"]
    for name, key in (("events, first page", "first_page"), ("events, after_seq", "after_seq")):
        lines.append(
            _row(
                name,
                "",
                f"{ev[key]['p50_ms']:.2f}",
                f"{ev[key]['p95_ms']:.2f}",
                f"{ev[key]['p99_ms']:.2f}",
                "",
            )
        )
    lines += [
        "",
        _row("depth", "keyset p50 ms", "OFFSET p50 ms", "OFFSET / keyset"),
        _row(*["---"] * 4),
    ]
    for row in result["sql"]:
        lines.append(
            _row(
                f"{row['depth']:,}",
                f"{row['keyset']['p50_ms']:.2f}",
                f"{row['offset']['p50_ms']:.2f}",
                f"{row['offset_vs_keyset_p50']:.0f}",
            )
        )
    lines += ["", _row("query", "index", "rows read", "pages", "time ms"), _row(*["---"] * 5)]
    for name, plan in result["plans"].items():
        s = plan["summary"]
        rows = (
            f"{s['rows_read']:.0f}" if isinstance(s["rows_read"], (int, float)) else s["rows_read"]
        )
        time_ms = f"{s['time_ms']:.2f}" if isinstance(s["time_ms"], (int, float)) else s["time_ms"]
        lines.append(_row(name, s["index"], rows, s.get("pages"), time_ms))
    seed = result["seed"]
    lines += [
        "",
        f"Seeded {seed['jobs']:,} jobs and {seed['events']:,} events"
        + (
            f" in {seed['wall_seconds']:.0f} s wall (LOAD DATA: jobs {seed['jobs_seconds']:.0f} s, "
            f"events {seed['events_seconds']:.0f} s; the rest is generating the rows in Python)."
            if "wall_seconds" in seed
            else " (reused from an earlier seed)."
        ),
    ]
    return lines


def memory(result: dict[str, Any]) -> list[str]:
    lines = [_row("process", "idle RSS MB", "peak RSS MB (under load)"), _row(*["---"] * 3)]
    for target, rss in result["api"].items():
        lines.append(_row(f"API, {target}", f"{rss['idle']:.0f}", f"{rss['peak']:.0f} (submit)"))
    labels = {"main": "main process", "child": "pool child", "process": "one worker process"}
    for target, rss in result["worker"].items():
        for part in rss["idle"]:
            label = labels.get(part, part)
            lines.append(
                _row(
                    f"worker {target}, {label}",
                    f"{rss['idle'][part]:.0f}",
                    f"{rss['peak'][part]:.0f} (e2e)",
                )
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    report = json.loads(Path(args[0]).read_text())
    results = report["results"]
    out: list[str] = [f"Machine: {report['machine']}", ""]
    for name, render in (
        ("submit", submit),
        ("e2e", e2e),
        ("latency", latency),
        ("history", history),
        ("memory", memory),
    ):
        if name in results:
            load = report["load_average"][name]["before"]
            out += [
                f"### {name} (load average before: {load[0]:.2f})",
                "",
                *render(results[name]),
                "",
            ]
    for name in ("worker", "sse", "audit"):
        if name in results:
            out += [f"### {name}", "", "```", results[name]["output"].strip(), "```", ""]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
