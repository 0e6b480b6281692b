"""`python -m bench --quick` runs every benchmark at a tiny size, so none of them rots.

It asserts that the run produced every figure the README's table is made of, never what
the figures are: timings on a shared machine prove nothing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO

pytestmark = pytest.mark.integration

QUICK_RUN_SECONDS = 900


def number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=QUICK_RUN_SECONDS,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    loaded: dict[str, Any] = json.loads(Path(out).read_text())
    return loaded


def test_the_run_says_where_it_ran(report: dict[str, Any]) -> None:
    assert report["quick"] is True
    assert report["machine"]["cores"] >= 1 and report["machine"]["mariadb"]
    assert report["machine"]["postgresql"], "the peer's PostgreSQL answered"
    assert set(report["load_average"]) == {
        "submit",
        "e2e",
        "latency",
        "worker",
        "history",
        "memory",
        "sse",
        "audit",
    }


def test_submit_has_every_figure_for_every_target(report: dict[str, Any]) -> None:
    submit = report["results"]["submit"]
    assert set(submit["by_connections"]) == {"50", "200"}
    for by_target in submit["by_connections"].values():
        assert set(by_target) == {"publish", "insert", "procrastinate", "jobline"}
        for figures in by_target.values():
            for key in ("rps", "p50_ms", "p99_ms", "rps_vs_publish", "cpu_ms_per_request"):
                assert number(figures[key]), key
            assert figures["requests"] > 0, "each target answered requests"
            assert figures["percentiles_ms"], "the latency curve for the plot"
    assert submit["jobline_jobs_stored"] > 0
    assert submit["procrastinate_jobs_stored"] > 0, "the peer committed its jobs"


def test_submit_gives_jobline_against_every_baseline_and_the_peer(report: dict[str, Any]) -> None:
    ratios = report["results"]["submit"]["jobline_vs"]
    assert set(ratios) == {"50", "200"}
    for by_other in ratios.values():
        assert set(by_other) == {"publish", "insert", "procrastinate"}
        for r in by_other.values():
            assert number(r["rps"]) and number(r["p99"]) and number(r["cpu_per_request"])


def test_e2e_ran_every_target_to_the_end_with_full_history(report: dict[str, Any]) -> None:
    e2e = report["results"]["e2e"]
    for target in ("jobline", "baseline", "procrastinate"):
        assert number(e2e[target]["jobs_per_second"]) and e2e[target]["jobs_per_second"] > 0
        assert number(e2e[target]["worker_cpu_ms_per_job"])
        # The peer's: every job's deferred, started and succeeded events, from its own table.
        assert e2e[target]["history_complete"] is True
    assert e2e["procrastinate"]["api_cpu_ms_per_job"] > 0, "the peer's jobs went through its API"
    assert number(e2e["ratio_jobs_per_second"]) and number(e2e["ratio_worker_cpu_per_job"])
    assert set(e2e["jobline_vs"]) == {"baseline", "procrastinate"}
    for r in e2e["jobline_vs"].values():
        assert number(r["jobs_per_second"]) and number(r["worker_cpu_per_job"])
    assert e2e["worker"]["concurrency"] >= 1
    assert e2e["worker"]["procrastinate_processes"] == 2


def test_latency_measured_every_target_open_loop_with_ratios_and_verdicts(
    report: dict[str, Any],
) -> None:
    latency = report["results"]["latency"]
    assert latency["options"]["submit_rate"] > 0 and latency["options"]["started_rate"] > 0
    assert set(latency["submit"]) == {"publish", "insert", "procrastinate", "jobline"}
    for figures in latency["submit"].values():
        assert figures["requests"] > 0 and figures["errors"] == 0, "every POST answered"
        for key in ("p50_ms", "p95_ms", "p99_ms", "achieved_rps", "client_lag_p99_ms"):
            assert number(figures[key]), key
        assert figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    assert set(latency["started"]) == {"publish", "procrastinate", "jobline"}
    for figures in latency["started"].values():
        # Every job's start found where its target stores it, none lost.
        assert figures["started"] == figures["jobs"] > 0 and figures["not_started"] == 0
        assert number(figures["p50_ms"]) and number(figures["p99_ms"])
        assert figures["p50_ms"] > 0, "a job starts after its POST was scheduled"
    assert set(latency["jobline_vs"]["submit"]) == {"publish", "insert", "procrastinate"}
    assert set(latency["jobline_vs"]["started"]) == {"publish", "procrastinate"}
    for by_other in latency["jobline_vs"].values():
        for r in by_other.values():
            assert number(r["p50"]) and number(r["p99"])
    assert set(latency["targets"]) == {"submit_p99_ms", "started_p50_ms", "started_p99_ms"}
    for verdict in latency["targets"].values():
        assert number(verdict["value"]) and isinstance(verdict["met"], bool)


def test_history_timed_every_listing_at_every_depth_with_plans(report: dict[str, Any]) -> None:
    history = report["results"]["history"]
    listings = {row["listing"] for row in history["api"]}
    assert {"owner", "owner state=failed", "owner type=video.render", "all (superuser)"} <= listings
    assert {row["depth"] for row in history["api"]} >= {0, 100, 1000}
    for row in history["api"]:
        assert number(row["p95_ms"]) and row["samples"] > 0
    assert [row["depth"] for row in history["sql"]] == sorted(
        row["depth"] for row in history["sql"]
    )
    for row in history["sql"]:
        assert number(row["keyset"]["p50_ms"]) and number(row["offset"]["p50_ms"])
    for name, plan in history["plans"].items():
        assert plan["sql"].startswith("SELECT"), name
        assert plan["summary"]["index"], f"{name}: MariaDB's plan names an index"
    assert number(history["events"]["first_page"]["p95_ms"])
    assert history["seed"]["jobs"] > 0 and history["seed"]["events"] > history["seed"]["jobs"]
    assert any("idx_jobs_owner_created" in index for index in history["indexes"]["jobs"])


def test_memory_has_idle_and_peak_rss_of_api_and_worker(report: dict[str, Any]) -> None:
    memory = report["results"]["memory"]
    assert set(memory["api"]) == {"publish", "insert", "procrastinate", "jobline"}
    for rss in memory["api"].values():
        assert rss["idle"] > 0 and rss["peak"] >= rss["idle"] * 0.9
    assert set(memory["worker"]) == {"jobline", "baseline", "procrastinate"}
    for target in ("jobline", "baseline"):
        rss = memory["worker"][target]
        assert rss["idle"]["main"] > 0 and rss["peak"]["child"] > 0
    assert memory["worker"]["procrastinate"]["peak"]["process"] > 0


def test_the_other_issues_benchmarks_ran(report: dict[str, Any]) -> None:
    for name in ("sse", "audit"):
        result = report["results"][name]
        assert result["exit_code"] == 0, result["errors"]
        assert result["output"].strip(), f"{name} printed its figures"


def test_the_worker_body_benchmark_recorded_every_job_against_its_baseline(
    report: dict[str, Any],
) -> None:
    result = report["results"]["worker"]
    assert result["exit_code"] == 0, result["errors"]
    figures = json.loads(result["output"].strip().splitlines()[-1])
    for side in ("jobline", "baseline"):
        assert number(figures[side]["cpu_ms_per_job"]) and figures[side]["cpu_ms_per_job"] > 0
    assert number(figures["cpu_ratio"])
    assert figures["jobs_with_full_history"] == figures["jobs"] * (figures["rounds"] + 1)
