"""Moved to jobline.jobs.context: what job code sees belongs to the domain, not to Celery.

Re-exported here so code written against the old path keeps importing.
"""

from jobline.jobs.context import (
    INVALID_PAYLOAD,
    TASK_REGISTRY,
    JobContext,
    JobFunction,
    Reporter,
    job,
)

__all__ = ["INVALID_PAYLOAD", "TASK_REGISTRY", "JobContext", "JobFunction", "Reporter", "job"]
