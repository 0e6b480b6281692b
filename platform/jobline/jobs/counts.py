"""How many jobs are in each active state: what operators watch (/metrics' `jobline_jobs`)."""

from __future__ import annotations

from jobline.jobs.models import JobRow
from jobline.jobs.states import JobState


async def active_job_counts() -> dict[JobState, int]:
    """Jobs per unfinished state, every such state present (zero included).

    An indexed range count each: finished jobs are not counted, so this stays cheap however
    big the jobs table grows.
    """
    counts: dict[JobState, int] = {}
    for state in JobState:
        if not state.is_final:
            counts[state] = await JobRow.filter(state=state).count()
    return counts
