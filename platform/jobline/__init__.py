"""jobline: an event-sourced async job platform on FastAPI, Celery and MySQL."""

from jobline.errors import JoblineError, TransientError
from jobline.jobs.context import JobContext, job

__all__ = ["JobContext", "JoblineError", "TransientError", "job"]
