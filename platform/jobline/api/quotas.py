"""A cap on the SSE streams one user holds open in an API process.

The count lives in the process (streams are connections to it): with N gunicorn workers
a user may hold up to N x JOBLINE_MAX_STREAMS_PER_USER streams in all, and a client
that reconnects lands on any of them. The slot is taken before the response starts
(past the cap: 429 TOO_MANY_STREAMS) and given back when the response has ended, however
it ended (a dependency with `yield` exits after the response is sent).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from jobline.api.deps import CallerDep
from jobline.errors import TooManyStreams

MS_PER_SECOND = 1000


class StreamSlots:
    """Open streams per user in this process."""

    def __init__(self, limit: int, retry_after_seconds: int) -> None:
        self.limit = limit
        # What a refused client is told to wait (Retry-After): a slot frees when a stream ends.
        self.retry_after_seconds = retry_after_seconds
        self.open: dict[UUID, int] = {}

    def take(self, user_id: UUID) -> None:
        held = self.open.get(user_id, 0)
        if held >= self.limit:
            raise TooManyStreams(
                f"you have {held} streams open; close one first "
                "(the limit is JOBLINE_MAX_STREAMS_PER_USER)",
                retry_after=self.retry_after_seconds,
            )
        self.open[user_id] = held + 1

    def give_back(self, user_id: UUID) -> None:
        held = self.open.get(user_id, 0) - 1
        if held > 0:
            self.open[user_id] = held
        else:
            self.open.pop(user_id, None)


def stream_slots(request: Request) -> StreamSlots:
    slots: StreamSlots | None = getattr(request.app.state, "stream_slots", None)
    if slots is None:
        settings = request.app.state.settings
        slots = request.app.state.stream_slots = StreamSlots(
            settings.max_streams_per_user, math.ceil(settings.sse_retry_ms / MS_PER_SECOND)
        )
    return slots


async def hold_stream_slot(request: Request, caller: CallerDep) -> AsyncIterator[None]:
    """Hold one of the caller's stream slots for as long as the response lasts."""
    slots = stream_slots(request)
    slots.take(caller.id)
    try:
        yield
    finally:
        slots.give_back(caller.id)


StreamSlot = Annotated[None, Depends(hold_stream_slot)]
