"""Regression: stopping the relay mid-query hung the API's shutdown for ever.

aiomysql turns the cancellation of a running query into InterfaceError("Cancelled during
execution"); the relay caught it as a database outage and looped on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pymysql

from jobline.config import Settings
from jobline.queueing.relay import Relay


class _OutboxMidQuery:
    def __init__(self) -> None:
        self.claims = 0
        self.in_query = asyncio.Event()

    async def claim(self, batch: int, lease: float) -> list[Any]:
        self.claims += 1
        self.in_query.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise pymysql.err.InterfaceError(0, "Cancelled during execution") from None
        return []


class _Publisher:
    def __init__(self) -> None:
        self.outbox = _OutboxMidQuery()


async def test_stop_ends_the_relay_while_its_query_is_being_cancelled() -> None:
    publisher = _Publisher()
    relay = Relay(publisher, Settings(relay_interval_seconds=0.01))  # type: ignore[arg-type]
    relay.start()
    await asyncio.wait_for(publisher.outbox.in_query.wait(), timeout=10)
    await asyncio.wait_for(relay.stop(), timeout=10)
    assert relay._task is None
    assert publisher.outbox.claims == 1, "the relay must not start another round once stopping"
