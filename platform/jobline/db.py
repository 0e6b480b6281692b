"""Opening and closing the process's Tortoise connections, and applying the migrations."""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from pathlib import Path
from typing import Any

from tortoise import BaseDBAsyncClient, Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url

from jobline.compat.tortoise import abandon_context, release_when_begin_fails, terminate_pools
from jobline.config import Settings, tortoise_config

log = logging.getLogger(__name__)

# How long closing waits for connections still lent out before closing them under their
# holders: longer than any statement of a request or a batch, shorter than a supervisor's
# stop timeout.
CLOSE_WAIT_SECONDS = 10.0


async def open_db(settings: Settings) -> None:
    """Connect for the whole process: every task (request, SSE stream) shares the pool.

    Tortoise 1.x scopes an init to the calling task unless global fallback is on.
    """
    release_when_begin_fails()
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db(wait_seconds: float = CLOSE_WAIT_SECONDS) -> None:
    """Close the process's connections.

    A pool closes once every connection it lent out is back: one held by a task stuck
    mid-statement would keep the process waiting for ever, so after `wait_seconds` those
    are closed under their holders. Whatever happens, Tortoise's process-wide context is
    let go, so the database can be opened again in this process.
    """
    try:
        try:
            async with asyncio.timeout(wait_seconds):
                await Tortoise.close_connections()
        except TimeoutError:
            log.warning(
                "database connections still in use %.0f s into closing; closing them", wait_seconds
            )
            terminate_pools(connections.all())
            await Tortoise.close_connections()
    finally:
        abandon_context()


def own_connection(settings: Settings, name: str) -> BaseDBAsyncClient:
    """A connection of the configured database outside Tortoise's registry (one at most),
    for a thread with an event loop of its own: a worker's heartbeat.

    Made by the engine Tortoise itself would pick for the URL, so its options hold; it
    connects on first use and again after a failure.
    """
    config = settings.database.tortoise_connection(
        settings.database_url, pool_max=1, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    info: dict[str, Any] = expand_db_url(config) if isinstance(config, str) else config
    engine = importlib.import_module(info["engine"])
    if hasattr(engine, "get_client_class"):
        client_class = engine.get_client_class(info)
    else:
        client_class = engine.client_class
    client: BaseDBAsyncClient = client_class(connection_name=name, **info["credentials"])
    return client


async def apply_migrations(settings: Settings) -> list[str]:
    """Apply the committed aerich migrations of the configured database's dialect."""
    from aerich import Command

    location = settings.migrations_dir / settings.dialect
    config = tortoise_config(settings)
    command = Command(tortoise_config=config, app="models", location=str(location))
    # aerich skips its own init when the task's Tortoise context says it is initialised, even
    # one closed by close_db() or open on another database: init it for this database here.
    await Tortoise.init(config=config)
    async with command:
        await command.init()
        applied: list[str] = await command.upgrade(run_in_transaction=True)
    return applied


@functools.cache
def shipped_migrations(folder: Path) -> tuple[str, ...]:
    """The migration files in `folder`, in their order (read once: they ship with the code)."""
    names = (p.name for p in folder.glob("*.py") if p.name[:1].isdigit())
    return tuple(sorted(names, key=lambda name: int(name.split("_", 1)[0])))


async def pending_migrations(settings: Settings) -> list[str]:
    """The migrations shipped for the database's dialect that it has not applied, in order:
    what `jobline migrate` would apply. Code newer than its schema fails on the columns and
    tables it lacks, so readiness (/readyz) names them instead of letting requests fail."""
    shipped = shipped_migrations(settings.migrations_dir / settings.dialect / "models")
    try:
        _, rows = await connections.get("default").execute_query(
            "SELECT version FROM aerich WHERE app = 'models'"
        )
    except Exception as exc:
        if "aerich" not in str(exc):
            raise  # the database is away: not a question of its schema
        return list(shipped)  # never migrated: its error names the missing aerich table
    applied = {str(row["version"]) for row in rows}
    return [name for name in shipped if name not in applied]
