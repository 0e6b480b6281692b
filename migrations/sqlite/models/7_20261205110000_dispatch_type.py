"""The job's type on its outbox row, so a relay claims only rows it can publish.

See the MySQL migration of the same number. No MODELS_STATE: written by hand like migration 6.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "job_dispatch" ADD "type" VARCHAR(100) NOT NULL DEFAULT '';
        UPDATE "job_dispatch" SET "type" = (SELECT "type" FROM "jobs" WHERE "jobs"."id" = "job_dispatch"."job_id");"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "job_dispatch" DROP COLUMN "type";"""
