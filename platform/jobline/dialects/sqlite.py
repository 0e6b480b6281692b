"""SQLite, the embedded default (through jobline.sqlite_engine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from jobline.dialects.base import Dialect


class SQLite(Dialect):
    """SQLite: `?` placeholders, no row locks (writers run one at a time), no hints."""

    name: ClassVar[str] = "sqlite"
    quote: ClassVar[str] = '"'
    mark: ClassVar[str] = "?"
    supports_for_update: ClassVar[bool] = False
    supports_skip_locked: ClassVar[bool] = False
    force_index: ClassVar[bool] = False

    def insert_if_absent_sql(self, table: str, columns: Sequence[str], touch: str) -> str:
        """INSERT OR IGNORE: the writer already holds the database's lock."""
        return self.insert_sql(table, columns).replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
