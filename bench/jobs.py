"""The benchmark's job: nothing to do, so a run measures what jobline itself costs per job."""

from __future__ import annotations

from jobline import JobContext, job


@job()
def noop(ctx: JobContext, payload: dict[str, object]) -> None:
    """Return at once."""
