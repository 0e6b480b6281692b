"""sse-starlette internals, tested with sse-starlette 3.7:

- `EventSourceResponse._send_with_timeout`, through which every frame and ping is sent. A
  timer around every frame cost a third of the API's CPU with a thousand followers
  (bench/sse_fanout); `SendTimeoutOnPings` keeps the timer on pings only.
- `EventSourceResponse._listen_for_exit_signal` (a staticmethod): when it returns, the
  response ends its body cleanly (the server's shutdown path). `SendTimeoutOnPings` also
  returns from it once `end` is set, so a stream can be ended from outside (a revoked
  session) the way a shutdown ends it.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import anyio
from sse_starlette import EventSourceResponse
from starlette.types import Message, Send


class SendTimeoutOnPings(EventSourceResponse):
    """sse-starlette's response with its send timeout applied to pings (`ping_body`) only,
    and ended cleanly when `end` (if given) is set."""

    ping_body: ClassVar[bytes]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.end: asyncio.Event | None = None

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if message.get("body") == self.ping_body:
            await super()._send_with_timeout(send, message)
        else:
            await send(message)

    async def _listen_for_exit_signal(self) -> None:  # type: ignore[override]
        server_exit = EventSourceResponse._listen_for_exit_signal
        end = self.end
        if end is None:
            await server_exit()
            return
        async with anyio.create_task_group() as group:

            async def on_server_exit() -> None:
                await server_exit()
                group.cancel_scope.cancel()

            group.start_soon(on_server_exit)
            await end.wait()
            group.cancel_scope.cancel()
