"""One transaction's statements in as few requests to the database as its reads allow.

Under load, each request to MariaDB costs a batch of submits (jobs/batching.py) a turn of
the API's busy event loop: about 1 ms per statement at 800 submits/s, measured, with
eleven statements per batch (six to store it, five to record its `queued` events). A
write whose answer nothing waits for (an INSERT, a DELETE, the COMMIT) need not travel
alone: here it waits, and goes with the next statement whose answer is awaited, or with
the COMMIT; START TRANSACTION goes with the first. MariaDB runs the statements of one
request in order and stops at the first that fails (aiomysql's connections allow several
per request, CLIENT_MULTI_STATEMENTS), so the transaction is what it was, statement for
statement: storing a batch takes two requests, not six; its `queued` events two, not five.

Only where the dialect says so (`pipelines`: MariaDB/MySQL); on SQLite, a file without
round trips, each statement runs at once under Tortoise's own transaction.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from jobline.dialects import dialect_of

log = logging.getLogger("jobline.jobs")
BEGIN = "START TRANSACTION"
COMMIT = "COMMIT"


@dataclass
class Statement:
    """A statement sent, or waiting to be: its answer once it ran."""

    text: str
    rowcount: int = -1
    lastrowid: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


class Pipelined:
    """A transaction on one pooled aiomysql connection whose writes may wait (`defer`).

    It answers the calls the store's statements make on a Tortoise connection
    (execute_query, execute_query_dict, execute_insert, capabilities), each sending what
    waits with it. Errors are Tortoise's, as its own client raises them.
    """

    def __init__(self, raw: Any, client: Any) -> None:
        self.raw = raw
        self.capabilities = client.capabilities
        self.dialect = dialect_of(client)
        self._waiting: list[Statement] = [Statement(BEGIN)]
        self._sent = False
        self._instants: dict[datetime, str] = {}

    def defer(self, query: str, values: Sequence[Any] = ()) -> Statement:
        """A write sent with the next statement awaited, or with the COMMIT."""
        statement = Statement(self._text(query, values))
        self._waiting.append(statement)
        return statement

    async def execute_query(
        self, query: str, values: Sequence[Any] | None = None
    ) -> tuple[int, list[dict[str, Any]]]:
        statement = await self._run(query, values or ())
        return statement.rowcount, statement.rows

    async def execute_query_dict(
        self, query: str, values: Sequence[Any] | None = None
    ) -> list[dict[str, Any]]:
        return (await self._run(query, values or ())).rows

    async def execute_insert(self, query: str, values: Sequence[Any]) -> int:
        return (await self._run(query, values)).lastrowid

    async def commit(self) -> None:
        self._waiting.append(Statement(COMMIT))
        await self._flush()

    async def rollback(self) -> None:
        """Undo what was sent. A connection that cannot is closed, not pooled again: the
        error that led here is the one worth raising, not this one."""
        self._waiting.clear()
        if not self._sent:
            return  # nothing reached the database, not even START TRANSACTION
        try:
            await self.raw.rollback()
        except Exception:
            log.debug("rolling back a pipelined transaction failed", exc_info=True)
            self.raw.close()

    def _text(self, query: str, values: Sequence[Any]) -> str:
        # What aiomysql's cursor.execute(query, values) sends: each value escaped by the
        # connection, then put in the query's %s marks.
        return query % tuple(self._literal(value) for value in values) if values else query

    def _literal(self, value: Any) -> str:
        if type(value) is datetime:
            # A batch's rows share their few instants (created, updated, the event's, the
            # outbox row's): each is escaped once, not once per row and column.
            text = self._instants.get(value)
            if text is None:
                text = self._instants[value] = self.raw.literal(value)
            return text
        return str(self.raw.literal(value))

    async def _run(self, query: str, values: Sequence[Any]) -> Statement:
        statement = self.defer(query, values)
        await self._flush()
        return statement

    async def _flush(self) -> None:
        statements, self._waiting = self._waiting, []
        if not statements:
            return
        self._sent = True
        try:
            async with self.raw.cursor() as cursor:
                await cursor.execute(";".join(s.text for s in statements))
                for index, statement in enumerate(statements):
                    if index:
                        await cursor.nextset()
                    statement.rowcount = cursor.rowcount
                    statement.lastrowid = cursor.lastrowid or 0
                    rows = await cursor.fetchall()
                    if rows:
                        names = [column[0] for column in cursor.description]
                        statement.rows = [dict(zip(names, row, strict=True)) for row in rows]
        except Exception as exc:
            raise self.dialect.as_tortoise_error(exc) from exc


@contextlib.asynccontextmanager
async def transaction(connection_name: str) -> AsyncIterator[Any]:
    """A transaction whose connection may hold writes back (`defer`, with `write()`),
    committed when the block ends, rolled back when it raises."""
    client = connections.get(connection_name)
    if not dialect_of(client).pipelines:
        async with in_transaction(connection_name) as conn:
            yield conn
        return
    try:
        acquired = client.acquire_connection()
        raw = await acquired.__aenter__()
    except Exception as exc:
        raise dialect_of(client).as_tortoise_error(exc) from exc
    try:
        tx = Pipelined(raw, client)
        try:
            yield tx
            await tx.commit()
        except Exception:
            await tx.rollback()
            raise
        except BaseException:
            # Cancelled mid-request: what the connection has still to read is unknown.
            raw.close()
            raise
    finally:
        await acquired.__aexit__(None, None, None)


async def write(conn: Any, query: str, values: Sequence[Any], *, insert: bool = False) -> Statement:
    """A write on `conn`: held back with a pipelined transaction (its answer is in the
    Statement once the transaction commits), else run at once.

    `insert`: the answer wanted is the INSERT's first auto-increment id (`lastrowid`).
    """
    if isinstance(conn, Pipelined):
        return conn.defer(query, values)
    if insert:
        return Statement(query, lastrowid=int(await conn.execute_insert(query, list(values))))
    count, _ = await conn.execute_query(query, list(values))
    return Statement(query, rowcount=int(count))
