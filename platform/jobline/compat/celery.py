"""Celery internals jobline relies on. Tested with celery 5.7.

- Building a task message without sending it (`app.amqp.as_task_v2`): the confirming
  publisher (queueing/confirms.py) pipelines many messages on one channel instead of
  apply_async's one publish and one confirm wait per message; the messages are Celery's
  own protocol 2, so workers cannot tell them from apply_async's.
- A worker consumer (`Consumer`, named by the `worker_consumer` setting) without the native
  delayed delivery bootstep, and with one pending wake-up per rate-limit bucket.
"""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery
from celery.worker.consumer import Consumer as CeleryConsumer
from kombu.utils.limits import TokenBucket

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
    """Celery's worker consumer, without its native delayed delivery bootstep and with one
    pending wake-up per rate-limit bucket.

    Delayed delivery: Celery adds that step when a queue is a quorum queue: at every (re)connection it
    declares delay exchanges and queues and binds the app's queues to them, once per URL
    of the broker list, retrying each for several seconds, before consuming anything. On
    a cluster with a node dead, every reconnect spent 17 s retrying the dead node with
    nothing consumed (issue 16). jobline sends no broker-delayed (ETA/countdown) message:
    a delay or a retry waits in the database outbox and is published when due, so the step
    only ever cost time. (Its binding also refuses jobline's direct exchanges, with a
    warning per queue at each start.)

    Rate limits: Celery holds a rate-limited job in its task type's token bucket and, when
    the bucket has no token, schedules a timer entry to look again. It schedules one each
    time it finds the bucket empty: at every message received and at every wake-up that
    still finds no token, so with a backlog (a worker that was away: a node died) the
    entries multiply, all due at once. kombu's event loop fires at most 10 due entries per
    turn and then polls for a full second (`Hub.fire_timers` returns its `min_delay` when
    it stops at `max_timers`), and of those 10 only one finds a token: one job per second
    for the rest of the backlog (issue 16: 250 jobs took four minutes at a 600/m limit).
    Here a bucket has at most one wake-up pending, due when its next token is.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The pending wake-up of each bucket (a kombu timer Entry).
        self.bucket_wakeups: dict[TokenBucket, Any] = {}
        # Rotates the wake-ups' timer priorities (0-9), as Celery's own entries do.
        self.wakeup_order = 0
        super().__init__(*args, **kwargs)

    def _schedule_bucket_request(self, bucket: TokenBucket) -> None:
        """Move the bucket's requests to the pool while it has tokens; then wake up once."""
        while bucket.contents:
            request, tokens = bucket.pop()
            if bucket.can_consume(tokens):
                self._limit_move_to_pool(request)
                continue
            bucket.contents.appendleft((request, tokens))  # back at the head: order kept
            pending = self.bucket_wakeups.get(bucket)
            if pending is None or pending.canceled:
                self.wakeup_order = (self.wakeup_order + 1) % 10
                self.bucket_wakeups[bucket] = self.timer.call_after(
                    bucket.expected_time(tokens),
                    self._bucket_wakeup,
                    (bucket,),
                    priority=self.wakeup_order,
                )
            return

    def _bucket_wakeup(self, bucket: TokenBucket) -> None:
        self.bucket_wakeups.pop(bucket, None)
        self._schedule_bucket_request(bucket)

    def on_close(self) -> None:
        # Celery empties the buckets here (their requests' messages go with the channel);
        # their wake-ups go too.
        for pending in self.bucket_wakeups.values():
            self.timer.cancel(pending)
        self.bucket_wakeups.clear()
        super().on_close()

    class Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
        default_steps = [
            step for step in CeleryConsumer.Blueprint.default_steps if step != DELAYED_DELIVERY_STEP
        ]
