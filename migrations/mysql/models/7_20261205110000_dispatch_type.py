"""The job's type on its outbox row, so a relay claims only rows it can publish.

A relay whose queues.yaml did not know a type (an older API in a rolling deploy, an API
serving other domains) claimed that type's rows, failed to publish them and put them off
with its backoff, starving the relays that could. Existing rows take their job's type.

No MODELS_STATE: written by hand like migration 6; aerich records the models as they are.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `job_dispatch` ADD `type` VARCHAR(100) NOT NULL DEFAULT '';
        UPDATE `job_dispatch` d JOIN `jobs` j ON j.`id` = d.`job_id` SET d.`type` = j.`type`;"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `job_dispatch` DROP COLUMN `type`;"""
