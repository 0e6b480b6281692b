"""Notices of committed events on a RabbitMQ fanout exchange: a hint to read, never the data.

Whoever appends an event (a worker, the API) publishes a notice after the commit; every
API process consumes them on its own exclusive queue and wakes its feed. Both sides run
kombu on a thread of their own, so an append never waits for the broker and a broker
outage only costs latency: the feed's safety-net read still finds every event.

An API process binds a queue only while it has followers (NoticeListener), so most of the
time nobody takes the notices. They are published `mandatory`: when RabbitMQ returns one
(no queue bound to the exchange), the publisher sends none for `probe_seconds`, then tries
again with the next. A worker then spends nothing per job on notices nobody reads (0.13 ms
of a pool child's CPU per no-op job, bench/README.md), and a process that gets its first
follower has notices again within `probe_seconds`; its feed's safety-net read covers the
gap, as it covers a broker outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import amqp
from kombu import Connection, Exchange, Queue

from jobline.jobs.events import Event

log = logging.getLogger("jobline.streaming")

# (row id, job id, seq, owner id): enough to route a notice without a read.
Notice = tuple[int, str, int, str | None]


def events_exchange(name: str) -> Exchange:
    return Exchange(name, type="fanout", durable=True, auto_delete=False)


class Notifier:
    """Publishes a notice of each committed event, from its own thread.

    `committed` is the store's after-commit hook: it only queues the notice. Notices are
    dropped when the buffer is full or the broker is down (`dropped` counts them), and not
    sent while nobody takes them (`unread` counts those; see the module docstring).
    """

    def __init__(
        self,
        broker_url: str,
        exchange: str,
        *,
        buffer: int,
        retry_seconds: float,
        connect_timeout: float,
        probe_seconds: float = 0.0,
    ) -> None:
        self.broker_url = broker_url
        self.exchange = events_exchange(exchange)
        self.probe_seconds = probe_seconds
        # Until then no queue took the last notice: none is sent. Written by the publishing
        # thread, read by committers (a float: a torn read cannot happen).
        self._unread_until = 0.0
        self.unread = 0
        self.retry_seconds = retry_seconds
        self.connect_timeout = connect_timeout
        self.buffer = buffer
        self._queue: queue.Queue[Notice | None] = queue.Queue(maxsize=buffer)
        self._thread: threading.Thread | None = None
        self.published = 0
        self.dropped = 0

    def committed(self, event: Event, owner_id: UUID | None, row_id: int) -> None:
        """Queue a notice of a committed event; never blocks, never raises."""
        if time.monotonic() < self._unread_until:
            # Nobody follows: not even a hand-over to the publishing thread.
            self.unread += 1
            return
        notice = (row_id, str(event.job_id), event.seq, str(owner_id) if owner_id else None)
        try:
            self._queue.put_nowait(notice)
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobline-notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Publish what is queued, then stop (waits at most `timeout`)."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        # One connection object for the thread's life, closed and opened again: kombu keeps
        # its place in a failover list, so after a node dies the next connect starts from
        # the node that worked last, not from the first URL (one try per node of the list).
        connection: Any = Connection(self.broker_url, connect_timeout=self.connect_timeout)
        producer: Any = None
        down_until = 0.0
        while True:
            first = self._queue.get()
            batch = [first]
            while len(batch) < self.buffer:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            notices = [n for n in batch if n is not None]
            if producer is not None and notices:
                # Returns of earlier notices (no queue bound) are read here, never waited for;
                # only on an open channel: reading would (re)connect a closed connection
                # outside the failover order and the retry delay of the publish below.
                self._read_returns(connection)
            if notices and time.monotonic() < down_until:
                self.dropped += len(notices)
            elif notices and time.monotonic() < self._unread_until:
                self.unread += len(notices)
            elif notices:
                try:
                    if producer is None:
                        connection.ensure_connection(max_retries=max(1, self.broker_url.count(";")))
                        producer = connection.default_channel
                        self.exchange(producer).declare()
                        producer.events["basic_return"].add(self._on_return)
                    # py-amqp's own publish, not kombu's Producer.publish: the same frames
                    # for a quarter of the CPU (25 against 96 us measured), and a worker
                    # sends one per job.
                    producer.basic_publish(
                        amqp.Message(
                            json.dumps({"events": notices}),
                            content_type="application/json",
                            content_encoding="utf-8",
                            delivery_mode=1,  # transient: a notice is worthless after a restart
                        ),
                        exchange=self.exchange.name,
                        routing_key="",
                        # Returned when no queue is bound: nobody follows (_on_return).
                        mandatory=self.probe_seconds > 0,
                    )
                    self.published += len(notices)
                except Exception as exc:
                    log.warning(
                        "event notices not published (%s); live streams fall back to polling "
                        "for %.0fs",
                        exc,
                        self.retry_seconds,
                    )
                    self.dropped += len(notices)
                    _close(connection)
                    producer = None
                    down_until = time.monotonic() + self.retry_seconds
            if stopping:
                _close(connection)
                return

    def _read_returns(self, connection: Any) -> None:
        """Handle whatever RabbitMQ sent back so far (returned notices), without waiting."""
        try:
            while True:
                connection.drain_events(timeout=0)
        except (TimeoutError, BlockingIOError):
            return  # nothing more to read
        except Exception as exc:
            # The publish that follows finds a broken connection and handles it.
            log.debug("reading returned notices failed: %r", exc)

    def _on_return(self, *_: Any) -> None:
        # No queue took a notice: nobody follows now. Try again after probe_seconds.
        self._unread_until = time.monotonic() + self.probe_seconds


class NoticeListener:
    """Consumes notices on an exclusive, auto-deleted queue bound to the exchange.

    Runs on its own thread and hands each message's row ids to `on_notices` on the event
    loop. `on_reconnect` is called (on the loop) whenever consuming (re)starts, since
    notices published meanwhile are gone.

    It consumes only while the process has followers (`want`), and for `linger_seconds`
    after the last one left: a busy API process without followers would otherwise take
    every worker's notices for nothing. Its queue goes with its consumer (auto-delete).
    """

    def __init__(
        self,
        broker_url: str,
        exchange: str,
        loop: asyncio.AbstractEventLoop,
        on_notices: Callable[[list[int]], None],
        on_reconnect: Callable[[], None],
        *,
        max_pending: int,
        retry_seconds: float,
        connect_timeout: float,
        stop_check_seconds: float,
        linger_seconds: float = 0.0,
    ) -> None:
        self.broker_url = broker_url
        self.exchange = events_exchange(exchange)
        self.loop = loop
        self.on_notices = on_notices
        self.on_reconnect = on_reconnect
        self.max_pending = max_pending
        self.retry_seconds = retry_seconds
        self.connect_timeout = connect_timeout
        self.stop_check_seconds = stop_check_seconds
        self.linger_seconds = linger_seconds
        self.consuming = threading.Event()
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._unwanted_since = 0.0
        self._thread: threading.Thread | None = None

    def want(self, wanted: bool) -> None:
        """Followers came (True) or the last one left (False); callable from any thread."""
        if wanted:
            self._wanted.set()
        else:
            self._unwanted_since = time.monotonic()
            self._wanted.clear()

    def _still_wanted(self) -> bool:
        return self._wanted.is_set() or (
            time.monotonic() - self._unwanted_since < self.linger_seconds
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jobline-notices", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        # Kept across reconnects, as the Notifier's: after a node dies, consuming starts
        # again from the node that worked last (one try per node of the failover list).
        connection = Connection(self.broker_url, connect_timeout=self.connect_timeout)
        while not self._stop.is_set():
            if not self._wanted.wait(self.stop_check_seconds):
                continue
            try:
                self._consume(connection)
            except Exception as exc:
                self.consuming.clear()
                log.warning(
                    "event notices unavailable (%s); live streams fall back to polling", exc
                )
                self._stop.wait(self.retry_seconds)

    def _consume(self, connection: Any) -> None:
        name = f"jobline.events.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        inbox = Queue(
            name,
            self.exchange,
            routing_key="",
            exclusive=True,
            auto_delete=True,
            durable=False,
            # A backlog this long is worth one read anyway: older notices can go.
            queue_arguments={"x-max-length": self.max_pending},
        )
        connection.ensure_connection(max_retries=max(1, self.broker_url.count(";")))
        # Leaving the block closes the connection; the object connects again next time.
        with (
            connection,
            connection.Consumer(inbox, callbacks=[self._on_message], accept=["json"], no_ack=True),
        ):
            self.consuming.set()
            self.loop.call_soon_threadsafe(self.on_reconnect)
            try:
                while not self._stop.is_set() and self._still_wanted():
                    try:
                        connection.drain_events(timeout=self.stop_check_seconds)
                    except TimeoutError:
                        continue
            finally:
                self.consuming.clear()

    def _on_message(self, body: Any, _message: Any) -> None:
        try:
            ids = [int(notice[0]) for notice in body["events"]]
        except (KeyError, TypeError, ValueError, IndexError):
            log.warning("ignoring a malformed event notice: %r", body)
            return
        self.loop.call_soon_threadsafe(self.on_notices, ids)


def _close(connection: Any) -> None:
    """Close a connection; the object may connect again (kombu reopens a closed one)."""
    try:
        connection.close()
    except Exception:
        log.debug("closing the notice connection failed", exc_info=True)
