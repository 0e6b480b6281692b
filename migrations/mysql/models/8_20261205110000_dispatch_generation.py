"""The dispatch generation (issue 16.1) and the index the reconciler counts queued jobs by.

`generation` is bumped when the reconciler publishes a job again (a `requeued` event); a
worker drops a message of an older generation. Every stored job, and every message
published before this migration (which names no generation), is generation 1.

`idx_jobs_queue_state` lets one round of reconciliation count a domain's queued jobs from
the index alone; it changes only when a job changes state, as `idx_jobs_state` does.

No MODELS_STATE, as in migration 6: aerich records the models as they are when this runs.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `jobs` ADD `generation` INT NOT NULL DEFAULT 1;
        ALTER TABLE `jobs` ADD INDEX `idx_jobs_queue_state` (`queue`, `state`);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `jobs` DROP INDEX `idx_jobs_queue_state`;
        ALTER TABLE `jobs` DROP COLUMN `generation`;"""
