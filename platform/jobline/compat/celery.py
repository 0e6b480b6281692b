"""Celery internals: building a task message without sending it (`app.amqp.as_task_v2`).
Tested with celery 5.7.

The confirming publisher (queueing/confirms.py) pipelines many messages on one channel
instead of apply_async's one publish and one confirm wait per message; the messages are
Celery's own protocol 2, so workers cannot tell them from apply_async's.
"""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery


class TaskMessage(Protocol):
    """What as_task_v2 returns (a namedtuple): AMQP headers, properties and the body."""

    headers: dict[str, Any]
    properties: dict[str, Any]
    body: Any


def task_message(
    app: Celery,
    task_id: str,
    name: str,
    kwargs: dict[str, Any],
    *,
    origin: str,
    argsrepr: str,
    kwargsrepr: str,
) -> TaskMessage:
    """The protocol-2 message apply_async would send for `name(**kwargs)`, results ignored."""
    message: TaskMessage = app.amqp.as_task_v2(
        task_id,
        name,
        kwargs=kwargs,
        ignore_result=True,
        origin=origin,
        argsrepr=argsrepr,
        kwargsrepr=kwargsrepr,
    )
    return message
