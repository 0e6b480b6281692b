"""What every `jobline` sub-command shares: exit codes, one-line failures, running a coroutine.

cli.py and the sub-command modules (audit/cli.py, deploy.py, devserver.py) import this;
none of them imports cli.py, so the commands do not import each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer

from jobline.config import Settings, get_settings, redact_url
from jobline.dialects import DATABASE_ERRORS
from jobline.errors import (
    BrokerUnavailable,
    ConfigError,
    DatabaseUnavailable,
    JoblineError,
    reason,
)

T = TypeVar("T")
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3

_debug = False


def show_tracebacks(on: bool) -> None:
    """--debug: let errors out with their traceback instead of one line."""
    global _debug
    _debug = on


def fail(message: str, code: int = 1) -> None:
    """Print one red line and exit with `code`."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with what is wrong in them."""
    try:
        return get_settings()
    except ConfigError as exc:
        fail(exc.message, EXIT_CONFIG)
        raise  # unreachable; fail() exits


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; its errors end the command with one line and their exit code."""
    try:
        return asyncio.run(coro)
    except JoblineError as exc:
        if _debug:
            raise
        fail(exc.message, exit_code(exc))
        raise
    except DATABASE_ERRORS as exc:
        if _debug:
            raise
        url = redact_url(get_settings().database_url)
        fail(f"database {url} is unreachable: {reason(exc)}", EXIT_UNAVAILABLE)
        raise


def exit_code(exc: JoblineError) -> int:
    """2 for bad configuration, 3 for an unreachable database or broker, 1 otherwise."""
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, DatabaseUnavailable | BrokerUnavailable):
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def load_queues_or_exit(settings: Settings, check_imports: bool = True) -> Any:
    """queues.yaml loaded, or exit 2 with the file, the key and what is wrong."""
    from jobline.jobs.spec import load_queues

    try:
        return load_queues(settings.queues_file, check_imports=check_imports)
    except ConfigError as exc:
        fail(exc.message, EXIT_CONFIG)
