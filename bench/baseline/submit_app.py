"""The two hand-written submit endpoints jobline's POST /api/v1/jobs is measured against.

BENCH_BASELINE=publish: the endpoint only calls apply_async and returns the task id (no
storage, no auth). BENCH_BASELINE=insert: it first INSERTs the job's row with aiomysql,
then calls apply_async. Both are what people write by hand: apply_async is called from
the async endpoint as it is, on the event loop.

    uvicorn --loop uvloop --http httptools bench.baseline.submit_app:app
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiomysql
from fastapi import FastAPI, status
from pydantic import BaseModel

from bench.baseline.celery_app import INSERT, mysql_params, noop

MODE = os.environ.get("BENCH_BASELINE", "publish")
POOL_MAX = int(os.environ.get("JOBLINE_DB_POOL_MAX", "20"))  # the same pool size as jobline's


class SubmitBody(BaseModel):
    type: str
    payload: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    if MODE == "insert":
        app.state.pool = await aiomysql.create_pool(
            **mysql_params(os.environ["BENCH_DATABASE_URL"]),
            minsize=1,
            maxsize=POOL_MAX,
            autocommit=True,
        )
    yield
    if MODE == "insert":
        app.state.pool.close()
        await app.state.pool.wait_closed()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "mode": MODE}


@app.post("/api/v1/jobs", status_code=status.HTTP_202_ACCEPTED)
async def submit(body: SubmitBody) -> dict[str, str]:
    job_id = str(uuid.uuid4())
    if MODE == "insert":
        async with app.state.pool.acquire() as conn, conn.cursor() as cur:
            now = datetime.now(UTC).replace(tzinfo=None)
            await cur.execute(INSERT, (job_id, body.type, json.dumps(body.payload), "pending", now))
    noop.apply_async(kwargs={"payload": body.payload, "job_id": job_id}, task_id=job_id)
    return {"id": job_id}
