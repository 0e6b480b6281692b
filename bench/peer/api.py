"""The peer's submit endpoint: FastAPI deferring the no-op task, the App opened in the lifespan.

    uvicorn --loop uvloop --http httptools bench.peer.api:app

`POST /api/v1/jobs` takes the same body as jobline's and the baselines' (`type`, `payload`)
and answers 202 with the job's id once the job row (and its `deferred` event) is committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, status
from pydantic import BaseModel

from bench.peer.tasks import app as procrastinate_app
from bench.peer.tasks import noop


class SubmitBody(BaseModel):
    type: str
    payload: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # As Procrastinate documents for an ASGI app: the App (its pool) lives as long as the server.
    async with procrastinate_app.open_async():
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness for the benchmark's runner."""
    return {"status": "ok"}


@app.post("/api/v1/jobs", status_code=status.HTTP_202_ACCEPTED)
async def submit(body: SubmitBody) -> dict[str, int]:
    """Defer the no-op job; its id once the INSERT is committed."""
    job_id = await noop.defer_async(**body.payload)
    return {"id": job_id}
