"""Session-wide test setup: a private MariaDB database and RabbitMQ vhost per run.

The services themselves are started by scripts/test (deploy/local/services up). A test
run never skips because a service is missing: it stops with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pymysql
import pytest

from jobline.config import Settings, get_settings
from tests.support import REPO, add_vhost, drop_vhost

RUN_ID = uuid.uuid4().hex[:8]
MYSQL_ADMIN_URL = os.environ.get(
    "JOBLINE_TEST_DATABASE_URL", "mysql://jobline:jobline@127.0.0.1:3306/jobline_test"
)
AMQP_ADMIN_URL = os.environ.get(
    "JOBLINE_TEST_BROKER_URL", "amqp://jobline:jobline@127.0.0.1:5672/jobline_test"
)


def _mysql_parts(url: str) -> dict[str, object]:
    rest = url.split("://", 1)[1]
    creds, hostpart = rest.rsplit("@", 1)
    user, password = creds.split(":", 1)
    hostport, _, db = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    return {"user": user, "password": password, "host": host, "port": int(port or 3306), "db": db}


def _admin_connection() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    parts = _mysql_parts(MYSQL_ADMIN_URL)
    try:
        return pymysql.connect(
            host=parts["host"],
            port=parts["port"],
            user=parts["user"],
            password=parts["password"],
            autocommit=True,
            # A DROP waiting on a lock a leaked transaction holds fails after a minute
            # instead of hanging the run (MariaDB's default is a year).
            init_command="SET SESSION lock_wait_timeout = 60",
        )
    except pymysql.err.OperationalError as exc:
        pytest.exit(
            f"MariaDB is not reachable ({exc}); run deploy/local/services up (scripts/test does)", 3
        )


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """A fresh database for this run, dropped afterwards."""
    parts = _mysql_parts(MYSQL_ADMIN_URL)
    name = f"jobline_test_{RUN_ID}"
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    yield f"mysql://{parts['user']}:{parts['password']}@{parts['host']}:{parts['port']}/{name}"
    # A new connection: the fault tests restart MariaDB, which ends the first one.
    conn.close()
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ vhost for this run (so parallel runs never share queues)."""
    vhost = f"jobline_test_{RUN_ID}"
    try:
        url = add_vhost(AMQP_ADMIN_URL, vhost)
    except httpx.HTTPError as exc:
        pytest.exit(
            f"RabbitMQ's management API is not reachable ({exc}); run deploy/local/services up", 3
        )
    yield url
    drop_vhost(AMQP_ADMIN_URL, vhost)


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def stack_env(mysql_url: str, amqp_url: str, var_dir: Path) -> Iterator[dict[str, str]]:
    """JOBLINE_* for the production stack; set in this process too, so get_settings() agrees."""
    env = {
        "JOBLINE_ENV": "test",
        "JOBLINE_DATABASE_URL": mysql_url,
        "JOBLINE_BROKER_URL": amqp_url,
        "JOBLINE_SECRET_KEY": "test-secret-" + "x" * 40,
        "JOBLINE_VAR_DIR": str(var_dir),
        "JOBLINE_QUEUES_FILE": str(REPO / "queues.yaml"),
        "JOBLINE_PROGRESS_MIN_INTERVAL_MS": "50",
        # Every test registers its users from 127.0.0.1; the registration limit per
        # address has a test of its own (tests/integration/test_accounts.py).
        "JOBLINE_REGISTRATIONS_PER_ADDRESS": "1000000",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def migrated(settings: Settings) -> AsyncIterator[Settings]:
    """The run's database with the committed migrations applied by `jobline migrate`'s code."""
    from jobline.db import apply_migrations, close_db

    applied = await apply_migrations(settings)
    assert applied, "the initial migration should apply to a fresh database"
    await close_db()
    yield settings
