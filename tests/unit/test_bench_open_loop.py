"""The open-loop client measures from the schedule, and the latency summary judges the targets.

A local asyncio server that holds every answer until all requests have arrived: a closed
loop would wait for the first answer before sending more (and never finish); an open loop
sends all on schedule, on as many connections as it needs, and each request's latency
includes the wait behind the others. No timing is asserted beyond what the server's
construction guarantees.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bench import latency, report
from bench.client import OpenLoopResult, Sent, open_loop

BODY = '{"type":"bench.noop","payload":{}}'


async def held_server(count: int) -> tuple[asyncio.Server, str, list[str]]:
    """Answers 202 {"id": n} to each POST, but only once `count` requests have arrived."""
    arrived = asyncio.Event()
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                job_id = str(len(seen))
                seen.append(job_id)
                if len(seen) >= count:
                    arrived.set()
                await arrived.wait()
                answer = json.dumps({"id": job_id}).encode()
                writer.write(
                    b"HTTP/1.1 202 Accepted\r\nContent-Length: "
                    + str(len(answer)).encode()
                    + b"\r\n\r\n"
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", seen


async def test_requests_go_out_on_schedule_and_latency_counts_from_it() -> None:
    count, rate = 12, 400.0
    server, base, seen = await held_server(count)
    async with server:
        result = await open_loop(base, None, BODY, rate, count, warm_connections=2)
    assert len(result.ok) == count == len(seen) and result.errors == 0
    assert sorted(s.job_id for s in result.sent) == sorted(seen), "each answer's id read"
    # Nothing is answered until the last request arrived: the client opened a connection
    # per request instead of waiting for one to be free.
    assert result.connections_used == count
    ordered = sorted(result.sent, key=lambda s: s.scheduled)
    for i, sent in enumerate(ordered):
        assert abs(sent.scheduled - (ordered[0].scheduled + i / rate)) < 1e-6
        # Every request waited at least until the last was due: its latency includes that.
        assert sent.latency >= ordered[-1].scheduled - sent.scheduled
        assert sent.lag <= sent.latency


async def test_an_unanswered_request_counts_as_an_error() -> None:
    # Two requests expected, one sent: the server never answers it.
    server, base, _ = await held_server(2)
    async with server:
        result = await open_loop(base, None, BODY, 100.0, 1, timeout_seconds=0.2)
    assert result.errors == 1 and result.ok == []
    assert result.sent[0].status == 0


def loop_result(latencies_ms: list[float], ids: list[str] | None = None) -> OpenLoopResult:
    result = OpenLoopResult(rate=100.0, connections_used=4, seconds=len(latencies_ms) / 100)
    result.sent = [
        Sent(1000.0 + i / 100, ms / 1000, 0.0, 202, (ids or [""] * len(latencies_ms))[i])
        for i, ms in enumerate(latencies_ms)
    ]
    return result


def started_round(to_started_ms: list[float], not_started: int = 0) -> dict[str, Any]:
    figures = latency._round_figures(loop_result([5.0] * len(to_started_ms)), 0.1)
    return {
        **figures,
        "started": len(to_started_ms),
        "not_started": not_started,
        "to_started": [ms / 1000 for ms in to_started_ms],
    }


def summarize(jobline_submit_ms: float, jobline_started_ms: float, not_started: int = 0) -> Any:
    submit_rounds = {
        target: [(run, latency._round_figures(run, 0.1))]
        for target, run in (
            ("publish", loop_result([10.0] * 100)),
            ("insert", loop_result([20.0] * 100)),
            ("procrastinate", loop_result([40.0] * 100)),
            ("jobline", loop_result([jobline_submit_ms] * 100)),
        )
    }
    started_rounds = {
        "publish": [started_round([5.0] * 100)],
        "procrastinate": [started_round([50.0] * 100)],
        "jobline": [started_round([jobline_started_ms] * 100, not_started)],
    }
    return latency.summary(latency.LatencyOptions(), submit_rounds, started_rounds, 3)


def test_the_summary_gives_ratios_to_every_other_target_and_the_verdicts() -> None:
    result = summarize(jobline_submit_ms=20.0, jobline_started_ms=25.0)
    assert result["jobline_vs"]["submit"]["procrastinate"] == {"p50": 0.5, "p99": 0.5}
    assert result["jobline_vs"]["submit"]["publish"]["p99"] == 2.0
    assert result["jobline_vs"]["started"]["procrastinate"]["p99"] == 0.5
    assert all(v["met"] for v in result["targets"].values())
    missed = summarize(jobline_submit_ms=60.0, jobline_started_ms=120.0)["targets"]
    assert not any(v["met"] for v in missed.values())
    assert missed["submit_p99_ms"]["value"] == 60.0


def test_a_job_that_never_started_fails_the_started_targets() -> None:
    targets = summarize(jobline_submit_ms=20.0, jobline_started_ms=10.0, not_started=1)["targets"]
    assert targets["submit_p99_ms"]["met"]
    assert not targets["started_p50_ms"]["met"] and not targets["started_p99_ms"]["met"]


def test_the_report_prints_both_parts_ratios_and_verdicts() -> None:
    lines = "\n".join(report.latency(summarize(jobline_submit_ms=60.0, jobline_started_ms=20.0)))
    assert "| jobline | 100 | 60.0 |" in lines
    assert "procrastinate p50 x0.40, p99 **x0.40**" in lines
    assert "Target submit_p99_ms <= 50: 60.0 - **missed**" in lines
    assert "Target started_p99_ms <= 100: 20.0 - **met**" in lines
