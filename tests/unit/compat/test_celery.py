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
