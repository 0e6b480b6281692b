"""Opening and closing the process's Tortoise connections."""

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
