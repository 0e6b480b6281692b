"""The confirming publisher after a nack (issue 16): a RabbitMQ channel whose first publish to
a quorum queue met the queue without a leader nacks every later publish to it, so a nack
closes the channel and the nacked messages get one more try on a new one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from jobline.config import Settings
from jobline.jobs.projection import JobView
from jobline.jobs.spec import load_queues
from jobline.jobs.states import JobState
from jobline.queueing.app import create_celery
from jobline.queueing.confirms import ConfirmingPublisher, JobMessage, MessageNacked
from tests.support import REPO


class FakeChannel:
    """Settles each publish at the next drain: nacked when the channel is poisoned."""

    def __init__(self, poisoned: bool) -> None:
        self.poisoned = poisoned
        self.published = 0

    def prepare_message(self, body: Any, *args: Any) -> Any:
        return body

    def basic_publish(self, message: Any, exchange: str, routing_key: str) -> None:
        self.published += 1


class FakeConnection:
    def __init__(self, publisher: Publisher, channel: FakeChannel) -> None:
        self.publisher = publisher
        self.channel = channel
        self.connection = object()  # no transport: one_write sends frames as they come
        self.released = False
        self.settled = 0

    def drain_events(self, timeout: float) -> None:
        while self.settled < self.channel.published:
            self.settled += 1
            settle = self.publisher._on_nack if self.channel.poisoned else self.publisher._on_ack
            settle(self.settled, False)

    def close(self) -> None:
        self.released = True


class Publisher(ConfirmingPublisher):
    """A ConfirmingPublisher whose channels come from a list: poisoned or not, in order."""

    def __init__(self, poisoned: list[bool], timeout: float = 5.0) -> None:
        queues = load_queues(REPO / "queues.yaml")
        super().__init__(
            create_celery(Settings(env="development"), queues), queues, "amqp://", timeout, 30.0
        )
        self.plan = list(poisoned)
        self.connections: list[FakeConnection] = []

    def _ensure_channel(self) -> Any:
        if self._channel is None:
            channel = FakeChannel(self.plan.pop(0))
            self._connection = FakeConnection(self, channel)
            self.connections.append(self._connection)
            self._channel = channel
            self._tag = 0
            self._unsettled.clear()
        return self._channel


def messages(n: int) -> list[JobMessage]:
    now = datetime.now(UTC)
    return [
        JobMessage(
            JobView(
                id=uuid.uuid4(),
                type="music.transcode",
                queue="music",
                state=JobState.PENDING,
                owner_id=None,
                payload={"source": "a.wav"},
                priority=0,
                created_at=now,
                updated_at=now,
            ),
            str(uuid.uuid4()),
        )
        for _ in range(n)
    ]


def test_a_nacked_batch_is_published_again_on_a_new_channel() -> None:
    publisher = Publisher([True, False])
    outcomes = publisher._publish_sync(messages(3))
    assert outcomes == [None, None, None]
    first, second = publisher.connections
    assert first.released and not second.released
    assert (first.channel.published, second.channel.published) == (3, 3)
    assert publisher.published == 3


def test_the_next_batch_after_a_nack_gets_a_new_channel() -> None:
    """Without the reset every later batch went to the poisoned channel (issue 16: 51 of 51)."""
    publisher = Publisher([True, True, False])
    outcomes = publisher._publish_sync(messages(2))
    assert all(isinstance(o, MessageNacked) for o in outcomes)
    assert all(c.released for c in publisher.connections)
    assert publisher._publish_sync(messages(2)) == [None, None]
    assert len(publisher.connections) == 3


def test_no_second_try_without_half_the_time_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second try could end in a confirm timeout, which keeps rows claimed for a lease."""
    readings = [0.0]  # the batch starts at 0; every later reading is 3 s on, of 5

    def monotonic() -> float:
        now = readings[0]
        readings[0] = 3.0
        return now

    monkeypatch.setattr("jobline.queueing.confirms.time.monotonic", monotonic)
    publisher = Publisher([True, False], timeout=5.0)
    outcomes = publisher._publish_sync(messages(1))
    assert isinstance(outcomes[0], MessageNacked)
    assert len(publisher.connections) == 1 and publisher.connections[0].released
