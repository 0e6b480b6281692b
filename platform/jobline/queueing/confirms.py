"""Publishing many job messages at once: one persistent channel, pipelined publisher confirms.

apply_async publishes one message and waits for its confirm before the next; at a few
thousand submits a second that is a round trip to RabbitMQ per job, each on a thread of
its own, plus Celery's routing and a `task-sent` event per message. Here a batch of
messages is written to one channel in confirm mode and their confirms are awaited
together: one round trip per batch, sent in one write (compat/amqp.py). The messages are
Celery's own (protocol 2, built as apply_async does, compat/celery.py), so workers cannot
tell them from apply_async's.

py-amqp blocks and is not thread-safe: each batch runs on a worker thread, one batch at a
time per channel, and the event loop only awaits it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu import Connection
from kombu.serialization import dumps

from jobline.compat.amqp import one_write
from jobline.compat.celery import task_message
from jobline.jobs.projection import JobView
from jobline.jobs.spec import Queues
from jobline.logging import REQUEST_ID_MESSAGE_HEADER
from jobline.queueing.app import declare_queue
from jobline.queueing.dispatch import message_kwargs

log = logging.getLogger("jobline.relay")

PERSISTENT = 2  # AMQP delivery mode: RabbitMQ writes the message to disk before confirming


class MessageNacked(Exception):
    """RabbitMQ refused the message (a negative publisher confirm)."""


@dataclass(frozen=True, slots=True)
class JobMessage:
    """One attempt of a job to publish: its view, its Celery task id, the submitting request."""

    view: JobView
    task_id: str
    request_id: str | None = None


class ConfirmingPublisher:
    """Publishes batches of job messages on one persistent channel; see the module docstring.

    `publish_many` returns one outcome per message: None when RabbitMQ confirmed it,
    TimeoutError when its confirm did not come in time (it may still be delivered), or
    the error that kept it from being published.
    """

    def __init__(
        self, app: Celery, queues: Queues, broker_url: str, timeout: float, idle_seconds: float
    ) -> None:
        self.app = app
        self.queues = queues
        self.broker_url = broker_url
        self.timeout = timeout
        # A connection unused this long is reopened before use: without heartbeats, a
        # silently dropped one would otherwise only show as a confirm timeout.
        self.idle_seconds = idle_seconds
        self.origin = anon_nodename()
        self._limiter = anyio.CapacityLimiter(1)
        self._broker: Any = None  # the kombu Connection, kept across reconnects
        self._connection: Any = None  # the same while a channel is open, else None
        self._channel: Any = None
        self._last_used = 0.0
        self._tag = 0  # the delivery tag of the channel's last publish
        self._unsettled: dict[int, bool | None] = {}
        self.published = 0

    async def publish_many(self, messages: Sequence[JobMessage]) -> list[Exception | None]:
        """Publish the messages and wait for their confirms (at most `timeout`)."""
        if not messages:
            return []
        return await anyio.to_thread.run_sync(
            self._publish_sync, list(messages), limiter=self._limiter
        )

    def close(self) -> None:
        """Close the channel's connection (the next batch opens a new one)."""
        self._reset()

    def _publish_sync(self, messages: list[JobMessage]) -> list[Exception | None]:
        deadline = time.monotonic() + self.timeout
        outcomes = self._publish_batch(messages, deadline)
        nacked = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, MessageNacked)]
        if nacked and deadline - time.monotonic() >= self.timeout / 2:
            # A channel whose first publish to a quorum queue met the queue without a leader
            # (a node just died, the election running) has every later publish to it nacked,
            # for as long as the channel lives (RabbitMQ 3.10, measured: 148 of 148 in 30 s
            # while a new channel's were acked). So a nack closes the channel, and the
            # nacked messages get one more try on a new one if half the time is left (a
            # confirm timeout would hold their rows for a lease; a nack frees them at once).
            self._reset()
            again = self._publish_batch([messages[i] for i in nacked], deadline)
            for i, outcome in zip(nacked, again, strict=True):
                outcomes[i] = outcome
        if any(isinstance(outcome, MessageNacked) for outcome in outcomes):
            self._reset()
        self.published += sum(1 for o in outcomes if o is None)
        return outcomes

    def _publish_batch(self, messages: list[JobMessage], deadline: float) -> list[Exception | None]:
        """Publish on the channel (opened if needed) and wait for the confirms until `deadline`."""
        try:
            channel = self._ensure_channel()
            first = self._tag + 1
            with one_write(self._connection.connection):
                for message in messages:
                    self._publish_one(channel, message)
            self._wait_confirms(first, deadline)
        except TimeoutError as exc:
            # The broker may still take them: the channel cannot tell any more, so it goes.
            self._reset()
            return [exc] * len(messages)
        except Exception as exc:
            self._reset()
            return [exc] * len(messages)
        outcomes: list[Exception | None] = []
        for tag in range(first, first + len(messages)):
            acked = self._unsettled.pop(tag)
            outcomes.append(None if acked else MessageNacked(f"RabbitMQ nacked delivery {tag}"))
        self._last_used = time.monotonic()
        return outcomes

    def _ensure_channel(self) -> Any:
        if self._channel is not None and time.monotonic() - self._last_used > self.idle_seconds:
            self._reset()
        if self._channel is None:
            if self._broker is None:
                self._broker = Connection(
                    self.broker_url,
                    connect_timeout=self.timeout,
                    transport_options={"read_timeout": self.timeout, "write_timeout": self.timeout},
                )
            # One object for the publisher's life, closed and opened again: kombu keeps its
            # place in a failover list (`url1;url2;url3`), so a new channel starts from the
            # node that last worked rather than the first URL, which may be a dead node whose
            # connect takes the whole timeout. One try per node of the list.
            connection = self._broker
            try:
                connection.ensure_connection(max_retries=max(1, self.broker_url.count(";")))
                channel = connection.channel()
                for domain in self.queues.domains.values():
                    declare_queue(domain)(channel).declare()
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
            except Exception:
                self._close(connection)
                raise
            self._connection, self._channel = connection, channel
            self._tag = 0
            self._unsettled.clear()
        return self._channel

    def _publish_one(self, channel: Any, message: JobMessage) -> None:
        """Publish as apply_async would (Celery protocol 2), but without waiting."""
        view = message.view
        job_type = self.queues.job_types[view.type]
        kwargs = message_kwargs(view)
        task = task_message(
            self.app,
            message.task_id,
            job_type.name,
            kwargs,
            origin=self.origin,
            # The payload is in jobline's store; logs and Flower need only the job id.
            argsrepr="()",
            kwargsrepr=repr({"job_id": str(view.id)}),
        )
        headers = dict(task.headers)
        if message.request_id is not None:
            headers[REQUEST_ID_MESSAGE_HEADER] = message.request_id
        content_type, content_encoding, body = dumps(task.body, serializer="json")
        properties = {**task.properties, "delivery_mode": PERSISTENT}
        amqp_message = channel.prepare_message(
            body, view.priority, content_type, content_encoding, headers, properties
        )
        # Celery sends to the default exchange, routed by queue name (a direct exchange).
        channel.basic_publish(amqp_message, exchange="", routing_key=job_type.queue)
        self._tag += 1
        self._unsettled[self._tag] = None

    def _wait_confirms(self, first: int, deadline: float) -> None:
        while any(self._unsettled[tag] is None for tag in range(first, self._tag + 1)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no publisher confirm within {self.timeout:.1f}s")
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue  # the loop re-checks the deadline
            except OSError as exc:
                if "timed out" in str(exc):
                    continue
                raise

    def _settle(self, tag: int, multiple: bool, acked: bool) -> None:
        if multiple:
            for waiting in self._unsettled:
                if waiting <= tag and self._unsettled[waiting] is None:
                    self._unsettled[waiting] = acked
        elif tag in self._unsettled:
            self._unsettled[tag] = acked

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, True)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple, False)

    def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._unsettled.clear()
        if connection is not None:
            self._close(connection)

    @staticmethod
    def _close(connection: Any) -> None:
        try:
            connection.close()
        except Exception:
            log.debug("closing the publishing connection failed", exc_info=True)
