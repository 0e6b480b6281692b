"""OutboxPublisher, the adapter of the domain's Publisher port (issue 15.1).

It used to read again the job its caller had just stored; a view handed to it is now
trusted when it is of the row's attempt and still waits for the broker, and read again
otherwise. Fakes stand in for the store, the outbox and Celery: what is checked is which
reads and writes the publisher makes, not the database's.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

from jobline.config import Settings
from jobline.jobs.outbox import Dispatch, task_id_for
from jobline.jobs.ports import Publisher
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState
from jobline.queueing.relay import OutboxPublisher

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _view(state: JobState = JobState.PENDING, attempt: int = 1) -> JobView:
    return JobView(
        id=uuid.uuid4(),
        type="music.transcode",
        queue="music",
        state=state,
        owner_id=None,
        payload={},
        priority=0,
        created_at=NOW,
        updated_at=NOW,
        attempt=attempt,
    )


def _dispatch(view: JobView, attempt: int = 1) -> Dispatch:
    return Dispatch(view.id, attempt, task_id_for(view.id, attempt), NOW, "claim")


@dataclasses.dataclass
class _Done:
    view: JobView


class _Store:
    def __init__(self, stored: JobView) -> None:
        self.stored = stored
        self.reads = 0
        self.appended: list[Any] = []

    async def get(self, job_id: uuid.UUID) -> JobView:
        self.reads += 1
        return self.stored

    async def append(self, job_id: uuid.UUID, event: Any, data: Any, **_: Any) -> _Done:
        self.appended.append(event)
        return _Done(dataclasses.replace(self.stored, state=JobState.QUEUED))


class _Outbox:
    def __init__(self) -> None:
        self.discarded: list[Dispatch] = []

    async def discard(self, dispatch: Dispatch) -> None:
        self.discarded.append(dispatch)


class _Dispatcher:
    def __init__(self) -> None:
        self.published: list[str | None] = []

    async def publish(
        self, view: JobView, delay_seconds: float | None = None, *, task_id: str | None = None
    ) -> str:
        self.published.append(task_id)
        return task_id or ""

    async def revoke(self, task_id: str) -> None:
        pass


def _publisher(stored: JobView) -> tuple[OutboxPublisher, _Store, _Outbox, _Dispatcher]:
    store, outbox, dispatcher = _Store(stored), _Outbox(), _Dispatcher()
    publisher = OutboxPublisher(store, outbox, dispatcher, Settings())  # type: ignore[arg-type]
    return publisher, store, outbox, dispatcher


async def test_a_view_just_stored_is_published_without_reading_the_job_again() -> None:
    view = _view()
    publisher, store, _, dispatcher = _publisher(view)
    after = await publisher.publish(_dispatch(view), view)
    assert store.reads == 0
    assert dispatcher.published == [task_id_for(view.id, 1)]
    assert after is not None and after.state is JobState.QUEUED


async def test_without_a_view_the_job_is_read_as_before() -> None:
    view = _view()
    publisher, store, _, dispatcher = _publisher(view)
    await publisher.publish(_dispatch(view))
    assert store.reads == 1
    assert dispatcher.published == [task_id_for(view.id, 1)]


async def test_a_view_of_another_attempt_is_not_trusted() -> None:
    handed = _view(JobState.FAILED, attempt=1)
    stored = dataclasses.replace(handed, state=JobState.RETRYING, attempt=2)
    publisher, store, _, dispatcher = _publisher(stored)
    await publisher.publish(_dispatch(handed, attempt=2), handed)
    assert store.reads == 1, "the handed view was of attempt 1: the job is read"
    assert dispatcher.published == [task_id_for(handed.id, 2)]


async def test_a_job_that_no_longer_waits_loses_its_row_unpublished() -> None:
    handed = _view()
    stored = dataclasses.replace(handed, state=JobState.CANCELLED)
    publisher, store, outbox, dispatcher = _publisher(stored)
    dispatch = _dispatch(handed)
    after = await publisher.publish(dispatch, dataclasses.replace(handed, state=JobState.RUNNING))
    assert store.reads == 1
    assert dispatcher.published == []
    assert outbox.discarded == [dispatch]
    assert after is not None and after.state is JobState.CANCELLED


def test_the_adapter_is_the_domain_port() -> None:
    publisher: Publisher = _publisher(_view())[0]
    assert publisher.healthy
    assert not publisher.batches, "no confirming channel: no batches"
