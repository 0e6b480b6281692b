"""Contract of compat/tortoise.py with Tortoise ORM: a model's metadata, and an instance
built from a row as the driver returns it, each value decoded by its field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from tortoise import Tortoise
from tortoise.fields import Field

from jobline.compat.tortoise import from_row, meta
from jobline.config import MODEL_MODULES
from jobline.jobs.models import JobRow
from jobline.jobs.states import JobState


def test_meta_names_the_fields_their_columns_and_the_table() -> None:
    info = meta(JobRow)
    assert info.db_table == "jobs"
    assert info.fields_db_projection["state"] == "state"
    assert set(info.fields_db_projection) <= set(info.fields_map)
    assert all(isinstance(field, Field) for field in info.fields_map.values())
    payload = info.fields_map["payload"]
    assert json.loads(payload.to_db_value({"a": 1}, JobRow)) == {"a": 1}
    assert info.fields_map["progress"].default == 0


async def test_from_row_decodes_each_column_by_its_field() -> None:
    # Tortoise finalises a model's decoders when it is bound to a connection.
    await Tortoise.init(
        {
            "connections": {"default": "sqlite://:memory:"},
            "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
            "use_tz": True,
            "timezone": "UTC",
        }
    )
    try:
        _check_from_row()
    finally:
        await Tortoise.close_connections()


def _check_from_row() -> None:
    job_id, owner = uuid.uuid4(), uuid.uuid4()
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # As aiomysql returns a jobs row: UUIDs and JSON as strings.
    row = {
        "id": str(job_id),
        "type": "t",
        "queue": "q",
        "state": "running",
        "progress": 5,
        "message": None,
        "attempt": 2,
        "priority": 0,
        "payload": '{"a": 1}',
        "result": None,
        "error": None,
        "owner_id": str(owner),
        "last_seq": 4,
        "cancel_requested": 0,
        "task_id": None,
        "idempotency_key": None,
        "request_hash": None,
        "created_at": at,
        "updated_at": at,
        "started_at": at,
        "finished_at": None,
    }
    job = from_row(JobRow, row)
    assert isinstance(job, JobRow)
    assert job.id == job_id and job.owner_id == owner
    assert job.state is JobState.RUNNING
    assert job.payload == {"a": 1}
    assert job.cancel_requested is False
    assert job.created_at == at and job.finished_at is None


def test_the_pooled_transaction_is_mended_once_and_reads_what_it_relies_on() -> None:
    """release_when_begin_fails wraps TransactionContextPooled.__aenter__ (once, however
    often open_db runs) and reads its `token` slot and `client`; a Tortoise that renamed
    them would fail here, not in a shutdown (tests/integration/test_shutdown.py)."""
    from tortoise.backends.base.client import TransactionContextPooled

    from jobline.compat.tortoise import release_when_begin_fails

    release_when_begin_fails()
    mended = TransactionContextPooled.__aenter__
    release_when_begin_fails()
    assert TransactionContextPooled.__aenter__ is mended
    assert getattr(mended, "jobline_mended", False)
    assert {"token", "client"} <= set(TransactionContextPooled.__slots__)
