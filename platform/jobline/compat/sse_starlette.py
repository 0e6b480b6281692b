"""sse-starlette internals: `EventSourceResponse._send_with_timeout`, through which every
frame and ping is sent. Tested with sse-starlette 3.7.

A timer around every frame cost a third of the API's CPU with a thousand followers
(bench/sse_fanout); `SendTimeoutOnPings` keeps the timer on pings only.
"""

from __future__ import annotations

from typing import ClassVar

from sse_starlette import EventSourceResponse
from starlette.types import Message, Send


class SendTimeoutOnPings(EventSourceResponse):
    """sse-starlette's response with its send timeout applied to pings (`ping_body`) only;
    every other frame is sent without a timer."""

    ping_body: ClassVar[bytes]

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if message.get("body") == self.ping_body:
            await super()._send_with_timeout(send, message)
        else:
            await send(message)
