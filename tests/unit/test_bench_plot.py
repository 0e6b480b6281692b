"""The README's figure is drawn from a run's own results, the peer in every panel it has.

Made-up figures: no service, no timing; what is checked is what the figure is drawn from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bench import plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _latency(p50: float) -> dict[str, Any]:
    return {"p50_ms": p50, "p99_ms": p50 * 3}


def report() -> dict[str, Any]:
    targets = ("publish", "insert", "procrastinate", "jobline")
    return {
        "machine": {"cores": 2, "cpu": "test"},
        "results": {
            "submit": {
                "by_connections": {
                    "50": {
                        t: {"rps": 1000.0, "percentiles_ms": [(50.0, 5.0), (99.0, 9.0)]}
                        for t in targets
                    }
                }
            },
            "e2e": {
                "options": {"jobs": 100},
                "jobline": {
                    "jobs_per_second": 300.0,
                    "worker_cpu_ms_per_job": 2.0,
                    "events_per_job": 4,
                },
                "baseline": {
                    "jobs_per_second": 500.0,
                    "worker_cpu_ms_per_job": 1.0,
                    "events_per_job": 0,
                },
                "procrastinate": {
                    "jobs_per_second": 250.0,
                    "worker_cpu_ms_per_job": 2.1,
                    "events_per_job": 3,
                },
            },
            "latency": {
                "options": {"submit_rate": 800.0, "started_rate": 200.0},
                "submit": {t: _latency(4.0) for t in targets},
                "started": {t: _latency(6.0) for t in ("publish", "procrastinate", "jobline")},
            },
        },
    }


def test_the_figure_has_the_peer_in_the_end_to_end_and_latency_panels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: dict[str, list[str]] = {}
    end_to_end, open_loop = plot._end_to_end, plot._open_loop

    def spy_e2e(axis: Any, e2e: dict[str, Any] | None) -> None:
        end_to_end(axis, e2e)
        drawn["e2e"] = [label.get_text() for label in axis.get_xticklabels()]

    def spy_latency(axis: Any, latency: dict[str, Any] | None) -> None:
        open_loop(axis, latency)
        drawn["latency"] = [text.get_text() for text in axis.get_legend().get_texts()]

    monkeypatch.setattr(plot, "_end_to_end", spy_e2e)
    monkeypatch.setattr(plot, "_open_loop", spy_latency)
    out = plot.plot(report(), tmp_path / "figure.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert drawn["e2e"] == [
        "jobline\n4 events/job",
        "Celery + one INSERT\none row/job",
        "FastAPI + Procrastinate (peer)\n3 events/job",
    ]
    assert "FastAPI + Procrastinate (peer)" in drawn["latency"]
    assert "jobline" in drawn["latency"]


def test_a_run_without_some_benchmarks_still_draws_the_others(tmp_path: Path) -> None:
    partial = report()
    del partial["results"]["latency"]
    partial["results"]["e2e"] = {"error": "RuntimeError('MariaDB went away')"}
    out = plot.plot(partial, tmp_path / "partial.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)
