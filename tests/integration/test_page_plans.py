"""MariaDB reads a keyset page's rows and no more: the plans of the jobs listing's pages.

A page at depth must seek to its key on the listing's index and stop after `limit` rows.
Left to itself MariaDB reads on through the owner's rows (20,052 of 30,000 here for
list_jobs' page, without its FORCE INDEX), which is why the pages name their index
(jobs/reads.py). Checked with ANALYZE on the SQL the store really sends (captured from
Tortoise's query log, read as bench/history.py reads the history benchmark's plans), on
MariaDB only: SQLite has no index hints and the contract tests cover its answers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bench.history import Captured, captured_selects, plan_summary
from tortoise import connections

from jobline.jobs import models
from jobline.jobs.store import JobQuery, JobStore
from tests.integration.backends import open_backend

pytestmark = pytest.mark.integration

# Enough rows that MariaDB, unhinted, reads 20,000 of them for list_jobs' page (checked).
OWNER_JOBS = 30_000
OTHER_JOBS = 1000
PAGE = 51  # a page of 50 and one more, as the API and the dashboard ask


@pytest.fixture(scope="module", params=["mariadb"])
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[JobStore]:
    async with open_backend(request, tmp_path_factory, "plans"):
        yield JobStore()


@pytest.fixture
def captured() -> Iterator[Captured]:
    with captured_selects() as handler:
        yield handler


async def seed(store: JobStore, owner: uuid.UUID, count: int, start: int) -> None:
    """`count` copies of one job for `owner`, a second apart from `start` seconds on."""
    template = await store.submit(
        job_id=uuid.uuid4(),
        data={
            "type": "music.transcode",
            "queue": "music",
            "payload": {"source": "song.wav"},
            "priority": 0,
            "owner_id": str(owner),
        },
    )
    db = connections.get(store.connection)
    columns = [
        row["COLUMN_NAME"]
        for row in await db.execute_query_dict(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS"
            " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'jobs'"
        )
        if row["COLUMN_NAME"] not in ("id", "created_at")
    ]
    names = ", ".join(f"`{c}`" for c in columns)
    # MariaDB's sequence engine: one row per number, no table to fill first.
    await db.execute_query(
        f"INSERT INTO jobs (id, created_at, {names})"
        f" SELECT UUID(), TIMESTAMP('2030-01-01') + INTERVAL (%s + seq) SECOND, {names}"
        f" FROM jobs, seq_1_to_{count} WHERE jobs.id = %s",
        [start, str(template.id)],
    )
    await db.execute_query("ANALYZE TABLE jobs")


async def analyze(store: JobStore, sql: str, args: Any) -> dict[str, Any]:
    """MariaDB's ANALYZE FORMAT=JSON of one captured SELECT, summed up as bench/history.py
    sums up the history benchmark's plans (index, rows read), and the plan itself."""
    db = connections.get(store.connection)
    rows = await db.execute_query_dict(f"ANALYZE FORMAT=JSON {sql.replace('?', '%s')}", args)
    plan = json.loads(next(iter(rows[0].values())))
    return {**plan_summary(plan), "plan": plan}


async def test_a_page_at_depth_and_the_page_before_it_read_one_page_of_rows(
    store: JobStore, captured: Captured
) -> None:
    owner = uuid.uuid4()
    await seed(store, owner, OWNER_JOBS, 0)
    await seed(store, uuid.uuid4(), OTHER_JOBS, OWNER_JOBS // 2)
    query = JobQuery(owner_id=owner)
    # A key two thirds of the way down the owner's listing (newest first).
    depth = 2 * OWNER_JOBS // 3
    db = connections.get(store.connection)
    (row,) = await db.execute_query_dict(
        "SELECT created_at, id FROM jobs WHERE owner_id = %s"
        " ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET %s",
        [str(owner), depth],
    )
    key = (row["created_at"].replace(tzinfo=UTC), uuid.UUID(str(row["id"])))
    assert isinstance(key[0], datetime)

    captured.queries.clear()
    page = await store.list_jobs(query, key, PAGE)
    assert len(page) == PAGE and all(v.owner_id == owner for v in page)
    listing = await analyze(store, *captured.queries[-1])

    captured.queries.clear()
    newer = await store.newer_keys(query, key, PAGE)
    assert len(newer) == PAGE and newer[0] > key
    previous = await analyze(store, *captured.queries[-1])

    for name, found in (("list_jobs", listing), ("newer_keys", previous)):
        assert found["index"] == models.IDX_OWNER_CREATED, (name, found["plan"])
        # One page and the row that ends the range: not the owner's rows on that side.
        assert found["rows_read"] <= PAGE + 1, (name, found["plan"])
