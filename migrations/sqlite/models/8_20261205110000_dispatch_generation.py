"""The dispatch generation (issue 16.1) and the index the reconciler counts queued jobs by.

See the MySQL migration of the same number: every stored job, and every message published
before it, is generation 1.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "jobs" ADD "generation" INT NOT NULL DEFAULT 1;
        CREATE INDEX IF NOT EXISTS "idx_jobs_queue_state" ON "jobs" ("queue", "state");"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP INDEX IF EXISTS "idx_jobs_queue_state";
        ALTER TABLE "jobs" DROP COLUMN "generation";"""
