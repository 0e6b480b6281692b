"""Shutting down lets go of the database whatever else fails: a stop that raises, or a
connection a stuck task never gives back. Either used to leave Tortoise's process-wide
context set, and every later open of the database in the process then failed. And a
transaction whose BEGIN fails gives its connection back to the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asgi_lifespan import LifespanManager
from tortoise import connections
from tortoise.transactions import in_transaction

from jobline.compat.tortoise import context_left_open
from jobline.config import Settings
from jobline.db import close_db, open_db
from jobline.queueing.relay import Relay
from tests.integration.db_proxy import DatabaseProxy
from tests.support import REPO

pytestmark = pytest.mark.integration


@pytest.fixture
async def app_settings(migrated: Settings, tmp_path: Path) -> AsyncIterator[Settings]:
    yield migrated.model_copy(update={"var_dir": tmp_path, "queues_file": REPO / "queues.yaml"})
    if context_left_open():
        await close_db(wait_seconds=1)


async def test_a_stop_that_raises_still_closes_the_database(
    app_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobline.app import create_app

    stop = Relay.stop

    async def broken_stop(self: Relay) -> None:
        await stop(self)  # stopped all the same: no task of it outlives the test
        raise RuntimeError("the relay could not stop")

    monkeypatch.setattr(Relay, "stop", broken_stop)
    app = create_app(app_settings)
    with pytest.raises(RuntimeError, match="the relay could not stop"):
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            assert context_left_open()
    assert not context_left_open()
    # The next app of the process opens the database as the first did.
    monkeypatch.undo()
    async with LifespanManager(create_app(app_settings), startup_timeout=30, shutdown_timeout=30):
        _, rows = await connections.get("default").execute_query("SELECT 1 AS one")
        assert rows[0]["one"] == 1
    assert not context_left_open()


async def test_a_connection_never_given_back_is_closed_under_its_holder(
    app_settings: Settings,
) -> None:
    await open_db(app_settings)
    client = connections.get("default")
    held = client.acquire_connection()
    raw = await held.__aenter__()  # a task that never reaches its release
    async with asyncio.timeout(30):  # before: closing waited for it for ever
        await close_db(wait_seconds=0.5)
    assert not context_left_open()
    assert raw.closed
    await open_db(app_settings)
    try:
        _, rows = await connections.get("default").execute_query("SELECT 1 AS one")
        assert rows[0]["one"] == 1
    finally:
        await close_db()


async def test_a_transaction_whose_begin_never_returns_gives_its_connection_back(
    app_settings: Settings,
) -> None:
    """Tortoise took a connection, then sent BEGIN; cancelled while waiting for it (as the
    tasks of a shutting-down process are), it never gave the connection back
    (compat/tortoise.py: release_when_begin_fails)."""
    proxy = DatabaseProxy(app_settings.database_url)
    settings = app_settings.model_copy(update={"database_url": await proxy.start()})
    await open_db(settings)
    try:
        client = connections.get("default")
        await client.execute_query("SELECT 1")  # the pool and a connection through the proxy
        pool = client._pool
        proxy.stall()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5), in_transaction("default"):
                pass
        assert pool.size - pool.freesize == 0  # none lent out
        proxy.resume()
        # And the pool still serves, on a new connection.
        _, rows = await client.execute_query("SELECT 1 AS one")
        assert rows[0]["one"] == 1
    finally:
        async with asyncio.timeout(30):
            await close_db(wait_seconds=1)
        await proxy.close()
