"""Opening and closing the process's Tortoise connections, and applying the migrations."""

from __future__ import annotations

import sqlite3

import pymysql
from tortoise import Tortoise

from jobline.config import Settings, tortoise_config

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


async def open_db(settings: Settings) -> None:
    """Connect for the whole process: every task (request, SSE stream) shares the pool.

    Tortoise 1.x scopes an init to the calling task unless global fallback is on.
    """
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


async def apply_migrations(settings: Settings) -> list[str]:
    """Apply the committed aerich migrations of the configured database's dialect."""
    from aerich import Command

    location = settings.migrations_dir / settings.dialect
    config = tortoise_config(settings)
    command = Command(tortoise_config=config, app="models", location=str(location))
    # aerich skips its own init when the task's Tortoise context says it is initialised, even
    # one closed by close_db() or open on another database: init it for this database here.
    await Tortoise.init(config=config)
    async with command:
        await command.init()
        applied: list[str] = await command.upgrade(run_in_transaction=True)
    return applied


def refused_data(exc: BaseException) -> bool:
    """Whether the database refused the data of a statement (a value it cannot store).

    Such an error is the request's, not an outage: retrying it fails the same way, and
    answering 503 would invite a retry. Tortoise wraps the driver's error; the chain is
    followed to it.
    """
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, pymysql.err.DataError | pymysql.err.IntegrityError):
            return True
        if isinstance(seen, pymysql.err.MySQLError) and seen.args:
            return seen.args[0] in DATA_ERRNOS
        if isinstance(seen, sqlite3.DataError | sqlite3.IntegrityError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
