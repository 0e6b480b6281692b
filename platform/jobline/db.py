"""Opening and closing the process's Tortoise connections, and applying the migrations."""

from __future__ import annotations

from tortoise import Tortoise

from jobline.config import Settings, tortoise_config


async def open_db(settings: Settings) -> None:
    """Connect for the whole process: every task (request, SSE stream) shares the pool.

    Tortoise 1.x scopes an init to the calling task unless global fallback is on.
    """
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_db() -> None:
    await Tortoise.close_connections()


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
