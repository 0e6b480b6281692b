"""Contract of compat/celery.py with Celery: `app.amqp.as_task_v2` builds the protocol-2
message apply_async sends, without sending it."""

from __future__ import annotations

import inspect

from celery import Celery

from jobline.compat.celery import task_message

KEYWORDS = {"kwargs", "ignore_result", "origin", "argsrepr", "kwargsrepr"}


def test_as_task_v2_takes_the_arguments_the_adapter_passes() -> None:
    app = Celery("contract", set_as_current=False)
    parameters = inspect.signature(app.amqp.as_task_v2).parameters
    assert list(parameters)[:2] == ["task_id", "name"]
    assert set(parameters) >= KEYWORDS


def test_the_message_is_celerys_protocol_2() -> None:
    app = Celery("contract", set_as_current=False)
    message = task_message(
        app,
        "task-1",
        "domain.job",
        {"job_id": "j"},
        origin="api@host",
        argsrepr="()",
        kwargsrepr="{'job_id': 'j'}",
    )
    headers = message.headers
    assert headers["lang"] == "py" and headers["task"] == "domain.job"
    assert headers["id"] == "task-1" and headers["root_id"] == "task-1"
    assert headers["origin"] == "api@host" and headers["ignore_result"] is True
    assert headers["argsrepr"] == "()" and headers["kwargsrepr"] == "{'job_id': 'j'}"
    args, kwargs, embed = message.body
    assert args == () and kwargs == {"job_id": "j"}
    assert set(embed) >= {"callbacks", "errbacks", "chain", "chord"}
    assert message.properties["correlation_id"] == "task-1"


def test_the_worker_consumer_drops_only_celerys_delayed_delivery_step() -> None:
    """Issue 16: on a cluster with a node dead, the step held every reconnect for 17 s."""
    from celery.worker.consumer import Consumer as CeleryConsumer

    from jobline.compat.celery import DELAYED_DELIVERY_STEP, Consumer

    celerys = CeleryConsumer.Blueprint.default_steps
    assert DELAYED_DELIVERY_STEP in celerys, "Celery renamed the step: the filter is stale"
    assert Consumer.Blueprint.default_steps == [s for s in celerys if s != DELAYED_DELIVERY_STEP]


def test_jobline_workers_use_that_consumer() -> None:
    from celery.utils.imports import symbol_by_name

    from jobline.compat.celery import Consumer
    from jobline.config import Settings
    from jobline.jobs.spec import load_queues
    from jobline.queueing.app import create_celery
    from tests.support import REPO

    app = create_celery(Settings(env="development"), load_queues(REPO / "queues.yaml"))
    assert symbol_by_name(app.conf.worker_consumer) is Consumer
