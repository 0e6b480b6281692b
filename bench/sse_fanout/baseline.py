"""The baseline jobline's feed is measured against: every follower polls the database.

The same SSE frames as `GET /api/v1/jobs/{id}/stream`, but each connection reads the job's
new events every BENCH_POLL_MS on its own, so database queries grow with the number of
followers. No auth (connection set-up is not what is measured). Run by run.py:

    uvicorn --app-dir bench/sse_fanout baseline:app
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jobline.api.stream import SEP, frame
from jobline.config import get_settings
from jobline.db import close_db, open_db
from jobline.jobs.states import FINAL_EVENTS
from jobline.streaming.reader import EventReader

POLL_SECONDS = int(os.environ.get("BENCH_POLL_MS", "100")) / 1000
BATCH = 500
reader = EventReader()
followers = 0


async def stream(request: Request) -> Response:
    job_id = UUID(request.path_params["job_id"])
    after = int(request.headers.get("last-event-id") or 0)

    async def frames() -> AsyncIterator[bytes]:
        global followers
        followers += 1
        try:
            last = after
            while True:
                for item in await reader.of_job(job_id, last, BATCH):
                    yield frame(item, item.seq)
                    last = item.seq
                    if item.event.type in FINAL_EVENTS:
                        return
                await asyncio.sleep(POLL_SECONDS)
        finally:
            followers -= 1

    return EventSourceResponse(frames(), sep=SEP)


async def stats(_: Request) -> JSONResponse:
    return JSONResponse({"queries": reader.queries, "subscribers": followers})


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    await open_db(get_settings())
    yield
    await close_db()


app = Starlette(
    routes=[
        Route("/api/v1/jobs/{job_id}/stream", stream),
        Route("/api/v1/stream/stats", stats),
    ],
    lifespan=lifespan,
)
