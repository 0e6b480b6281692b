"""Workers' heartbeats (issue 16, 1b): a running job whose worker is gone recovers.

`workers`: one row per worker process, beaten by it every few seconds (jobs/workers.py).
`jobs.worker`: the node name of the worker running the job (from its `started` event,
cleared when it stops running), so the running jobs of a worker gone silent are found
through the jobs' state index. Nothing to fill in: a job that is not running names no
worker, and one running now, started by a worker of the previous version, names none until
its next attempt (the previous version's recovery, a redelivery, still covers it).

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
