"""Publishing jobs to their domain's queue: apply_async for known functions, send_task otherwise."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio.to_thread
from amqp.exceptions import MessageNacked
from celery import Celery

from jobline.jobs.context import JobFunction
from jobline.jobs.outbox import task_id_for
from jobline.jobs.projection import JobView
from jobline.jobs.spec import JobType, Queues
from jobline.logging import REQUEST_ID_MESSAGE_HEADER, current_request_id


def message_kwargs(view: JobView) -> dict[str, Any]:
    """The keyword arguments of a job's task message: which job, its payload, and the
    dispatch generation it was published as (a worker drops an older one's message)."""
    return {"job_id": str(view.id), "payload": view.payload, "generation": view.generation}


class CeleryDispatcher:
    """Publishes a job's message; the kombu producer blocks, so it runs off the event loop."""

    def __init__(self, app: Celery, queues: Queues, publish_timeout: float | None = None) -> None:
        self.app = app
        self.queues = queues
        # Bounds the socket write and the wait for the publisher confirm of one publish.
        self.publish_timeout = publish_timeout
        for job_type in queues.job_types.values():
            if job_type.importable:
                self._register(job_type, job_type.load())

    def _register(self, job_type: JobType, function: JobFunction) -> None:
        # The API never runs jobs; the task exists so apply_async carries its options and route.
        def not_here(*_: Any, **__: Any) -> None:
            raise RuntimeError("jobs run on workers, not in the API process")

        not_here.__name__ = job_type.name.replace(".", "_")
        # shared=False: a shared task would be copied into every Celery app made later in
        # this process, and a worker app there would run this stub instead of the job.
        self.app.task(name=job_type.name, bind=True, shared=False)(not_here)

    @staticmethod
    def task_id(view: JobView) -> str:
        """Celery task id of the job's current attempt (a revoked id cannot be reused)."""
        return task_id_for(view.id, view.attempt)

    async def publish(
        self, view: JobView, delay_seconds: float | None = None, *, task_id: str | None = None
    ) -> str:
        """Publish the job's current attempt; returns the Celery task id.

        A caller that stops waiting (a timeout) abandons the thread rather than blocking on it.
        """
        return await anyio.to_thread.run_sync(
            lambda: self.publish_sync(view, delay_seconds, task_id=task_id),
            abandon_on_cancel=True,
        )

    async def revoke(self, task_id: str) -> None:
        """Tell every worker to drop this task's message unrun (a broadcast, best effort)."""
        await anyio.to_thread.run_sync(
            lambda: self.app.control.revoke(task_id), abandon_on_cancel=True
        )

    def publish_sync(
        self, view: JobView, delay_seconds: float | None = None, *, task_id: str | None = None
    ) -> str:
        job_type = self.queues.job_types[view.type]
        task_id = task_id or self.task_id(view)
        options: dict[str, Any] = {
            "kwargs": message_kwargs(view),
            "task_id": task_id,
            "queue": job_type.queue,
            "routing_key": job_type.queue,
            "priority": view.priority,
            "countdown": delay_seconds or None,
            # One reconnect covers a pooled connection the broker closed; beyond that the
            # outbox relay retries, so a down broker never holds a request for long.
            "retry": True,
            "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
            "timeout": self.publish_timeout,
            "confirm_timeout": self.publish_timeout,
        }
        request_id = current_request_id()
        if request_id is not None:
            options["headers"] = {REQUEST_ID_MESSAGE_HEADER: request_id}
        with self.app.producer_or_acquire() as producer:
            options["producer"] = producer
            try:
                if job_type.importable:
                    self.app.tasks[job_type.name].apply_async(**options)
                else:
                    self.app.send_task(job_type.name, **options)
            except MessageNacked:
                # The pooled connection's channel may nack every publish to a quorum queue
                # from now on (see confirms.py, ConfirmingPublisher._publish_sync): closed,
                # the pool opens a new one for the next publish.
                with contextlib.suppress(Exception):
                    producer.connection.close()
                raise
        return task_id
