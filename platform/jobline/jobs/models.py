"""Tortoise models: `job_events` (append-only, the truth), `jobs` (its projection),
`job_dispatch` (the outbox), `workers` (the worker processes' heartbeats)."""

from __future__ import annotations

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model

from jobline.jobs.events import EventType
from jobline.jobs.states import JobState

# Named so queries can FORCE INDEX on MySQL: MariaDB otherwise uses only the owner_id
# prefix of a composite index for a keyset page and reads every earlier row.
IDX_OWNER_CREATED = "idx_jobs_owner_created"
IDX_OWNER_STATE = "idx_jobs_owner_state"
IDX_CREATED = "idx_jobs_created"
IDX_STATE = "idx_jobs_state"
# A filter on type reads only that type's jobs: without these, a page of a rare type read
# every job of the owner between two of its own (20 ms at 5% of 1M jobs).
IDX_OWNER_TYPE = "idx_jobs_owner_type"
IDX_TYPE = "idx_jobs_type"
# The reconciler counts each domain's queued jobs (queueing/reconcile.py) from this alone.
IDX_QUEUE_STATE = "idx_jobs_queue_state"
IDX_EVENTS_OWNER = "idx_events_owner"
IDX_DISPATCH_AVAILABLE = "idx_dispatch_available"


class JobRow(Model):
    """The current view of one job, rewritten from its events in the transaction appending them."""

    id = fields.UUIDField(primary_key=True)
    type = fields.CharField(max_length=100)
    queue = fields.CharField(max_length=100)
    state = fields.CharEnumField(JobState, max_length=16)
    progress = fields.SmallIntField(default=0)
    message = fields.TextField(null=True)
    attempt = fields.IntField(default=1)
    priority = fields.SmallIntField(default=0)
    payload: dict[str, object] = fields.JSONField()  # type: ignore[assignment]
    result: object = fields.JSONField(null=True)
    error: dict[str, object] | None = fields.JSONField(null=True)  # type: ignore[assignment]
    owner_id = fields.UUIDField()
    last_seq = fields.IntField(default=0)
    cancel_requested = fields.BooleanField(default=False)
    task_id = fields.CharField(max_length=64, null=True)
    # The node name of the worker running the job (from its `started`), while it runs: the
    # running jobs of a worker that stopped beating are found by it (jobs/workers.py).
    worker = fields.CharField(max_length=255, null=True)
    # The dispatch generation (jobs/events.py, REQUEUED): bumped when the job is published again.
    generation = fields.IntField(default=1)
    idempotency_key = fields.CharField(max_length=255, null=True)
    request_hash = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "jobs"
        unique_together = (("owner_id", "idempotency_key"),)
        indexes = (
            Index(fields=("owner_id", "created_at", "id"), name=IDX_OWNER_CREATED),
            Index(fields=("owner_id", "state", "created_at", "id"), name=IDX_OWNER_STATE),
            Index(fields=("created_at", "id"), name=IDX_CREATED),
            Index(fields=("state", "created_at", "id"), name=IDX_STATE),
            Index(fields=("owner_id", "type", "created_at", "id"), name=IDX_OWNER_TYPE),
            Index(fields=("type", "created_at", "id"), name=IDX_TYPE),
            Index(fields=("queue", "state"), name=IDX_QUEUE_STATE),
        )


class JobEventRow(Model):
    """One event, never updated or deleted; id orders events across jobs for feeds."""

    id = fields.BigIntField(primary_key=True)
    job_id = fields.UUIDField()
    seq = fields.IntField()
    type = fields.CharEnumField(EventType, max_length=24)
    attempt = fields.IntField()
    at = fields.DatetimeField()
    data: dict[str, object] = fields.JSONField()  # type: ignore[assignment]
    # Copied from the job so a per-user feed reads one index, not a join.
    owner_id = fields.UUIDField()

    class Meta:
        table = "job_events"
        unique_together = (("job_id", "seq"),)
        indexes = (Index(fields=("owner_id", "id"), name=IDX_EVENTS_OWNER),)


class DispatchRow(Model):
    """The outbox: a job attempt still to be published, written in the transaction that made it due.

    The row is deleted in the transaction recording `queued`. A publisher (the submitting
    request or a relay) claims it by moving `available_at` past now under a fresh `claim`,
    so two relays never publish the same row at once; an expired claim is free again.
    """

    id = fields.BigIntField(primary_key=True)
    job_id = fields.UUIDField()
    attempt = fields.IntField()
    task_id = fields.CharField(max_length=64)
    # The job's type, so a relay claims only rows it can publish: in a rolling deploy, or
    # beside an API with another queues.yaml, a relay that does not know a type leaves it.
    type = fields.CharField(max_length=100, default="")
    # Not published before this: a delayed job waits here, not as an ETA message in the broker.
    due_at = fields.DatetimeField()
    # The row may be claimed once this is past (the claim's lease, or the next try after a failure).
    available_at = fields.DatetimeField()
    claim = fields.CharField(max_length=64, null=True)
    tries = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "job_dispatch"
        unique_together = (("job_id", "attempt"),)
        indexes = (Index(fields=("available_at",), name=IDX_DISPATCH_AVAILABLE),)


class ActiveJobsBound(Model):
    """Per owner: the lock row of the active-jobs cap and an upper bound of their unfinished jobs.

    Every admission of new unfinished jobs (a submit, a retry) locks the owner's row in its
    own transaction, so two never decide at once, and adds what it admitted to `bound`.
    Jobs only finish outside it, so `bound` stays an upper bound: while it shows room, no
    count is needed; at the cap, or once `counted_at` is older than
    JOBLINE_ACTIVE_JOBS_RECHECK_SECONDS, the jobs are counted under the lock (jobs/quotas.py).
    """

    owner_id = fields.UUIDField(primary_key=True)
    bound = fields.IntField(default=0)
    counted_at = fields.DatetimeField()

    class Meta:
        table = "active_jobs_bounds"


class WorkerRow(Model):
    """One worker process (a Celery node, `DOMAIN@host:pid`) and when it last proved alive.

    The process's main thread beats: one UPDATE of `beat_ms` every
    JOBLINE_WORKER_HEARTBEAT_SECONDS, whatever it runs (a prefork pool's children die with
    it: Celery sets their parent-death signal). Times are the database's clock in epoch
    milliseconds, so hosts' clocks never enter the comparison. `stopped_ms` is set when the
    process is known to be gone: its own shutdown, or `jobline dev` after killing it.
    """

    name = fields.CharField(max_length=255, primary_key=True)
    domain = fields.CharField(max_length=100)
    host = fields.CharField(max_length=255)
    pid = fields.IntField()
    started_ms = fields.BigIntField()
    beat_ms = fields.BigIntField()
    stopped_ms = fields.BigIntField(null=True)

    class Meta:
        table = "workers"
