"""A Tortoise SQLite engine whose transactions take the write lock first (BEGIN IMMEDIATE).

With several processes on one SQLite file (the API and a worker per domain under
`jobline dev`), Tortoise's deferred `BEGIN` fails at once with "database is locked" when a
transaction that has read something then writes after another process committed: its
snapshot is stale (SQLITE_BUSY_SNAPSHOT) and the busy timeout cannot help. Every jobline
transaction reads the job row and then appends to it, so here each one starts as the writer
and waits its turn (PRAGMA busy_timeout) instead. Reads outside transactions never block.

Used as the `engine` of the SQLite connection in jobline.config.tortoise_config.
"""

from __future__ import annotations

import sqlite3

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.exceptions import OperationalError


class ImmediateTransactionWrapper(SqliteTransactionWrapper):
    """A transaction that holds SQLite's write lock from its first statement."""

    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            # Still locked after busy_timeout: an operational error the worker retries.
            raise OperationalError(exc) from exc


class ImmediateSqliteClient(SqliteClient):
    """Tortoise's SQLite client, with BEGIN IMMEDIATE transactions."""

    def _in_transaction(self) -> TransactionContext:
        return SqliteTransactionContext(ImmediateTransactionWrapper(self), self._lock)


client_class = ImmediateSqliteClient
