"""The audit writer: requests hand it a record and go on; it inserts them in batches.

Load shedding: records wait in a bounded in-memory queue (JOBLINE_AUDIT_QUEUE_MAX). When
the database is slower than the requests and the queue is full, the NEW record is dropped
(the request is never delayed) and `jobline_audit_dropped_total{reason="queue_full"}`
counts it. A batch whose INSERT fails is dropped too (`reason="write_error"`), with a
warning: the audit log never holds requests back while the database is in trouble.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jwt
from tortoise import connections

from jobline.accounts.sessions import COOKIE_AUDIENCE
from jobline.audit.models import CLIENT_MAX, METHOD_MAX, REQUEST_ID_MAX, ROUTE_MAX, AuditRow
from jobline.compat.tortoise import meta
from jobline.dialects import dialect_of
from jobline.metrics import AUDIT_DROPPED, AUDIT_WRITTEN
from jobline.waiting import wait_event

log = logging.getLogger("jobline.audit")

# fastapi-users signs bearer tokens for its audience, our cookie sessions for theirs; HS256.
TOKEN_AUDIENCE = ["fastapi-users:auth", COOKIE_AUDIENCE]
TOKEN_ALGORITHMS = ["HS256"]
# Distinct tokens whose user id is remembered; a client sends the same token many times.
TOKEN_CACHE_SIZE = 4096
CONNECTION = "default"
COLUMNS = ("at", "method", "route", "status", "user_id", "latency_ms", "client", "request_id")


@dataclass(slots=True)
class AuditRecord:
    """One request as the middleware saw it.

    `credential` (a bearer token or the auth cookie) stays in memory only: the writer
    reads the user id from it and never stores it.
    """

    at: datetime
    method: str
    route: str
    status: int
    latency_ms: float
    client: str | None
    request_id: str
    credential: str | None = None


class AuditWriter:
    """A bounded queue and one task that drains it into `audit_log`."""

    def __init__(
        self, secret: str, *, queue_max: int, batch_max: int, flush_seconds: float
    ) -> None:
        self.queue: asyncio.Queue[AuditRecord] = asyncio.Queue(maxsize=queue_max)
        self.batch_max = batch_max
        self.flush_seconds = flush_seconds
        self._batch_ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

        @lru_cache(maxsize=TOKEN_CACHE_SIZE)
        def user_of(token: str) -> uuid.UUID | None:
            # The signature proves who the token names; expiry does not matter for the record.
            try:
                claims = jwt.decode(
                    token,
                    secret,
                    algorithms=TOKEN_ALGORITHMS,
                    audience=TOKEN_AUDIENCE,
                    options={"verify_exp": False},
                )
                return uuid.UUID(str(claims["sub"]))
            except (jwt.PyJWTError, KeyError, ValueError):
                return None

        self._user_of = user_of

    def offer(self, record: AuditRecord) -> None:
        """Queue a record without waiting; when the queue is full it is dropped and counted."""
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            AUDIT_DROPPED.labels("queue_full").inc()
            return
        if self.queue.qsize() >= self.batch_max:
            self._batch_ready.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jobline-audit-writer")

    async def close(self) -> None:
        """Stop the task and write what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self.queue.empty():
            await self._write(self._drain([]))

    async def _run(self) -> None:
        while True:
            first = await self.queue.get()
            if self.queue.qsize() + 1 < self.batch_max:
                # Wait for a full batch, at most flush_seconds: few INSERTs under load,
                # a short delay when idle.
                await wait_event(self._batch_ready, self.flush_seconds)
            self._batch_ready.clear()
            await self._write(self._drain([first]))

    def _drain(self, batch: list[AuditRecord]) -> list[AuditRecord]:
        while len(batch) < self.batch_max:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _write(self, batch: list[AuditRecord]) -> None:
        rows = [self.values_of(r) for r in batch]
        try:
            connection = connections.get(CONNECTION)
            # One multi-row INSERT of plain tuples: building a Tortoise model per row cost
            # more CPU than everything else the audit log does (bench/audit_overhead).
            insert = dialect_of(connection).insert_sql(meta(AuditRow).db_table, COLUMNS)
            await connection.execute_many(insert, rows)
        except Exception as exc:
            AUDIT_DROPPED.labels("write_error").inc(len(rows))
            log.warning("audit: %d record(s) dropped, the write failed: %s", len(rows), exc)
        else:
            AUDIT_WRITTEN.inc(len(rows))

    def values_of(self, record: AuditRecord) -> tuple[Any, ...]:
        """The stored columns (COLUMNS order): the user id instead of the credential, capped."""
        user_id = self._user_of(record.credential) if record.credential else None
        return (
            record.at,
            record.method[:METHOD_MAX],
            record.route[:ROUTE_MAX],
            record.status,
            str(user_id) if user_id else None,
            record.latency_ms,
            record.client[:CLIENT_MAX] if record.client else None,
            record.request_id[:REQUEST_ID_MAX],
        )
