"""Migration 5 on a database that already has accounts: their addresses are normalized
(as logins now look them up), on SQLite and MariaDB; two accounts that would become one
stop the migration with their addresses named.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise import connections
from tortoise.backends.base.executor import EXECUTOR_CACHE

from jobline.config import PROJECT_ROOT, Settings
from jobline.db import apply_migrations, close_db, open_db
from tests.integration.backends import BACKENDS, private_database

pytestmark = pytest.mark.integration

FULLWIDTH_CAROL = "".join(chr(ord(c) + 0xFEE0) for c in "carol")


def migrations_before_5(tmp_path: Path) -> Path:
    """migrations/ as it was before migration 5."""
    before = tmp_path / "migrations"
    for dialect in ("mysql", "sqlite"):
        folder = before / dialect / "models"
        folder.mkdir(parents=True)
        for path in (PROJECT_ROOT / "migrations" / dialect / "models").glob("[0-4]_*.py"):
            shutil.copy(path, folder / path.name)
    return before


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A database URL of the backend, and migrations/ as it was before migration 5."""
    before = migrations_before_5(tmp_path)
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'jobline.sqlite3'}", before
    else:
        yield from ((url, before) for url in private_database(request.getfixturevalue("mysql_url")))


def settings_for(url: str, migrations: Path, var: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, env="test", database_url=url, migrations_dir=migrations, var_dir=var
    )


async def migrate_with_accounts(url: str, before: Path, var: Path, emails: list[str]) -> list[str]:
    """Migrations 0-4, the accounts, then the rest: the addresses after."""
    EXECUTOR_CACHE.clear()
    await apply_migrations(settings_for(url, before, var))
    await close_db()
    await open_db(settings_for(url, before, var))
    db = connections.get("default")
    mark = "%s" if db.capabilities.dialect == "mysql" else "?"
    for email in emails:
        await db.execute_query(
            "INSERT INTO users (id, email, hashed_password, is_active, is_superuser, "
            f"is_verified, created_at) VALUES ({mark}, {mark}, 'x', 1, 0, 0, {mark})",
            [str(uuid.uuid4()), email, datetime.now(UTC).replace(tzinfo=None)],
        )
    await close_db()
    try:
        applied = await apply_migrations(settings_for(url, PROJECT_ROOT / "migrations", var))
        # Migration 5 first, then whatever came after it.
        assert applied and applied[0].split("_", 1)[0] == "5", applied
        await open_db(settings_for(url, PROJECT_ROOT / "migrations", var))
        _, rows = await connections.get("default").execute_query(
            "SELECT email FROM users ORDER BY email"
        )
        return [row["email"] for row in rows]
    finally:
        await close_db()
        EXECUTOR_CACHE.clear()


async def test_existing_addresses_are_normalized(
    database: tuple[str, Path], tmp_path: Path
) -> None:
    url, before = database
    emails = ["Alice@Example.COM", FULLWIDTH_CAROL + "@example.com", "dave@example.com"]
    after = await migrate_with_accounts(url, before, tmp_path, emails)
    assert after == ["alice@example.com", "carol@example.com", "dave@example.com"]


async def test_addresses_that_would_become_one_stop_the_migration(tmp_path: Path) -> None:
    # SQLite's unique index compared addresses exactly, so both could be registered there
    # (MariaDB's case-insensitive one already refused the second).
    url = f"sqlite://{tmp_path / 'jobline.sqlite3'}"
    accounts = ["eve@x.org", "Eve@x.org", "ok@x.org"]
    with pytest.raises(RuntimeError, match=r"again: Eve@x\.org and eve@x\.org$"):
        await migrate_with_accounts(url, migrations_before_5(tmp_path), tmp_path, accounts)
