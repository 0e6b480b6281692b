"""Idempotency-Key compared exactly (issue 13.6).

The column had the table's collation, utf8mb4_unicode_ci: case- and accent-insensitive,
so `Order-abc` found the job of `ORDER-ABC`, and the unique key refused the second one.
utf8mb4_nopad_bin compares the bytes, trailing spaces included (utf8mb4_bin pads them).

No MODELS_STATE: the models did not change (a collation is not in them), and without it
aerich records the models as they are when this runs, whatever migration 5 brought.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `jobs` MODIFY `idempotency_key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NULL;"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE `jobs` MODIFY `idempotency_key` VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL;"""
