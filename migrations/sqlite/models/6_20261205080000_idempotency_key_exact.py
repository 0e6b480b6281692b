"""Idempotency-Key compared exactly (issue 13.6): nothing to change on SQLite.

SQLite compares text with its BINARY collation unless a column says otherwise, and
`jobs.idempotency_key` does not: `Order-abc` and `ORDER-ABC` were two keys already. The
file keeps the two dialects' migration lists alike.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return ""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return ""
