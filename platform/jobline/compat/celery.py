"""Celery internals jobline relies on. Tested with celery 5.7.

- Building a task message without sending it (`app.amqp.as_task_v2`): the confirming
  publisher (queueing/confirms.py) pipelines many messages on one channel instead of
  apply_async's one publish and one confirm wait per message; the messages are Celery's
  own protocol 2, so workers cannot tell them from apply_async's.
- A worker consumer without the native delayed delivery bootstep (`Consumer`, named by
  the `worker_consumer` setting).
"""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer

# The bootstep Celery adds to a worker's consumer when a queue is a quorum queue.
DELAYED_DELIVERY_STEP = "celery.worker.consumer.delayed_delivery:DelayedDelivery"


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


class Consumer(CeleryConsumer):  # type: ignore[misc]  # celery ships no types
    """Celery's worker consumer without its native delayed delivery bootstep.

    Celery adds that step when a queue is a quorum queue: at every (re)connection it
    declares delay exchanges and queues and binds the app's queues to them, once per URL
    of the broker list, retrying each for several seconds, before consuming anything. On
    a cluster with a node dead, every reconnect spent 17 s retrying the dead node with
    nothing consumed (issue 16). jobline sends no broker-delayed (ETA/countdown) message:
    a delay or a retry waits in the database outbox and is published when due, so the step
    only ever cost time. (Its binding also refuses jobline's direct exchanges, with a
    warning per queue at each start.)
    """

    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
        default_steps = [
            step for step in CeleryConsumer.Blueprint.default_steps if step != DELAYED_DELIVERY_STEP
        ]
