"""SQLite, the embedded default (through jobline.sqlite_engine)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from tortoise.backends.base.config_generator import expand_db_url

from jobline.dialects.base import Dialect


class SQLite(Dialect):
    """SQLite: `?` placeholders, no row locks (writers run one at a time), no hints."""

    name: ClassVar[str] = "sqlite"
    label: ClassVar[str] = "SQLite"
    embedded: ClassVar[bool] = True
    quote: ClassVar[str] = '"'
    mark: ClassVar[str] = "?"
    supports_for_update: ClassVar[bool] = False
    supports_skip_locked: ClassVar[bool] = False
    force_index: ClassVar[bool] = False
    data_errors: ClassVar[tuple[type[Exception], ...]] = (sqlite3.DataError, sqlite3.IntegrityError)
    # julianday() of the Unix epoch is 2440587.5; 'now' has millisecond precision.
    now_ms: ClassVar[str] = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

    def tortoise_connection(
        self, database_url: str, *, pool_max: int, busy_timeout_ms: int
    ) -> str | dict[str, Any]:
        """Our engine, which begins transactions as the writer: concurrent processes wait
        their turn (up to the busy timeout) instead of failing (jobline.sqlite_engine)."""
        path = database_url.removeprefix("sqlite://")
        if path not in (":memory:", "") and not path.startswith("/"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        url = expand_db_url(database_url)
        url["engine"] = "jobline.sqlite_engine"
        url["credentials"]["busy_timeout"] = busy_timeout_ms
        return url

    def lacks_schema(self, exc: BaseException) -> bool:
        """sqlite3's "no such table" / "no such column"."""
        return isinstance(exc, sqlite3.OperationalError) and str(exc).startswith(
            ("no such table", "no such column")
        )

    def insert_if_absent_sql(self, table: str, columns: Sequence[str], touch: str) -> str:
        """INSERT OR IGNORE: the writer already holds the database's lock."""
        return self.insert_sql(table, columns).replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
