"""README, sessions: open streams' sessions are re-checked 'in two queries' per round,
however many streams are open (one more of each per 500 users or cookie sessions)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise import Tortoise
from tortoise.backends.sqlite.client import SqliteClient

from jobline.accounts.models import RevokedSession, User
from jobline.accounts.session_watch import CHUNK, SessionWatch
from jobline.accounts.tokens import Credential
from jobline.config import MODEL_MODULES


@pytest.fixture
async def db() -> AsyncIterator[None]:
    # A connection name of its own: Tortoise caches each model's SQL per connection name,
    # and an earlier test of the same run may have built MySQL's under "default".
    await Tortoise.init(
        {
            "connections": {"session_watch": "sqlite://:memory:"},
            "apps": {"models": {"models": MODEL_MODULES, "default_connection": "session_watch"}},
            "use_tz": True,
            "timezone": "UTC",
        }
    )
    await Tortoise.generate_schemas()
    try:
        yield
    finally:
        await Tortoise.close_connections()


def count_selects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SELECT the SQLite client sends, as it sends them."""
    sent: list[str] = []
    original = SqliteClient.execute_query

    async def counted(self: SqliteClient, query: str, values: Any = None) -> Any:
        if query.lstrip().upper().startswith("SELECT"):
            sent.append(query)
        return await original(self, query, values)

    monkeypatch.setattr(SqliteClient, "execute_query", counted)
    return sent


async def new_user() -> User:
    return await User.create(
        id=uuid.uuid4(), email=f"{uuid.uuid4().hex}@example.com", hashed_password="x"
    )


async def test_many_streams_cost_two_queries_per_round(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = [await new_user() for _ in range(20)]
    logged_out = "out-jti"
    await RevokedSession.create(jti=logged_out, expires_at=datetime.now(UTC) + timedelta(hours=1))
    watch = SessionWatch()
    issued = time.time()
    contexts = []
    for i, user in enumerate(users):
        # Three streams per user: a bearer token and two cookie sessions.
        for kind, jti in (("bearer", None), ("cookie", f"c{i}"), ("cookie", f"d{i}")):
            credential = Credential(kind, str(user.id), issued, jti)  # type: ignore[arg-type]
            contexts.append(watch.watching(user.id, credential, interval=3600))
    ended_cookie = watch.watching(
        users[0].id, Credential("cookie", str(users[0].id), issued, logged_out), interval=3600
    )
    contexts.append(ended_cookie)
    streams = [c.__enter__() for c in contexts]
    try:
        sent = count_selects(monkeypatch)
        assert await watch.check() == 1, "the logged-out cookie's stream ends, no other"
        assert len(sent) == 2, sent
        assert streams[-1].ended.is_set()
        assert not any(s.ended.is_set() for s in streams[:-1])
    finally:
        for c in reversed(contexts):
            c.__exit__(None, None, None)
        if watch._task is not None:  # its next round would find nothing to watch
            watch._task.cancel()
    assert CHUNK == 500  # the README's "per 500"
