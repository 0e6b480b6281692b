"""Contract of compat/sse_starlette.py with sse-starlette: every frame and every ping is
sent through `EventSourceResponse._send_with_timeout(send, message)`, so an override
decides which sends get the timer."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Send

from jobline.compat.sse_starlette import SendTimeoutOnPings

PING = b": ping\n\n"
WITHIN = 5.0


def test_the_method_exists_with_the_expected_signature() -> None:
    method = EventSourceResponse._send_with_timeout
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "send", "message"]


class Recording(SendTimeoutOnPings):
    ping_body = PING
    timed: list[bytes] = []

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if message.get("body") == PING:
            self.timed.append(PING)
        await super()._send_with_timeout(send, message)


async def test_frames_and_pings_both_pass_through_it_and_only_pings_are_timed() -> None:
    sent: list[bytes] = []
    done = asyncio.Event()

    async def frames() -> AsyncIterator[bytes]:
        yield b"id: 1\n\n"
        await asyncio.sleep(0.2)  # long enough for pings
        yield b"id: 2\n\n"

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    async def receive() -> dict[str, Any]:
        await done.wait()
        return {"type": "http.disconnect"}

    response = Recording(
        frames(),
        ping=0.05,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep="\n"),
        send_timeout=1.0,
    )
    await asyncio.wait_for(
        response({"type": "http", "method": "GET"}, receive, send),  # type: ignore[arg-type]
        WITHIN,
    )
    done.set()
    assert b"id: 1\n\n" in sent and b"id: 2\n\n" in sent
    assert PING in sent and Recording.timed
