"""The Celery app: each worker process's node name."""

from __future__ import annotations

import os
import socket

from celery.utils.nodenames import nodesplit

from jobline.queueing.app import worker_node_name


def test_worker_node_names_are_domain_at_host_and_differ_per_process() -> None:
    first, second = worker_node_name("music", "vm", 101), worker_node_name("music", "vm", 102)
    assert (first, second) == ("music@vm:101", "music@vm:102")
    # Celery splits a node name at the @: the domain is the name, the host stays in front.
    assert nodesplit(first) == ["music", "vm:101"]


def test_a_worker_node_name_defaults_to_this_host_and_process() -> None:
    assert worker_node_name("video") == f"video@{socket.gethostname()}:{os.getpid()}"


def test_workers_always_send_task_events() -> None:
    """deploy/README, Flower: 'Workers always run with task events on, so Flower shows tasks'."""
    from jobline.config import Settings
    from jobline.jobs.spec import load_queues
    from jobline.queueing.app import create_celery
    from tests.support import REPO

    app = create_celery(Settings(env="development"), load_queues(REPO / "queues.yaml"))
    assert app.conf.worker_send_task_events is True
    assert app.conf.task_send_sent_event is True
