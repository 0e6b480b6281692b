"""Per-user caps on work held open: jobs not yet finished (here) and streams (api/quotas.py)."""

from __future__ import annotations

from uuid import UUID

from jobline.errors import TooManyActiveJobs
from jobline.jobs.models import JobRow
from jobline.jobs.states import JobState

ACTIVE_STATES = [state for state in JobState if not state.is_final]


async def check_active_jobs(owner_id: UUID, limit: int) -> None:
    """Raise TooManyActiveJobs when the owner already has `limit` unfinished jobs.

    Reads at most `limit` index entries (owner, state), however many jobs the owner has.
    Concurrent submits may each pass the check: the cap can be passed by the number of
    submits in flight at that moment, never by more.
    """
    ids = (
        await JobRow.filter(owner_id=owner_id, state__in=ACTIVE_STATES)
        .limit(limit)
        .values_list("id", flat=True)
    )
    if len(ids) >= limit:
        raise TooManyActiveJobs(
            f"you have {limit} jobs that have not finished; wait for some to finish or "
            "cancel them (the limit is JOBLINE_MAX_ACTIVE_JOBS_PER_USER)"
        )
