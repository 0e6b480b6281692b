"""The benchmarks' summaries give jobline's ratio to every other target, and the report prints them.

Pure functions over made-up rounds: no service, no timing.
"""

from __future__ import annotations

import pytest
from bench import e2e, report, submit
from bench.common import WrkResult


def wrk(rps: float, p99_ms: float, cpu_ms: float) -> WrkResult:
    return WrkResult(
        connections=50,
        seconds=10.0,
        requests=int(rps * 10),
        rps=rps,
        p50_ms=p99_ms / 2,
        p90_ms=p99_ms * 0.9,
        p99_ms=p99_ms,
        max_ms=p99_ms * 2,
        errors=0,
        timeouts=0,
        percentiles_ms=[(50.0, p99_ms / 2), (99.0, p99_ms)],
        cpu_ms_per_request=cpu_ms,
    )


FIGURES = {"publish": (2000, 40, 0.3), "insert": (1600, 80, 0.5), "procrastinate": (1000, 100, 0.8)}
FIGURES["jobline"] = (1200, 50, 0.6)


def submit_result() -> dict[str, object]:
    runs = {t: {50: [wrk(*f)], 200: [wrk(*f)]} for t, f in FIGURES.items()}
    rss = dict.fromkeys(submit.TARGETS, 50.0)
    return submit.summary(
        runs, rss, rss, submit.SubmitOptions(), {"jobline": 1, "procrastinate": 1}, None
    )


def test_submit_gives_jobline_over_each_baseline_and_the_peer() -> None:
    result = submit_result()
    ratios = result["jobline_vs"]
    assert isinstance(ratios, dict) and set(ratios) == {"50", "200"}
    peer = ratios["50"]["procrastinate"]
    assert peer["rps"] == pytest.approx(1.2)
    assert peer["p99"] == pytest.approx(0.5)
    assert peer["cpu_per_request"] == pytest.approx(0.75)
    assert ratios["200"]["publish"]["rps"] == pytest.approx(0.6)
    assert ratios["200"]["insert"]["rps"] == pytest.approx(0.75)


def test_the_report_prints_the_submit_ratios() -> None:
    lines = "\n".join(report.submit(submit_result()))
    assert "jobline / procrastinate: req/s, p99" in lines
    assert "| 50 | **x0.60**, x1.25 | **x0.75**, x0.62 | **x1.20**, x0.50 |" in lines


def e2e_result() -> dict[str, object]:
    rounds = [
        e2e.Round("jobline", 1000, 2.0, 2.0, 1.0, True, 0.5),
        e2e.Round("baseline", 1000, 1.0, 1.0, 0.0, True, 0.4),
        e2e.Round("procrastinate", 1000, 4.0, 1.6, 1.0, True),
    ]
    rss = {"jobline": {"main": 1.0, "child": 1.0}}
    return e2e.summary(rounds, rss, rss, e2e.E2EOptions(jobs=1000, rounds=1), "prefork", 2, 1)


def test_e2e_gives_jobline_over_the_celery_baseline_and_the_peer() -> None:
    result = e2e_result()
    assert result["ratio_jobs_per_second"] == pytest.approx(0.5)
    ratios = result["jobline_vs"]
    assert isinstance(ratios, dict)
    assert ratios["procrastinate"]["jobs_per_second"] == pytest.approx(2.0)
    assert ratios["procrastinate"]["worker_cpu_per_job"] == pytest.approx(1.25)
    assert ratios["baseline"]["worker_cpu_per_job"] == pytest.approx(2.0)


def test_the_report_prints_the_e2e_ratios_and_the_peer_row() -> None:
    lines = "\n".join(report.e2e(e2e_result()))
    assert "| procrastinate | 250 | 1.60 | - | 1.00 | 3 | full |" in lines
    assert "jobline / procrastinate: jobs/s **x2.00**, worker CPU per job x1.25" in lines
    assert "jobline / baseline: jobs/s **x0.50**" in lines
