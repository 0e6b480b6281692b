"""How many jobs are in each active state: what operators watch (/metrics' `jobline_jobs`)."""

from __future__ import annotations

from jobline.jobs.models import JobRow
from jobline.jobs.states import ACTIVE_STATES, JobState


async def active_job_counts() -> dict[JobState, int]:
    """Jobs per unfinished state, every such state present (zero included).

    An indexed range count each: finished jobs are not counted, so this stays cheap however
    big the jobs table grows.
    """
    return {state: await JobRow.filter(state=state).count() for state in ACTIVE_STATES}
