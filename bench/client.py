"""A lean HTTP/1.1 client that POSTs jobs over keep-alive connections.

wrk runs for a duration, not a count; the end-to-end benchmark needs exactly N jobs, and
httpx would cost the machine more CPU than the server it measures. Raw asyncio streams,
one request in flight per connection.

- `post_jobs`: closed loop, exactly N jobs over C connections, each sending its next
  request when the last is answered (throughput);
- `open_loop`: requests at a fixed offered rate on a schedule, each one's latency from its
  scheduled time (bench/latency.py): a closed loop measures latency only as the server
  lets the client send, so its queueing never shows (coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


class PostFailed(Exception):
    """The server answered a job POST with something other than 200/202."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


def _request(host: str, port: int, token: str | None, payload: bytes) -> bytes:
    """The bytes of one POST /api/v1/jobs, sent as they are for every request."""
    headers = [
        "POST /api/v1/jobs HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + payload


async def post_jobs(
    base: str, token: str | None, body: str, count: int, connections: int
) -> list[float]:
    """POST `body` to /api/v1/jobs `count` times; the latency of each, in seconds."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = _request(host, port, token, body.encode())
    remaining = [count]
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                started = time.perf_counter()
                writer.write(request)
                status, answer = await _read_response(reader)
                if status not in (200, 202):
                    raise PostFailed(f"POST /api/v1/jobs answered {status}: {answer[:200]!r}")
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    await asyncio.gather(*[connection() for _ in range(min(connections, count))])
    return latencies


# --------------------------------------------------------------------------- open loop


@dataclass
class Sent:
    """One request of an open-loop run.

    `scheduled` is the wall-clock time (epoch seconds) the schedule said to send it;
    `latency` runs from that time, not from when a connection was free to send it, so a
    slow server cannot hide its queue by slowing the client down (coordinated omission).
    """

    scheduled: float
    latency: float
    lag: float
    status: int
    job_id: str


@dataclass
class OpenLoopResult:
    """Every request of an open-loop run, and what the client itself needed to keep up."""

    rate: float
    sent: list[Sent] = field(default_factory=list)
    connections_used: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> list[Sent]:
        """The requests answered 200/202."""
        return [s for s in self.sent if s.status in (200, 202)]

    @property
    def errors(self) -> int:
        """Requests answered otherwise, or not at all (status 0)."""
        return len(self.sent) - len(self.ok)


def _job_id(body: bytes) -> str:
    try:
        return str(json.loads(body).get("id", ""))
    except (ValueError, AttributeError):
        return ""


async def open_loop(
    base: str,
    token: str | None,
    body: str,
    rate: float,
    count: int,
    *,
    max_connections: int = 512,
    warm_connections: int = 16,
    timeout_seconds: float = 30.0,
) -> OpenLoopResult:
    """POST `body` `count` times at `rate` per second on a fixed schedule (open loop).

    Request i is due at start + i / rate whatever happened to the ones before it; it goes
    out on an idle keep-alive connection, or a new one (up to `max_connections`): a server
    that falls behind gets more requests in flight, as it would from independent users.
    Each request's latency runs from its scheduled time to its whole response; `lag` is how
    late the client got to it (its own delay, included in the latency, reported apart).
    A request not answered within `timeout_seconds` of its schedule counts with status 0.
    """
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    request = _request(host, port, token, body.encode())
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    slots = asyncio.Semaphore(max_connections)
    result = OpenLoopResult(rate=rate)
    for _ in range(min(warm_connections, max_connections, count)):
        connection = await asyncio.open_connection(host, port)
        opened.append(connection[1])
        idle.append(connection)

    async def one(due: float, wall_due: float) -> None:
        # The client's own lateness: when it got to this request, before any wait for a
        # connection (a wait at the cap is the server's backlog, not the client's delay).
        lag = time.perf_counter() - due
        async with slots:
            connection = idle.pop() if idle else None
            # One the server closed while idle (uvicorn's keep-alive timeout, 5 s, runs out
            # between rounds) would fail this request for the client's sake: not reused.
            while connection is not None and (connection[0].at_eof() or connection[1].is_closing()):
                connection[1].close()
                connection = idle.pop() if idle else None
            if connection is None:
                connection = await asyncio.open_connection(host, port)
                opened.append(connection[1])
            reader, writer = connection
            sent_at = time.perf_counter()
            writer.write(request)
            try:
                status, answer = await asyncio.wait_for(
                    _read_response(reader), max(0.001, due + timeout_seconds - sent_at)
                )
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                # The connection's state is unknown: it is not reused.
                writer.close()
                result.sent.append(Sent(wall_due, time.perf_counter() - due, lag, 0, ""))
                return
            done = time.perf_counter()
            idle.append(connection)
            result.sent.append(Sent(wall_due, done - due, lag, status, _job_id(answer)))

    tasks: list[asyncio.Task[None]] = []
    start, wall_start = time.perf_counter() + 0.01, time.time() + 0.01
    index = 0
    while index < count:
        now = time.perf_counter()
        # Every request already due goes now: a late wake-up sends a burst, never fewer.
        while index < count and start + index / rate <= now:
            offset = index / rate
            tasks.append(asyncio.create_task(one(start + offset, wall_start + offset)))
            index += 1
        if index < count:
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - start
    result.connections_used = len(opened)
    for writer in opened:
        writer.close()
    return result


def run_open_loop(
    base: str, token: str | None, body: str, rate: float, count: int, **options: Any
) -> OpenLoopResult:
    """`open_loop` on its own event loop (uvloop when installed: the client's cost is small)."""
    try:
        import uvloop

        factory: Any = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(open_loop(base, token, body, rate, count, **options))
