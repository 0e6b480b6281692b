"""The Celery app: each worker process's node name, its task events."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from celery.utils.nodenames import nodesplit

from jobline.config import Settings
from jobline.jobs.spec import load_queues
from jobline.queueing.app import create_celery, worker_node_name
from jobline.queueing.worker import worker_app


def test_worker_node_names_are_domain_at_host_and_differ_per_process() -> None:
    first, second = worker_node_name("music", "vm", 101), worker_node_name("music", "vm", 102)
    assert (first, second) == ("music@vm:101", "music@vm:102")
    # Celery splits a node name at the @: the domain is the name, the host stays in front.
    assert nodesplit(first) == ["music", "vm:101"]


def test_a_worker_node_name_defaults_to_this_host_and_process() -> None:
    assert worker_node_name("video") == f"video@{socket.gethostname()}:{os.getpid()}"


def test_task_events_are_off_unless_a_domain_turns_them_on(tmp_path: Path) -> None:
    """queues.yaml `task_events`: off by default (issue 17), on for the domain that says so."""
    config = tmp_path / "queues.yaml"
    config.write_text(
        "domains:\n"
        "  quiet: {queue: quiet, job_types: {a: {function: tasks.music:transcode}}}\n"
        "  watched: {queue: watched, task_events: true,"
        " job_types: {b: {function: tasks.music:fingerprint}}}\n"
    )
    queues = load_queues(config)
    settings = Settings(env="development", queues_file=config)
    assert create_celery(settings, queues).conf.worker_send_task_events is False
    assert worker_app(settings, queues, "quiet").conf.worker_send_task_events is False
    assert worker_app(settings, queues, "watched").conf.worker_send_task_events is True
    assert (queues.domains["quiet"].task_events, queues.domains["watched"].task_events) == (
        False,
        True,
    )
