"""The peer's Procrastinate app and its one task, as Procrastinate's quickstart writes them.

Its connector is the documented default: `PsycopgConnector` (an `AsyncConnectionPool` of
psycopg 3 with psycopg_pool's defaults) to BENCH_POSTGRES_URL, read at import like any
deployment's settings. The worker is Procrastinate's own command:

    procrastinate --app=bench.peer.tasks.app worker
"""

from __future__ import annotations

import os

from procrastinate import App, PsycopgConnector

app = App(
    connector=PsycopgConnector(
        conninfo=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql://jobline:jobline@127.0.0.1:5432/jobline"
        )
    )
)


@app.task(name="noop")
async def noop(**payload: object) -> None:
    """Return at once: what is measured is Procrastinate's own cost per job.

    `async`, as Procrastinate (an asyncio worker) is meant to be used: a sync task would
    be run on a thread, a hop the peer need not pay for a job that does nothing.
    """
