"""`jobline audit ...`: retention of the request audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from jobline.audit.store import parse_age, prune

audit_app = typer.Typer(help="The request audit log.", no_args_is_help=True)


@audit_app.command("prune")
def prune_command(
    older_than: Annotated[
        str, typer.Option("--older-than", help="age like 30d, 12h, 90m, 2w")
    ] = "30d",
) -> None:
    """Delete audit rows older than the given age."""
    from jobline.commands import EXIT_CONFIG, fail, run, settings_or_exit
    from jobline.db import close_db, open_db

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        fail(str(exc), EXIT_CONFIG)
        return
    settings = settings_or_exit()
    cutoff = datetime.now(UTC) - age

    async def go() -> int:
        await open_db(settings)
        try:
            return await prune(cutoff, settings.audit_prune_batch)
        finally:
            await close_db()

    removed = run(go())
    typer.echo(f"deleted {removed} audit row(s) from before {cutoff.isoformat()}")
