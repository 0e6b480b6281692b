"""The audit writer: sheds load when full, never stores the credential, ages parse."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from jobline.audit.store import parse_age
from jobline.audit.writer import COLUMNS, AuditRecord, AuditWriter
from jobline.metrics import AUDIT_DROPPED
from tests.support import stopped_within

SECRET = "s" * 40


def record(credential: str | None = None) -> AuditRecord:
    return AuditRecord(
        at=datetime.now(UTC),
        method="GET",
        route="/api/v1/jobs/{job_id}",
        status=200,
        latency_ms=1.5,
        client="127.0.0.1",
        request_id="r1",
        credential=credential,
    )


def writer(queue_max: int = 3) -> AuditWriter:
    return AuditWriter(SECRET, queue_max=queue_max, batch_max=2, flush_seconds=0.1)


async def test_a_full_queue_drops_the_new_record_and_counts_it() -> None:
    w = writer(queue_max=3)
    before = AUDIT_DROPPED.labels("queue_full")._value.get()
    for _ in range(5):
        w.offer(record())
    assert w.queue.qsize() == 3
    assert AUDIT_DROPPED.labels("queue_full")._value.get() - before == 2


def token(user_id: uuid.UUID, secret: str = SECRET, expired: bool = False) -> str:
    exp = datetime.now(UTC) + timedelta(hours=-1 if expired else 1)
    return jwt.encode(
        {"sub": str(user_id), "aud": "fastapi-users:auth", "exp": exp}, secret, algorithm="HS256"
    )


def user_of(credential: str | None) -> str | None:
    values = dict(zip(COLUMNS, writer().values_of(record(credential)), strict=True))
    user_id: str | None = values["user_id"]
    return user_id


def test_the_row_holds_the_user_id_of_a_signed_token_never_the_token() -> None:
    user_id = uuid.uuid4()
    t = token(user_id)
    stored = writer().values_of(record(t))
    assert len(stored) == len(COLUMNS)
    assert user_of(t) == str(user_id)
    assert t not in repr(stored)
    # Expiry does not matter (the request was made while it was valid); a forgery does.
    assert user_of(token(user_id, expired=True)) == str(user_id)
    assert user_of(token(user_id, secret="x" * 40)) is None
    assert user_of("not-a-jwt") is None
    assert user_of(None) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_ages_parse(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d30", "30 days", "-1d", "1y"])
def test_bad_ages_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="30d"):
        parse_age(text)


async def test_close_ends_the_writer_when_a_batch_fills_as_it_is_cancelled() -> None:
    # The batch filling in the loop iteration of the cancel: with asyncio.wait_for (Python
    # 3.11) the cancel was lost, the writer waited for its next record, and close() hung.
    w = writer(queue_max=10)
    w.start()
    w.offer(record())
    await asyncio.sleep(0.01)  # it holds the first record and waits for the batch
    w.offer(record())
    w.offer(record())  # two queued behind the first: the batch is ready
    assert w._batch_ready.is_set()
    await stopped_within(w.close(), 5)
    assert w._task is None
