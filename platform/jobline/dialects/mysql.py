"""MySQL and MariaDB (aiomysql under Tortoise; pymysql for the worker's direct path)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pymysql
from pymysql.constants import CLIENT
from tortoise.exceptions import IntegrityError, OperationalError

from jobline.dialects.base import Dialect

# MySQL/MariaDB errors about the data of a statement, not the connection or the server:
# a NULL, a value out of range or too long, bad text or JSON, a CHECK or a foreign key.
DATA_ERRNOS = frozenset(
    {
        1048,  # ER_BAD_NULL_ERROR
        1264,  # ER_WARN_DATA_OUT_OF_RANGE
        1265,  # WARN_DATA_TRUNCATED
        1292,  # ER_TRUNCATED_WRONG_VALUE
        1300,  # ER_INVALID_CHARACTER_STRING
        1366,  # ER_TRUNCATED_WRONG_VALUE_FOR_FIELD (text the charset cannot hold)
        1406,  # ER_DATA_TOO_LONG
        1451,  # ER_ROW_IS_REFERENCED_2
        1452,  # ER_NO_REFERENCED_ROW_2
        1690,  # ER_DATA_OUT_OF_RANGE
        3140,  # ER_INVALID_JSON_TEXT (MySQL)
        3819,  # ER_CHECK_CONSTRAINT_VIOLATED (MySQL)
        4025,  # ER_CONSTRAINT_FAILED (MariaDB: a CHECK, e.g. JSON_VALID of a JSON column)
    }
)

# A table or column the code reads is missing: migrations not applied.
SCHEMA_ERRNOS = frozenset({1054, 1146})  # ER_BAD_FIELD_ERROR, ER_NO_SUCH_TABLE


class MySQL(Dialect):
    """MySQL/MariaDB: `%s` placeholders, backquotes, row locks, index hints."""

    name: ClassVar[str] = "mysql"
    label: ClassVar[str] = "MySQL"
    quote: ClassVar[str] = "`"
    mark: ClassVar[str] = "%s"
    supports_for_update: ClassVar[bool] = True
    # aiomysql connects with CLIENT_MULTI_STATEMENTS.
    pipelines: ClassVar[bool] = True
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
    data_errors: ClassVar[tuple[type[Exception], ...]] = (
        pymysql.err.DataError,
        pymysql.err.IntegrityError,
    )
    supports_named_locks: ClassVar[bool] = True
    now_ms: ClassVar[str] = "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000 AS SIGNED)"

    def insert_if_one_changed_sql(
        self, table: str, columns: Sequence[str], rows: int, order: str
    ) -> str | None:
        """INSERT ... SELECT of the values WHERE ROW_COUNT() = 1: the previous statement's
        count, the same in every row. ORDER BY fixes the order the ids are given in. A
        binary log in STATEMENT format marks it unsafe (ROW_COUNT()); MIXED, the default,
        logs it by row."""
        row = f"SELECT {self.marks(len(columns))} FROM DUAL WHERE ROW_COUNT() = 1"
        names = ", ".join(self.ident(c) for c in columns)
        rows_sql = " UNION ALL ".join([row] * rows)
        return (
            f"INSERT INTO {self.ident(table)} ({names}) {rows_sql}"
            f" ORDER BY {list(columns).index(order) + 1}"
        )

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

    def as_tortoise_error(self, exc: Exception) -> Exception:
        """IntegrityError or OperationalError, as Tortoise's client (translate_exceptions)."""
        if isinstance(exc, pymysql.err.IntegrityError):
            return IntegrityError(exc)
        if isinstance(exc, pymysql.err.MySQLError):
            return OperationalError(exc)
        return exc

    def refuses_data(self, exc: BaseException) -> bool | None:
        """A DataError or IntegrityError, or an error whose number is one of DATA_ERRNOS."""
        if isinstance(exc, self.data_errors):
            return True
        if isinstance(exc, pymysql.err.MySQLError) and exc.args:
            return exc.args[0] in DATA_ERRNOS
        return None

    def lacks_schema(self, exc: BaseException) -> bool:
        """ER_BAD_FIELD_ERROR (1054) or ER_NO_SUCH_TABLE (1146)."""
        return (
            isinstance(exc, pymysql.err.MySQLError)
            and bool(exc.args)
            and (exc.args[0] in SCHEMA_ERRNOS)
        )

    def first_free_lock_sql(self, key_columns: Sequence[str], count: int) -> str:
        """GET_LOCK of each name in turn, without waiting. Names are server-wide: the
        database's name is in them, hashed with the key to stay within the 64 characters
        MariaDB allows."""
        key = ", '/', ".join(self.ident(c) for c in key_columns)
        prefix = f"CONCAT('jobline:', SHA1(CONCAT(DATABASE(), '/', {key})), ':')"
        whens = " ".join(
            f"WHEN GET_LOCK(CONCAT({prefix}, {i}), 0) = 1 THEN CONCAT({prefix}, {i})"
            for i in range(count)
        )
        return f"CASE {whens} ELSE NULL END"

    def release_lock_sql(self) -> str:
        """DO RELEASE_LOCK(name)."""
        return f"DO RELEASE_LOCK({self.mark})"

    # Names are server-wide: the database's name goes in, hashed to stay within 64 characters.
    _DATABASE_LOCK = "CONCAT({mark}, SHA1(DATABASE()))"

    def database_lock_sql(self) -> str:
        """GET_LOCK(name + SHA1(DATABASE()), timeout)."""
        return f"SELECT GET_LOCK({self._DATABASE_LOCK.format(mark=self.mark)}, {self.mark}) AS got"

    def database_unlock_sql(self) -> str:
        """DO RELEASE_LOCK(name + SHA1(DATABASE()))."""
        return f"DO RELEASE_LOCK({self._DATABASE_LOCK.format(mark=self.mark)})"

    def ids_are_consecutive(self, value: Any) -> bool:
        """innodb_autoinc_lock_mode 0 or 1: a multi-row INSERT's ids are consecutive."""
        return int(value) <= 1

    def sync_connector(self, database_url: str) -> Callable[[], Any] | None:
        """A function opening an autocommit pymysql connection to a mysql:// URL, several
        statements allowed per request.

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
                # Several statements per request (jobs/direct.py: BEGIN with the UPDATE, the
                # INSERT with the COMMIT): a round trip each saved. Every value is still
                # bound by the driver, never pasted into the text.
                client_flag=CLIENT.MULTI_STATEMENTS,
            )

        return connect
