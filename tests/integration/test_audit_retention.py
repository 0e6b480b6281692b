"""The audit log prunes itself (issue 13.11): an API server deletes rows past
JOBLINE_AUDIT_RETENTION_DAYS every JOBLINE_AUDIT_PRUNE_INTERVAL_SECONDS. Real server, MariaDB."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from jobline.config import Settings
from tests.conftest import _mysql_parts
from tests.support import WAIT_SECONDS, start_server

pytestmark = pytest.mark.integration

INSERT = (
    "INSERT INTO audit_log (at, method, route, status, user_id, latency_ms, client, request_id) "
    "VALUES (UTC_TIMESTAMP(6) - INTERVAL %s HOUR, 'GET', '/api/v1/jobs', 401, NULL, 1.0, "
    "'10.0.0.1', %s)"
)


def connect(mysql_url: str) -> Any:
    parts = _mysql_parts(mysql_url)
    return pymysql.connect(
        host=str(parts["host"]),
        port=int(str(parts["port"])),
        user=str(parts["user"]),
        password=str(parts["password"]),
        database=str(parts["db"]),
        autocommit=True,
    )


def remaining(conn: Any, marker: str) -> set[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT request_id FROM audit_log WHERE request_id LIKE %s", [f"{marker}%"])
        return {row[0] for row in cur.fetchall()}


@pytest.fixture
def old_and_new_rows(migrated: Settings, mysql_url: str) -> Iterator[tuple[Any, str]]:
    """Rows of 2, 25 and 30 days ago and of an hour ago, marked with this test's prefix."""
    marker = f"retention-{uuid.uuid4().hex[:8]}-"
    conn = connect(mysql_url)
    with conn.cursor() as cur:
        for hours in (1, 2 * 24, 25 * 24, 30 * 24):
            cur.execute(INSERT, [hours, f"{marker}{hours}h"])
    yield conn, marker
    conn.close()


def test_the_api_prunes_audit_rows_past_the_retention_on_its_schedule(
    old_and_new_rows: tuple[Any, str], stack_env: dict[str, str], logdir: Path
) -> None:
    conn, marker = old_and_new_rows
    assert len(remaining(conn, marker)) == 4
    env = {
        **stack_env,
        "JOBLINE_AUDIT_RETENTION_DAYS": "1",
        "JOBLINE_AUDIT_PRUNE_INTERVAL_SECONDS": "0.5",
        "JOBLINE_AUDIT_PRUNE_BATCH": "2",  # more rows than one batch: it loops
    }
    server, base = start_server(env, logdir)
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while remaining(conn, marker) != {f"{marker}1h"}:
            assert time.monotonic() < deadline, remaining(conn, marker)
            time.sleep(0.2)
        # A row that ages past the retention while the server runs goes at the next round.
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE audit_log SET at = at - INTERVAL 2 DAY WHERE request_id = %s",
                [f"{marker}1h"],
            )
        while remaining(conn, marker):
            assert time.monotonic() < deadline, remaining(conn, marker)
            time.sleep(0.2)
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        assert "pruned" in server.output()
    finally:
        server.stop()
