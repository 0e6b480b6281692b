"""The README's figure, from a results JSON of `python -m bench` (which draws it too).

    .venv/bin/python -m bench.plot bench/results/full-run.json [bench/results/full-run.png]

Top left: submit latency by percentile, each target at each client count (wrk's curve of
the median round). Top right: end to end, jobs per second of each target (jobline, Celery
+ one INSERT, FastAPI + Procrastinate) and their worker CPU per job. Bottom left: open
loop, submit latency at a fixed offered rate and submit to `started`, p50 and p99 per
target. Bottom right: time of one page against its depth, keyset cursor against OFFSET
(straight from MariaDB), and jobline's GET /api/v1/jobs through the API. A panel whose
benchmark is not in the results stays empty.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

COLORS = {
    "publish": "tab:gray",
    "insert": "tab:orange",
    "baseline": "tab:orange",
    "procrastinate": "tab:purple",
    "jobline": "tab:blue",
}
LABELS = {
    "publish": "Celery apply_async only",
    "insert": "Celery + one INSERT",
    "baseline": "Celery + one INSERT",
    "procrastinate": "FastAPI + Procrastinate (peer)",
    "jobline": "jobline",
}
STYLES = {"50": "-", "200": "--"}
DPI = 110


def plot(report: dict[str, Any], out: Path) -> Path:
    results = report["results"]
    fig, ((left, e2e_axis), (latency_axis, right)) = plt.subplots(2, 2, figsize=(12, 9.2))
    _end_to_end(e2e_axis, results.get("e2e"))
    _open_loop(latency_axis, results.get("latency"))
    submit = results.get("submit")
    if not submit or "error" in submit:
        left.set_axis_off()
    else:
        for clients, by_target in submit["by_connections"].items():
            for target, figures in by_target.items():
                points = figures["percentiles_ms"]
                left.plot(
                    [q / 100 for q, _ in points],
                    [ms for _, ms in points],
                    STYLES.get(clients, ":"),
                    color=COLORS.get(target),
                    marker="o",
                    markersize=3,
                    label=f"{target}, {clients} clients ({figures['rps']:.0f} req/s)",
                )
        left.set_xscale("logit")
        left.set_yscale("log")
        left.set_xlabel("percentile")
        left.set_ylabel("latency (ms)")
        left.set_title("POST /api/v1/jobs under wrk, one uvicorn worker")
        left.grid(True, which="both", alpha=0.3)
        left.legend(fontsize=7)
    history = results.get("history")
    if not history or "error" in history:
        right.set_axis_off()
    else:
        sql = history["sql"]
        depths = [max(row["depth"], 1) for row in sql]
        right.plot(
            depths,
            [row["offset"]["p50_ms"] for row in sql],
            "o-",
            color="tab:red",
            label="LIMIT 50 OFFSET depth (SQL)",
        )
        right.plot(
            depths,
            [row["keyset"]["p50_ms"] for row in sql],
            "o-",
            color="tab:green",
            label="keyset (created_at, id) < cursor (SQL)",
        )
        api = [row for row in history["api"] if row["listing"] == "owner"]
        right.plot(
            [max(row["depth"], 1) for row in api],
            [row["p50_ms"] for row in api],
            "s--",
            color="tab:blue",
            label="GET /api/v1/jobs, keyset (HTTP, p50)",
        )
        right.plot(
            [max(row["depth"], 1) for row in api],
            [row["p95_ms"] for row in api],
            "s:",
            color="tab:blue",
            alpha=0.6,
            label="GET /api/v1/jobs, keyset (HTTP, p95)",
        )
        jobs = history["seed"].get("jobs", 0)
        events = history["seed"].get("events", 0)
        right.set_xscale("log")
        right.set_yscale("log")
        right.set_xlabel("depth of the page (rows before it; 0 shown at 1)")
        right.set_ylabel("time of one page of 50 (ms, p50)")
        right.set_title(f"one owner's jobs, {jobs:,} jobs / {events:,} events")
        right.grid(True, which="both", alpha=0.3)
        right.legend(fontsize=7)
    machine = report.get("machine", {})
    fig.suptitle(
        f"jobline benchmarks - {machine.get('cores')} cores ({machine.get('cpu')}), "
        f"MariaDB {machine.get('mariadb', '?')}, RabbitMQ {machine.get('rabbitmq', '?')}",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def _end_to_end(axis: Any, e2e: dict[str, Any] | None) -> None:
    """Jobs per second of each target (bars), its worker CPU per job in the label."""
    if not e2e or "error" in e2e:
        axis.set_axis_off()
        return
    targets = [t for t in ("jobline", "baseline", "procrastinate") if t in e2e]
    rates = [e2e[t]["jobs_per_second"] for t in targets]
    bars = axis.bar(
        [f"{LABELS[t]}\n{_history(e2e[t])}" for t in targets],
        rates,
        color=[COLORS[t] for t in targets],
    )
    for bar, target in zip(bars, targets, strict=True):
        axis.annotate(
            f"{e2e[target]['jobs_per_second']:.0f} jobs/s\n"
            f"worker {e2e[target]['worker_cpu_ms_per_job']:.2f} ms CPU/job",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    axis.set_ylim(0, max(rates) * 1.25)
    axis.set_ylabel("jobs/s, first POST to last succeeded")
    jobs = e2e.get("options", {}).get("jobs", "?")
    axis.set_title(f"end to end, {jobs} no-op jobs (mean of the rounds)")
    axis.tick_params(axis="x", labelsize=7)
    axis.grid(True, axis="y", alpha=0.3)


def _history(figures: dict[str, Any]) -> str:
    events = figures.get("events_per_job") or 0
    return f"{events} events/job" if events else "one row/job"


def _open_loop(axis: Any, latency: dict[str, Any] | None) -> None:
    """Open-loop latency: submit at the offered rate, and submit to `started`, p50/p99."""
    if not latency or "error" in latency:
        axis.set_axis_off()
        return
    options = latency["options"]
    groups = [
        (f"submit\n{options['submit_rate']:.0f} req/s", latency["submit"]),
        (f"to started\n{options['started_rate']:.0f} jobs/s", latency["started"]),
    ]
    targets = ["publish", "insert", "procrastinate", "jobline"]
    width = 0.8 / len(targets)
    for index, target in enumerate(targets):
        xs, p50s, p99s = [], [], []
        for group, (_, figures) in enumerate(groups):
            if target in figures:
                xs.append(group + (index - (len(targets) - 1) / 2) * width)
                p50s.append(figures[target]["p50_ms"])
                p99s.append(figures[target]["p99_ms"])
        axis.bar(xs, p99s, width, color=COLORS[target], alpha=0.35)
        axis.bar(xs, p50s, width, color=COLORS[target], label=LABELS[target])
    axis.set_xticks(range(len(groups)), [name for name, _ in groups])
    axis.set_yscale("log")
    axis.set_ylabel("ms from the scheduled send: p50 (solid), p99 (pale)")
    axis.set_title("open loop: latency at a fixed offered rate")
    axis.grid(True, axis="y", which="both", alpha=0.3)
    axis.legend(fontsize=7)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    source = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else source.with_suffix(".png")
    print(plot(json.loads(source.read_text()), out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
