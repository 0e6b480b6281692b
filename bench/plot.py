"""The README's figure, from a results JSON of `python -m bench`.

    .venv/bin/python -m bench.plot bench/results/full-run.json [bench/results/performance.png]

Left: submit latency by percentile, each target at each client count (wrk's curve of the
median round). Right: time of one page against its depth, keyset cursor against OFFSET
(straight from MariaDB), and jobline's GET /api/v1/jobs through the API.
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
    "procrastinate": "tab:purple",
    "jobline": "tab:blue",
}
STYLES = {"50": "-", "200": "--"}
DPI = 110


def plot(report: dict[str, Any], out: Path) -> Path:
    results = report["results"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    submit = results.get("submit")
    if submit:
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
    if history:
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__)
        return 2
    source = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else source.with_name("performance.png")
    print(plot(json.loads(source.read_text()), out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
