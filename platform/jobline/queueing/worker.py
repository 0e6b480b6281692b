"""The worker's Celery side: a task per job type, whose body runs one attempt of a job.

Everything else lives beside it, a concept per module: the process's runtime (event loop
thread, Tortoise, retries while the database is away) in runtime.py; the attempt (start,
progress, outcome) in attempt.py, over late_start.py, delivery.py, progress.py and
outcome.py; cancellation in cancel.py.
"""

from __future__ import annotations

import importlib
from typing import Any
from uuid import UUID

from celery import Celery, Task

from jobline.config import Settings
from jobline.jobs.context import TASK_REGISTRY, JobFunction
from jobline.jobs.events import FIRST_GENERATION
from jobline.jobs.projection import JobView
from jobline.jobs.spec import JobType, Queues
from jobline.queueing import fairness, telemetry
from jobline.queueing.app import create_celery, task_options
from jobline.queueing.attempt import Attempt
from jobline.queueing.runtime import runtime


def run_job(
    task: Task,
    job_type: JobType,
    function: JobFunction,
    job_id: str,
    payload: dict[str, Any],
    generation: int = FIRST_GENERATION,
) -> None:
    """The body of every jobline Celery task.

    `generation`: the dispatch generation the message was published as; a message
    published before generations existed names none and is the first.
    """
    rt = runtime()
    jid = UUID(job_id)
    read: JobView | None = None
    slot: str | None = None
    if job_type.max_running_per_user:
        # The owner's share of the domain (queueing/fairness.py): read with a slot taken.
        try:
            read, slot = fairness.admit(rt, job_type, jid, generation)
        except fairness.Deferred:
            return
        fairness.release_with_outcome(rt, slot)
    try:
        redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
        worker = task.request.hostname or "worker"
        attempt = Attempt.begin(
            rt, job_type, jid, worker, redelivered, read, task.request.id, generation
        )
        if attempt is not None:
            attempt.run(function, payload)
    finally:
        if slot is not None:
            fairness.release(rt, slot)


def register_tasks(app: Celery, queues: Queues, domains: list[str] | None = None) -> None:
    """Register a Celery task for each job type of `domains` (all by default)."""
    for name, domain in queues.domains.items():
        if domains is not None and name not in domains:
            continue
        for module in domain.imports:
            importlib.import_module(module)
        for job_type in queues.domain_types(name):
            function = job_type.load() if job_type.importable else TASK_REGISTRY.get(job_type.name)
            if function is None:
                raise LookupError(f"no @job(name={job_type.name!r}) in domain {name}'s imports")
            _register(app, job_type, function)


def _register(app: Celery, job_type: JobType, function: JobFunction) -> None:
    def body(
        task: Task, job_id: str, payload: dict[str, Any], generation: int = FIRST_GENERATION
    ) -> None:
        run_job(task, job_type, function, job_id, payload, generation)

    body.__name__ = job_type.name.replace(".", "_")
    # Not shared: each app runs its own registration, never another app's (see dispatch.py).
    app.task(**task_options(job_type), shared=False)(body)


def worker_app(settings: Settings, queues: Queues, domain: str) -> Celery:
    """A Celery app with the tasks of one domain registered."""
    app = create_celery(settings, queues)
    # A worker publishes only Celery's monitoring events (task-received, -started, ...):
    # jobs and retries go out through the outbox, from the API or a relay, with confirms.
    # Confirms here made the worker's main process wait a broker round trip per event,
    # three per job, on the thread that also hands jobs to the pool (half its time).
    options = dict(app.conf.broker_transport_options or {})
    options.pop("confirm_publish", None)
    app.conf.broker_transport_options = options
    app.conf.worker_send_task_events = queues.domains[domain].task_events
    register_tasks(app, queues, [domain])
    telemetry.install(settings)
    return app
