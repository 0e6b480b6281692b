"""Code newer than its database's schema is not ready: /readyz names the migrations missing.

Found by the history benchmark: an API started on a database seeded before two migrations
answered every listing 503 "The database is unreachable" (an unknown column) while /readyz
said 200. Now readiness compares the migrations shipped for the dialect with those the
database recorded (aerich's table), so a load balancer keeps such a process out.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tortoise import connections

from jobline.config import Settings
from jobline.db import pending_migrations, shipped_migrations
from tests.integration.backends import BACKENDS, open_backend

pytestmark = pytest.mark.integration


def shipped(settings: Settings) -> list[str]:
    return list(shipped_migrations(settings.migrations_dir / settings.dialect / "models"))


@pytest.fixture(scope="module", params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settings]:
    async with open_backend(request, tmp_path_factory, "schema") as settings:
        yield settings


async def test_a_migrated_database_lacks_nothing_and_a_forgotten_one_is_named(
    backend: Settings,
) -> None:
    names = shipped(backend)
    assert (
        len(names) >= 10
        and names[0].startswith("0_")
        and names[-1].startswith(f"{len(names) - 1}_")
    )
    assert await pending_migrations(backend) == []
    db = connections.get("default")
    mark = backend.database.mark
    # As a database migrated by the previous release looks: without the last record.
    await db.execute_query(f"DELETE FROM aerich WHERE version = {mark}", [names[-1]])
    try:
        assert await pending_migrations(backend) == [names[-1]]
    finally:
        await db.execute_query(
            f"INSERT INTO aerich (version, app, content) VALUES ({mark}, 'models', '{{}}')",
            [names[-1]],
        )
    assert await pending_migrations(backend) == []


async def test_a_database_never_migrated_lacks_every_migration(backend: Settings) -> None:
    db = connections.get("default")
    await db.execute_query("ALTER TABLE aerich RENAME TO aerich_away")
    try:
        assert await pending_migrations(backend) == shipped(backend)
    finally:
        await db.execute_query("ALTER TABLE aerich_away RENAME TO aerich")


async def test_readyz_is_503_naming_the_first_missing_migration(
    client: httpx.AsyncClient, migrated: Settings
) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["schema"] == "ok"
    last = shipped(migrated)[-1]
    db = connections.get("default")
    row = f"removed-{uuid.uuid4().hex[:6]}"
    # Set the record aside (renamed, not deleted) and put it back afterwards.
    await db.execute_query("UPDATE aerich SET version = %s WHERE version = %s", [row, last])
    try:
        behind = await client.get("/readyz")
        assert behind.status_code == 503, behind.text
        assert behind.json()["status"] == "unavailable"
        assert behind.json()["checks"]["database"] == "ok"
        assert behind.json()["checks"]["schema"] == (
            f"error: 1 migration(s) not applied, from {last}; run `jobline migrate`"
        )
    finally:
        await db.execute_query("UPDATE aerich SET version = %s WHERE version = %s", [last, row])
    assert (await client.get("/readyz")).status_code == 200


async def test_a_request_on_a_database_without_a_column_is_503_schema_behind(
    make_user: Any, client: httpx.AsyncClient
) -> None:
    """Not "The database is unreachable": an operator must migrate, and the answer says so."""
    user = await make_user()
    assert (await user.client.get("/api/v1/jobs")).status_code == 200
    db = connections.get("default")
    # The column migration 9 added, as a database of the release before lacks it.
    await db.execute_query("ALTER TABLE jobs RENAME COLUMN worker TO worker_away")
    try:
        r = await user.client.get("/api/v1/jobs")
    finally:
        await db.execute_query("ALTER TABLE jobs RENAME COLUMN worker_away TO worker")
    assert r.status_code == 503, r.text
    assert r.json()["detail"]["code"] == "DATABASE_SCHEMA_BEHIND"
    assert "jobline migrate" in r.json()["detail"]["message"]
    assert int(r.headers["Retry-After"]) > 0
    assert (await user.client.get("/api/v1/jobs")).status_code == 200
