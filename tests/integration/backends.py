"""The two backends the storage contract tests run against: SQLite and MariaDB, migrated.

Tortoise has one global context per process, so a contract module opens one backend at a
time (a module-scoped fixture parametrised over BACKENDS) and closes it before the next.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pymysql
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from jobline.config import Settings
from jobline.db import apply_migrations, close_db, open_db
from tests.conftest import _mysql_parts

BACKENDS = ["sqlite", "mariadb"]


def private_database(mysql_url: str) -> Iterator[str]:
    """A database of its own beside the run's, so listing every owner sees only these tests.

    Named afresh each time: one a failed test could not drop never fails the next. Its
    DROP gives up after a minute instead of waiting for ever on a lock a leaked
    transaction holds (MariaDB's lock_wait_timeout is a year by default).
    """
    parts = _mysql_parts(mysql_url)
    name = f"{parts['db']}_store_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(
        host=str(parts["host"]),
        port=int(str(parts["port"])),
        user=str(parts["user"]),
        password=str(parts["password"]),
        autocommit=True,
        init_command="SET SESSION lock_wait_timeout = 60",
    )
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    try:
        yield mysql_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@asynccontextmanager
async def open_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, prefix: str
) -> AsyncIterator[Settings]:
    """A freshly migrated database of the backend `request.param` names, open in Tortoise."""
    folder = tmp_path_factory.mktemp(f"{prefix}-{request.param}")
    databases: Iterator[str] | None = None
    if request.param == "sqlite":
        url = f"sqlite://{folder / 'jobline.sqlite3'}"
    else:
        databases = private_database(request.getfixturevalue("mysql_url"))
        url = next(databases)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, env="test", database_url=url, var_dir=folder, secret_key="x" * 40
    )
    assert settings.dialect == ("sqlite" if request.param == "sqlite" else "mysql")
    # Tortoise caches each model's INSERT/DELETE SQL per connection name, whatever the
    # dialect: switching SQLite <-> MySQL in one process needs the cache emptied.
    EXECUTOR_CACHE.clear()
    try:
        applied = await apply_migrations(settings)
        assert applied, "a fresh database gets the initial migration"
        await open_db(settings)
        try:
            yield settings
        finally:
            await close_db()
            EXECUTOR_CACHE.clear()
    finally:
        if databases is not None:
            next(databases, None)
