"""Waiting for an event with a timeout, without losing a cancellation.

Not `asyncio.wait_for(event.wait(), timeout)`: on Python 3.11, when a task is cancelled in
the same loop iteration as the event it waits for is set, wait_for returns the event's
result and the cancellation is lost (python/cpython#86296, fixed in 3.12). A loop that
waits that way then never stops, and whoever awaits its cancellation (an API's lifespan
shutdown, `jobline dev`'s Ctrl-C) waits for ever. `asyncio.timeout` keeps the cancel.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, seconds: float) -> None:
    """Wait until `event` is set, at most `seconds`; a cancel always comes through."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
