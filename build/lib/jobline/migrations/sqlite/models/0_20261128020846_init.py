from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE IF NOT EXISTS "job_events" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "job_id" CHAR(36) NOT NULL,
    "seq" INT NOT NULL,
    "type" VARCHAR(24) NOT NULL /* SUBMITTED: submitted\nQUEUED: queued\nSTARTED: started\nPROGRESS: progress\nRETRYING: retrying\nSUCCEEDED: succeeded\nFAILED: failed\nCANCEL_REQUESTED: cancel_requested\nCANCELLED: cancelled\nWORKER_LOST: worker_lost */,
    "attempt" INT NOT NULL,
    "at" TIMESTAMP NOT NULL,
    "data" JSON NOT NULL,
    "owner_id" CHAR(36) NOT NULL,
    CONSTRAINT "uid_job_events_job_id_bb394e" UNIQUE ("job_id", "seq")
) /* One event, never updated or deleted; id orders events across jobs for feeds. */;
CREATE INDEX IF NOT EXISTS "idx_events_owner" ON "job_events" ("owner_id", "id");
CREATE TABLE IF NOT EXISTS "jobs" (
    "id" CHAR(36) NOT NULL PRIMARY KEY,
    "type" VARCHAR(100) NOT NULL,
    "queue" VARCHAR(100) NOT NULL,
    "state" VARCHAR(16) NOT NULL /* PENDING: pending\nQUEUED: queued\nRUNNING: running\nRETRYING: retrying\nSUCCEEDED: succeeded\nFAILED: failed\nCANCELLED: cancelled */,
    "progress" SMALLINT NOT NULL,
    "message" TEXT,
    "attempt" INT NOT NULL,
    "priority" SMALLINT NOT NULL,
    "payload" JSON NOT NULL,
    "result" JSON,
    "error" JSON,
    "owner_id" CHAR(36) NOT NULL,
    "last_seq" INT NOT NULL,
    "cancel_requested" INT NOT NULL,
    "task_id" VARCHAR(64),
    "idempotency_key" VARCHAR(255),
    "request_hash" VARCHAR(64),
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL,
    "started_at" TIMESTAMP,
    "finished_at" TIMESTAMP,
    CONSTRAINT "uid_jobs_owner_i_cbd62b" UNIQUE ("owner_id", "idempotency_key")
) /* The current view of one job, rewritten from its events in the transaction appending them. */;
CREATE INDEX IF NOT EXISTS "idx_jobs_owner_created" ON "jobs" ("owner_id", "created_at", "id");
CREATE INDEX IF NOT EXISTS "idx_jobs_owner_state" ON "jobs" ("owner_id", "state", "created_at", "id");
CREATE INDEX IF NOT EXISTS "idx_jobs_created" ON "jobs" ("created_at", "id");
CREATE INDEX IF NOT EXISTS "idx_jobs_state" ON "jobs" ("state", "created_at", "id");
CREATE TABLE IF NOT EXISTS "users" (
    "id" CHAR(36) NOT NULL PRIMARY KEY,
    "email" VARCHAR(320) NOT NULL UNIQUE,
    "hashed_password" VARCHAR(1024) NOT NULL,
    "is_active" INT NOT NULL,
    "is_superuser" INT NOT NULL,
    "is_verified" INT NOT NULL,
    "created_at" TIMESTAMP NOT NULL
) /* An account; a superuser sees every job. */;
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSON NOT NULL
);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        """


MODELS_STATE = (
    "eJztW2tz2jgU/Ssaf2pnsp2EJCSb7uwMJG5Kl0CXx7bbx3iELcAbW6KWXcJ089/3SviBn8"
    "EEUsjyJcXSPZZ87tXjSLc/FJsZxOKv3rGB+p1Qt8OmygX6oVBsE/iRVX2AFDyZRJWiwMUD"
    "S9r/wwYaEZayGA+462DdhZohtjiBIoNw3TEnrsmosG9TgqT9AaLwr4O8iYFdYiDmIHg5gZ"
    "+vkSkeDeLwuSlHWHcY5wga42gIlkNCDP5KtGgwHZo06WgTL/eo+c0jmstGxB0TB5r4/Fl+"
    "sWmIak6+KV+/wg+TGuSOcFH/QxmaxDLkb4VNKXF8Y/grTMndxCGcAxvSRBQF1JvGnU+lJo"
    "GS59lE1ikSCtzKh3sBm9xqsqmY++ZtyXItwNbNUYO6b6StYGyg6czybBrZT2bumNEQYFJX"
    "lI4IdELQB2Wu4wlnUs+yfM8H/p1zFJnMuVjAGGSIPUuEhEDPOxCVKZrWave0rtrTNCUVLg"
    "Fiwcl+kQ4EAh2mCDxBwEh04ZdfK5Xj47PK4XH1/PTk7Oz0/PAcbGV/01Vn9/PORGzNXyU5"
    "a1w3Wj3RIQbxPA91UXAvMdjFWuTmiP0oNOIe6PcbV9n8R4iEDzzPNF4JXNITAe9FrggKIl"
    "9Eo/EJnFHA6+XbWufFcfWl/GLG3ZEjKyVDktyITDG6UkzmBrJv/XAk7wB/fjBXjk7OTs6P"
    "qydhDIclRaEbhGnEpGQjReXlGDsq9WzJZwM6gKlOUrwG2ASx0N3tIVbp9us3jV5PvbpA3B"
    "vYpgs9+kL/7Kt9UQRNe+K526t15jYudqTF+077uqN2uxdo4jARivwL7ai9zt+N1vUFcojr"
    "zMBPgOxfXqrq1fz9ug7rg0C/qTWaomiITUs8X9Zal2pT66jQcFc2pAtKLc0h0AXuRjbNqF"
    "IiP7Q7f6gdrdnu9i7QlDm3sGpYMDqSC1xOuNj4TrMIHbljESMnBbHxV60jR2Dl5GV8bmv5"
    "NRVZFQ8fDHTaE7fEYFxA7AdkxoDEGWReAR2uaZM8RjPINHzIq+DHDlJbwFuvcQPjqHbzXr"
    "ze5vybJXmq9VRRU5Gls0Tpi2oisMOXoA+N3lskHtGndktNLkChXe+TIvqEPZdplE01bCxy"
    "EhQHRTG3in1B2rHvuu1WtlMD+6RbTd1F/yLL5Ls4VgocKpiI+TKYdV7c1D4mJ6TLZruedJ"
    "J4QT0xlhb32MvuuhYx+30XECr0xPB2YU8rCgZYv51ix9BSNazC8mzTVXbFTpZgikeSHvEd"
    "oteR6szXo8tI0SVFaG9MkO45Dmgt9N0kU8SGiIF2hDccwLI/dcQOgqKhw2xkuqFQNCkCGQ"
    "i6BlMO74eXIegNoQY4RdTYaUW60ZYy5Wlcc8IyzKABfabdktnyYlV3iAh7bb7sLCddBf1z"
    "4ar58AIBK0ZwTtuwO3PJGjoRvme5LqzcWumPffwHPvRppY4H8qfJ9U+QD58RKL8NPTqPeN"
    "mS+HPyu7J1M+ZBwTFAvt7K5nkXNNbye+WYGjk6PFxCjoBVrh6RdfElXwq6MgSHgD3DyzEc"
    "TjCrHBmE4G1mW3mvtq6kzPeX1fR5Qaffas0PAjxKpcVjzwbiun8VdX9UXcbZSRG04Otq0t"
    "XByUfa210bW1auxl/EPZ3IP9zUmJor/OPKWTUU9+KhSNd3b2rNZlrc20AKbG/TfPZghc7m"
    "cgGy0pjxV9FtmaCKNL36sVcsAUNJ32y3rgPzpC7cyQOqo83G7tpOpyaOyUCXzMrPCBFuPy"
    "MsEopnFsMZW+/8o6EFyP506BGnQ1Al+l+C+QjxKOJ3Z0reCO/EcZhThvYQsGd9fxa6NXfQ"
    "FuauVu4iehHybFbBte0tkjeiaWLrjFkE02xys+AJkgeA3xTLYcnTBmy93W7G5op6I7kr7t"
    "/UVRB+MqbByHRJNv8u5reZE0TB6VQEeQ7iJK6nq8vcllfzb8urqdvy5Jl7CaYzoM+P8crp"
    "6TIJCqen+RkKoi65zZMTgjbGfFyG8STu+dG9/gCP31qUSWKII/fJDFudzOCnzq7g5jhy7+"
    "atdrOfC7eCm+PINbh5y+bR5+TloUlNPl7JzQno3s/b5uctyd3pc5mBksrckeUHRXk7Hlgs"
    "mbhTowjrOvOo+xphxL0JcQQacUJk7owzE5k16TScEriMpJpE1sw+u+KnZlcQG5tWmU1+CF"
    "jPffTP/X8usc39cWWZu3+wyt3ey7r4/l5oIZjuJ5jzKXNKHRVkQLc5B2DljIulcuyFWUHO"
    "RTrP3uSayPX7nnF1XHgoFsM94WlYEPc7exgGxIVLQXnOY9D9IWQ53mHJNaGVsue/CeSe9R"
    "Ks789t8ud3+ECjTa2ZP6vtiCTwJ+BtVQQ1GKn6WMnQBH5NoSrAkc1DsiDfz2vezP9f/hv1"
    "I6/78vfuMHmLzPYye8oFyDPcS27kNkQMqhIM++bPkN2N5EZDiy6hpXKKFiD7bK6S+S0/dT"
    "G7/w/f1hJg"
)
