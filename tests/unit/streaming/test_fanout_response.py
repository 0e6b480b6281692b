"""The SSE response's send timeout sits on pings only: a client that stops reading is
still dropped, and its stream's generator (holding the feed subscription) is closed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sse_starlette import ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from tortoise.exceptions import OperationalError

from jobline.api.stream import PING, SEP, FanoutResponse, ends_on_outage

FRAMES_BEFORE_STUCK = 3
WITHIN = 5.0


async def test_a_client_that_stops_reading_is_dropped_when_its_ping_times_out() -> None:
    closed = asyncio.Event()
    sent: list[bytes] = []
    never = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        try:
            for n in itertools.count():
                yield b"id: %d\n\n" % n
        finally:
            closed.set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("more_body"):
            if len(sent) >= FRAMES_BEFORE_STUCK:
                await never.wait()  # flow control: the client's buffers are full
            sent.append(message["body"])

    async def receive() -> dict[str, Any]:
        await never.wait()
        return {"type": "http.disconnect"}

    response = FanoutResponse(
        frames(),
        ping=0.05,
        sep=SEP,
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep=SEP),
        send_timeout=0.1,
    )
    with pytest.raises(SendTimeoutError):
        await asyncio.wait_for(
            response({"type": "http", "method": "GET"}, receive, send),  # type: ignore[arg-type]
            WITHIN,
        )
    assert closed.is_set(), "the generator, and with it the subscription, is closed"
    assert sent == [b"id: 0\n\n", b"id: 1\n\n", b"id: 2\n\n"]
    assert PING == b": ping\n\n"


async def test_a_database_outage_ends_a_stream_quietly(caplog: pytest.LogCaptureFixture) -> None:
    async def frames() -> AsyncIterator[bytes]:
        with ends_on_outage():
            yield b"id: 1\n\n"
            raise OperationalError("(2013, 'Lost connection to MySQL server during query')")

    assert [chunk async for chunk in frames()] == [b"id: 1\n\n"]
    assert "the database is unreachable" in caplog.text


async def test_other_errors_are_not_swallowed() -> None:
    async def frames() -> AsyncIterator[bytes]:
        with ends_on_outage():
            yield b"id: 1\n\n"
            raise KeyError("a bug")

    with pytest.raises(KeyError):
        _ = [chunk async for chunk in frames()]
