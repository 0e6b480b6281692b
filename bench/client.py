"""A lean HTTP/1.1 client that POSTs exactly N jobs over keep-alive connections.

wrk runs for a duration, not a count; the end-to-end benchmark needs exactly N jobs, and
httpx would cost the machine more CPU than the server it measures. Raw asyncio streams,
one request in flight per connection.
"""

from __future__ import annotations

import asyncio
import time
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


async def post_jobs(
    base: str, token: str | None, body: str, count: int, connections: int
) -> list[float]:
    """POST `body` to /api/v1/jobs `count` times; the latency of each, in seconds."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    payload = body.encode()
    headers = [
        "POST /api/v1/jobs HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
    ]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + payload
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
