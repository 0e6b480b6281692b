"""apply_async after a nack (issue 16): the pooled connection goes, so the next publish gets a
new channel instead of one that nacks every publish to a quorum queue."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from amqp.exceptions import MessageNacked

from jobline.config import Settings
from jobline.jobs.projection import JobView
from jobline.jobs.spec import load_queues
from jobline.jobs.states import JobState
from jobline.queueing.app import create_celery
from jobline.queueing.dispatch import CeleryDispatcher
from tests.support import REPO


class Connection:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    @contextlib.contextmanager
    def _reraise_as_library_errors(self) -> Iterator[None]:  # what apply_async wraps it in
        yield


class NackingProducer:
    """A pooled producer whose channel nacks: publish raises as kombu's confirm does."""

    def __init__(self) -> None:
        self.connection = Connection()
        self.publishes = 0

    def publish(self, *args: Any, **kwargs: Any) -> None:
        self.publishes += 1
        raise MessageNacked("nacked")


def test_a_nack_closes_the_pooled_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    queues = load_queues(REPO / "queues.yaml")
    app = create_celery(Settings(env="development"), queues)
    dispatcher = CeleryDispatcher(app, queues, publish_timeout=1.0)
    producer = NackingProducer()

    @contextlib.contextmanager
    def acquire(given: Any = None) -> Iterator[Any]:
        yield producer

    monkeypatch.setattr(app, "producer_or_acquire", acquire)
    now = datetime.now(UTC)
    view = JobView(
        id=uuid.uuid4(),
        type="music.transcode",
        queue="music",
        state=JobState.PENDING,
        owner_id=None,
        payload={"source": "a.wav"},
        priority=0,
        created_at=now,
        updated_at=now,
    )
    with pytest.raises(MessageNacked):
        dispatcher.publish_sync(view)
    assert producer.publishes == 1 and producer.connection.closed
