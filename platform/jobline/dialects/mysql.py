"""MySQL and MariaDB (aiomysql under Tortoise; pymysql for the worker's direct path)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pymysql

from jobline.dialects.base import Dialect


class MySQL(Dialect):
    """MySQL/MariaDB: `%s` placeholders, backquotes, row locks, index hints."""

    name: ClassVar[str] = "mysql"
    label: ClassVar[str] = "MySQL"
    quote: ClassVar[str] = "`"
    mark: ClassVar[str] = "%s"
    supports_for_update: ClassVar[bool] = True
    supports_skip_locked: ClassVar[bool] = True
    # MariaDB picks a poor plan for keyset pages without the hint.
    force_index: ClassVar[bool] = True
    # InnoDB gives the rows of one multi-row INSERT consecutive ids, LAST_INSERT_ID the
    # first, unless innodb_autoinc_lock_mode is 2 (interleaved).
    consecutive_ids_query: ClassVar[str | None] = "SELECT @@innodb_autoinc_lock_mode AS mode"
    # A connection lost mid-transaction: the rollback's "Not connected" escapes Tortoise
    # as pymysql's own error, and aiomysql's pool raises pymysql's errors too.
    unavailable_errors: ClassVar[tuple[type[Exception], ...]] = (
        pymysql.err.OperationalError,
        pymysql.err.InterfaceError,
    )
    driver_errors: ClassVar[tuple[type[Exception], ...]] = (pymysql.err.Error,)

    def insert_if_absent_sql(self, table: str, columns: Sequence[str], touch: str) -> str:
        """ON DUPLICATE KEY UPDATE `touch` = `touch`: a no-op that locks the present row."""
        column = self.ident(touch)
        return f"{self.insert_sql(table, columns)} ON DUPLICATE KEY UPDATE {column} = {column}"

    def tortoise_connection(
        self, database_url: str, *, pool_max: int, busy_timeout_ms: int
    ) -> str | dict[str, Any]:
        """The URL with utf8mb4 and the pool's size."""
        sep = "&" if "?" in database_url else "?"
        return f"{database_url}{sep}charset=utf8mb4&maxsize={pool_max}"

    def ids_are_consecutive(self, value: Any) -> bool:
        """innodb_autoinc_lock_mode 0 or 1: a multi-row INSERT's ids are consecutive."""
        return int(value) <= 1

    def sync_connector(self, database_url: str) -> Callable[[], Any] | None:
        """A function opening an autocommit pymysql connection to a mysql:// URL.

        None when the URL carries options (TLS, a socket, a charset...): they are Tortoise's
        to read, and a connection made without them could fail for ever where the store's
        works.
        """
        parts = urlsplit(database_url)
        if parts.query or parts.scheme != "mysql":
            return None

        def connect() -> Any:
            return pymysql.connect(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 3306,
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
                database=parts.path.lstrip("/"),
                charset="utf8mb4",
                autocommit=True,
            )

        return connect
