"""Contract of compat/celery.py with Celery: `app.amqp.as_task_v2` builds the protocol-2
message apply_async sends, without sending it."""

from __future__ import annotations

import inspect
from typing import Any

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


class Requests:
    """Stands in for the consumer's pool: what the bucket let through."""

    def __init__(self) -> None:
        self.moved: list[str] = []

    def __call__(self, request: str) -> None:
        self.moved.append(request)


def held_consumer(cls: type[Any]) -> tuple[object, Requests]:
    """A consumer of `cls` with only what the rate-limit path reads: a timer and a pool."""
    from kombu.asynchronous.timer import Timer

    # An instance without __init__ (neither consumer class defines its own __new__).
    consumer: Any = object.__new__(cls)
    consumer.timer = Timer()
    consumer._limit_order = 0
    consumer.bucket_wakeups = {}
    consumer.wakeup_order = 0
    moved = Requests()
    consumer._limit_move_to_pool = moved
    return consumer, moved


def backlog(consumer: object, n: int) -> object:
    """A 10/s bucket, its token spent, and `n` requests arriving one by one."""
    from kombu.utils.limits import TokenBucket

    bucket = TokenBucket(10, capacity=1)
    bucket.can_consume(1)
    for i in range(n):
        consumer._limit_task(f"request-{i}", bucket, 1)  # type: ignore[attr-defined]
    return bucket


def test_celerys_rate_limit_path_schedules_a_wakeup_per_arrival() -> None:
    """The bug the consumer works around (issue 16): a backlog of 20 makes 20 timer entries,
    all due at once; kombu's loop fires 10 per turn, then polls for a second."""
    from celery.worker.consumer import Consumer as CeleryConsumer

    consumer, moved = held_consumer(CeleryConsumer)
    backlog(consumer, 20)
    assert moved.moved == [] and len(consumer.timer.queue) == 20  # type: ignore[attr-defined]


def test_jobline_keeps_one_wakeup_per_bucket_and_the_order() -> None:
    import time

    from jobline.compat.celery import Consumer

    consumer, moved = held_consumer(Consumer)
    bucket = backlog(consumer, 20)
    timer = consumer.timer  # type: ignore[attr-defined]
    assert moved.moved == [] and len(timer.queue) == 1
    time.sleep(0.11)  # a token
    _, due = next(iter(timer))  # as the event loop takes it: off the queue
    due()
    assert moved.moved == ["request-0"] and len(timer.queue) == 1
    assert len(bucket.contents) == 19  # type: ignore[attr-defined]
