"""Event notices go out only while some API process takes them (issue 17).

An API process binds a queue to the notices' exchange only while it has followers; a
publisher whose notice RabbitMQ returned (no queue bound) sends none for a while, then
tries again, so notices reach a follower that came meanwhile. Real RabbitMQ; no timing
asserted, only what arrives and what the publisher counts.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from kombu import Connection, Queue

from jobline.jobs.events import Event, EventType
from jobline.streaming.notify import Notifier, events_exchange

pytestmark = pytest.mark.integration

WAIT_SECONDS = 120.0  # generous: the CI machine is slower than you think
PROBE_SECONDS = 0.2


def event(seq: int) -> Event:
    return Event(uuid.uuid4(), seq, EventType.PROGRESS, 1, datetime.now(UTC), {})


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_SECONDS:.0f}s: {what}"
        time.sleep(0.05)


def test_notices_stop_while_nobody_follows_and_come_back_for_a_follower(amqp_url: str) -> None:
    exchange = f"jobline.events.test.{uuid.uuid4().hex[:8]}"
    notifier = Notifier(
        amqp_url,
        exchange,
        buffer=100,
        retry_seconds=1.0,
        connect_timeout=10.0,
        probe_seconds=PROBE_SECONDS,
    )
    notifier.start()
    seq = iter(range(1, 10**6))
    try:

        def nobody_takes_them() -> bool:
            notifier.committed(event(next(seq)), None, 1)
            return notifier.unread > 0

        # No queue is bound: RabbitMQ returns the notices, and then they are not sent.
        until(nobody_takes_them, "notices counted unread while no queue is bound")
        assert notifier.dropped == 0

        with Connection(amqp_url) as connection:
            inbox = Queue(
                f"{exchange}.follower",
                events_exchange(exchange),
                routing_key="",
                exclusive=True,
                auto_delete=True,
            )(connection.default_channel)
            inbox.declare()
            received: list[int] = []

            def a_follower_gets_them() -> bool:
                notifier.committed(event(next(seq)), None, 7)
                message = inbox.get(no_ack=True)
                if message is not None:
                    received.extend(n[0] for n in json.loads(message.body)["events"])
                return bool(received)

            until(a_follower_gets_them, "a bound queue receives notices again")
            assert set(received) == {7}
            # While a queue takes them, every notice is published.
            published = notifier.published
            notifier.committed(event(next(seq)), None, 8)
            until(lambda: notifier.published > published, "the next notice is published")
    finally:
        notifier.stop(10.0)
    assert notifier.dropped == 0
