"""Celery task registration: each app keeps its own tasks (regression: shared tasks)."""

from __future__ import annotations

import warnings

from jobline.config import Settings
from jobline.jobs.spec import load_queues
from jobline.queueing.app import create_celery
from jobline.queueing.dispatch import CeleryDispatcher
from jobline.queueing.worker import worker_app
from tests.support import REPO


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="test",
        broker_url="amqp://nobody:nothing@127.0.0.1:1/none",
        queues_file=REPO / "queues.yaml",
    )


def test_a_worker_app_made_after_the_api_dispatcher_runs_the_job_not_the_stub() -> None:
    config = settings()
    queues = load_queues(config.queues_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DuplicateTaskNameWarning means tasks leaked across apps
        CeleryDispatcher(create_celery(config, queues), queues)
        worker = worker_app(config, queues, "music")
        second_api = create_celery(config, queues)
        CeleryDispatcher(second_api, queues)
    for name in ("music.transcode", "music.fingerprint"):
        assert worker.tasks[name].run.__qualname__ == "_register.<locals>.body", "records the job"
        assert second_api.tasks[name].run.__qualname__.endswith("not_here")
    assert "video.thumbnail" not in worker.tasks, "a music worker registers only music tasks"
    assert "video.render" not in second_api.tasks, "the API never registers send_task types"
