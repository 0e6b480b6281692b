"""The Celery app: queues, routes, limits and worker options, all from queues.yaml."""

from __future__ import annotations

import os
import socket
from typing import Any

from celery import Celery
from kombu import Exchange, Queue

from jobline.config import EMBEDDED_BROKER, Settings
from jobline.jobs.spec import DomainSpec, JobType, Queues

# Priorities 0-9 from the API; RabbitMQ needs the maximum declared on the queue.
MAX_PRIORITY = 9


def declare_queue(domain: DomainSpec) -> Queue:
    """The RabbitMQ queue of one domain, on a direct exchange of the same name."""
    arguments: dict[str, Any]
    if domain.queue_type == "quorum":
        # Quorum queues replicate across a cluster; they have no per-message priority.
        arguments = {"x-queue-type": "quorum"}
    else:
        arguments = {"x-max-priority": MAX_PRIORITY}
    return Queue(
        domain.queue,
        Exchange(domain.queue, type="direct", durable=True),
        routing_key=domain.queue,
        durable=True,
        queue_arguments=arguments,
    )


def worker_node_name(domain: str, host: str | None = None, pid: int | None = None) -> str:
    """The Celery node name of one worker process: `DOMAIN@HOST:PID`.

    Celery gives each node an exclusive control queue (`NAME.celery.pidbox`), so two
    processes of one name on a host cannot both run: the second dies at start. The pid makes
    every process on a host unique without any setting (supervisor's numprocs, a second
    `jobline worker` by hand), and `DOMAIN@HOST` stays in front for Flower and the events.
    """
    return f"{domain}@{host or socket.gethostname()}:{pid or os.getpid()}"


def broker_options(settings: Settings) -> dict[str, Any]:
    """Transport options; the embedded broker keeps its messages in files under var/."""
    if not settings.broker_url.startswith(EMBEDDED_BROKER):
        return {"confirm_publish": True}
    folder = settings.broker_dir()
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        # The exchange tables: kombu's default is `control/` in the working directory,
        # which left a folder in the repository root.
        "control_folder": str(folder / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default: a second of latency per job.
        "polling_interval": settings.broker_poll_seconds,
    }


def embedded_transport(settings: Settings) -> dict[str, Any]:
    """The embedded broker's transport class: kombu's, writing each message file whole."""
    if not settings.broker_url.startswith(EMBEDDED_BROKER):
        return {}
    return {"broker_transport": "jobline.compat.kombu_filesystem:Transport"}


def create_celery(settings: Settings, queues: Queues) -> Celery:
    """A Celery app whose queues and routes are those of queues.yaml (no tasks registered)."""
    app = Celery("jobline", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_queues=[declare_queue(d) for d in queues.domains.values()],
        task_routes={
            jt.name: {"queue": jt.queue, "routing_key": jt.queue}
            for jt in queues.job_types.values()
        },
        task_default_queue=next(iter(queues.domains.values())).queue,
        task_create_missing_queues=False,
        task_serializer="json",
        accept_content=["json"],
        # Every outcome is an event in the database: no Celery result backend.
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        # Ack after the job's outcome is recorded, so a lost worker's job is delivered again.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Per domain (queues.yaml `task_events`, set by worker_app): a worker's task-* events
        # cost its main process a third of its CPU per job and nobody needs them to see a
        # job, whose history is stored; Flower's worker view needs only heartbeats.
        worker_send_task_events=False,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options=broker_options(settings),
        **embedded_transport(settings),
        # No task_queue_max_priority: Celery would add x-max-priority to every queue, and a
        # quorum queue refuses it. declare_queue sets it on classic queues only.
        task_default_priority=0,
        # Without Celery's native delayed delivery step (compat/celery.py): delays and
        # retries wait in the outbox, and the step held every reconnect to a cluster with
        # a node down for 17 s.
        worker_consumer="jobline.compat.celery:Consumer",
    )
    return app


def task_options(job_type: JobType) -> dict[str, Any]:
    """Celery task options of one job type."""
    policy = job_type.policy
    return {
        "name": job_type.name,
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        # Killed at the hard limit: requeue, so the next delivery records `failed` TIME_LIMIT
        # (an ack would leave the job `running` for ever: the killed child recorded nothing).
        "acks_on_timeout": False,
        "time_limit": policy.time_limit,
        "soft_time_limit": policy.soft_time_limit,
        "rate_limit": job_type.spec.rate_limit,
        # Retries are decided by the recording runner from the policy, not by Celery's counter.
        "max_retries": None,
        "ignore_result": True,
    }
