"""Workers' heartbeats (issue 16, 1b): a running job whose worker is gone recovers.

`workers`: one row per worker process, beaten by it every few seconds (jobs/workers.py).
`jobs.worker`: the node name of the worker that started the job's current attempt, from
its `started` event, so the running jobs of a worker gone silent are found through the
jobs' state index. Jobs started before this migration name none (NULL) until their next
attempt.

No MODELS_STATE: aerich then records the models as they are when this runs.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "jobs" ADD "worker" VARCHAR(255);
        CREATE TABLE IF NOT EXISTS "workers" (
    "name" VARCHAR(255) NOT NULL PRIMARY KEY,
    "domain" VARCHAR(100) NOT NULL,
    "host" VARCHAR(255) NOT NULL,
    "pid" INT NOT NULL,
    "started_ms" BIGINT NOT NULL,
    "beat_ms" BIGINT NOT NULL,
    "stopped_ms" BIGINT
) /* One worker process (a Celery node, DOMAIN@host:pid) and when it last proved alive. */;"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS "workers";
        ALTER TABLE "jobs" DROP COLUMN "worker";"""
