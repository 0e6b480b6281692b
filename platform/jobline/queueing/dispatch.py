"""Publishing jobs to their domain's queue: apply_async for known functions, send_task otherwise."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from celery import Celery

from jobline.jobs.projection import JobView
from jobline.queueing.context import JobFunction
from jobline.queueing.spec import JobType, Queues


class CeleryDispatcher:
    """Publishes a job's message; the kombu producer blocks, so it runs off the event loop."""

    def __init__(self, app: Celery, queues: Queues) -> None:
        self.app = app
        self.queues = queues
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
        return str(view.id) if view.attempt == 1 else f"{view.id}.{view.attempt}"

    async def publish(self, view: JobView, delay_seconds: float | None = None) -> str:
        """Publish the job's current attempt; returns the Celery task id."""
        return await anyio.to_thread.run_sync(self.publish_sync, view, delay_seconds)

    def publish_sync(self, view: JobView, delay_seconds: float | None = None) -> str:
        job_type = self.queues.job_types[view.type]
        task_id = self.task_id(view)
        options: dict[str, Any] = {
            "kwargs": {"job_id": str(view.id), "payload": view.payload},
            "task_id": task_id,
            "queue": job_type.queue,
            "routing_key": job_type.queue,
            "priority": view.priority,
            "countdown": delay_seconds or None,
            "retry": True,
            "retry_policy": {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.5},
        }
        if job_type.importable:
            self.app.tasks[job_type.name].apply_async(**options)
        else:
            self.app.send_task(job_type.name, **options)
        return task_id
