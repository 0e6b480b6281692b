"""Reconciliation: a job the database holds `queued` whose message the broker lost is
published again, as a new dispatch generation, so it still runs exactly once.

The broker cannot be asked whether it holds one job's message, only how many messages a
queue holds. So a round compares counts, per domain:

1. The broker. RabbitMQ's management API (when it answers) gives the queue's ready and
   unacknowledged messages, sampled every few seconds; a passive `queue.declare` gives the
   ready count now and the consumers. What the broker may hold of the domain's jobs,
   `held`, is the larger of the ready count now and the sample's ready + unacked; without
   the management API, the ready count + consumers x (concurrency x prefetch of
   queues.yaml), the most a domain's workers may hold unacknowledged.
2. The database. Jobs `queued` in the domain's queue for longer than
   JOBLINE_RECONCILE_GRACE_SECONDS (by the time of their last event: the `queued`, or a
   `requeued`), and with no outbox row (a job a worker deferred, queueing/fairness.py, is
   waiting for the relay, not the broker). A job queued more recently may have been
   published after the broker was counted, or be missing from the management API's
   sample; it is not counted. `pending` and `retrying` jobs are not counted: they wait
   for their outbox row, which the relay publishes, and a published one is `queued` in
   the transaction that deletes its row.
3. If the database counts more than `held`, the surplus is lost: the broker cannot hold
   them. Queues are first in, first out, and a loss (a purge, a deleted queue, a reset
   node) takes the oldest messages with it, so the oldest surplus jobs are the ones
   published again. A long backlog is no loss: it is in the ready count.

A round of a relay publishes a job again only when its previous round found it lost too,
unmoved (same generation, same queued time): a count wrong for a moment (a message
published or taken between the two counts) costs nothing, and a job whose old message a
worker was about to start has by then recorded `started`.

Each chosen job is published again in its own transaction: its row locked, still
`queued` at the generation it was counted at and still without an outbox row, it records
`requeued` (the generation + 1 and the reason) and writes an outbox row, which the relay
publishes as any other, carrying the new generation. A worker acks and drops a message of
an older generation without running it (queueing/delivery.py); `started` checks the
generation in the transaction that locks the job's row, so a republish and a start of the
old message are serialized by that lock: exactly one wins.

Only one reconciler acts per round: the relays of every API process and `jobline relay`
try a named lock of the database (MariaDB's GET_LOCK) and the one that gets it counts.
Two that race anyway (a database without named locks) each need the job still at the
generation they counted: one republish per decision. A job just published again is not
counted for the grace period, so the next round does not count it twice.

Only RabbitMQ counts its messages: on the embedded file broker (`jobline dev`) there is no
reconciliation (reconcilable() says why).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from uuid import UUID

import anyio.to_thread
import httpx
from amqp.exceptions import AMQPError, NotFound
from kombu import Connection
from kombu.exceptions import KombuError
from tortoise import connections
from tortoise.exceptions import IntegrityError

from jobline.compat.tortoise import meta
from jobline.config import EMBEDDED_BROKER, Settings, management_api, redact_url
from jobline.dialects import DATABASE_ERRORS, dialect_of
from jobline.errors import BrokerUnavailable, InvalidTransition, JobNotFound, reason
from jobline.jobs.events import EventType
from jobline.jobs.models import DispatchRow, JobRow
from jobline.jobs.outbox import Outbox
from jobline.jobs.projection import JobView
from jobline.jobs.spec import DomainSpec, Queues
from jobline.jobs.states import JobState
from jobline.jobs.store import JobStore, utcnow
from jobline.queueing.app import declare_queue

log = logging.getLogger("jobline.reconcile")

# The named lock one reconciler holds for its round (with the database's name in it).
LOCK_NAME = "jobline:reconcile:"
REASON_LOST = "lost by the broker"


@dataclass(frozen=True, slots=True)
class BrokerCount:
    """What the broker says of one queue: ready messages now, consumers, and the
    management API's sample (ready, unacked) when it answered."""

    ready: int
    consumers: int
    sampled_ready: int | None = None
    sampled_unacked: int | None = None

    def held(self, per_consumer: int) -> int:
        """The most messages of old jobs the queue and its consumers may hold."""
        if self.sampled_ready is not None and self.sampled_unacked is not None:
            return max(self.ready, self.sampled_ready + self.sampled_unacked)
        return self.ready + self.consumers * per_consumer

    def describe(self) -> str:
        if self.sampled_unacked is not None:
            return (
                f"ready {self.ready}, unacked {self.sampled_unacked} (management API), "
                f"consumers {self.consumers}"
            )
        return f"ready {self.ready}, consumers {self.consumers} (no management API)"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A queued job counted against the broker: its attempt and generation as counted."""

    job_id: UUID
    attempt: int
    generation: int
    queued_at: datetime


@dataclass(slots=True)
class DomainRound:
    """One domain's part of a round: the counts, and the jobs chosen to publish again."""

    domain: str
    queue: str
    broker: BrokerCount
    held: int
    queued: int = 0  # queued jobs counted (at most held + the round's maximum)
    chosen: list[Candidate] = field(default_factory=list)
    republished: int = 0
    waiting: int = 0  # found lost for the first time: published if the next round agrees

    def describe(self) -> str:
        lost = len(self.chosen)
        return (
            f"{self.domain} (queue {self.queue}): broker {self.broker.describe()}: holds at "
            f"most {self.held}; database: {self.queued} queued job(s) over the grace period "
            f"without an outbox row; lost: {lost}"
        )


@dataclass(slots=True)
class Round:
    """A whole round: per domain, or why it did not run."""

    domains: list[DomainRound] = field(default_factory=list)
    skipped: str | None = None

    @property
    def republished(self) -> int:
        return sum(d.republished for d in self.domains)


def reconcilable(settings: Settings) -> str | None:
    """None when this broker can be reconciled; otherwise why not."""
    if settings.broker_url.startswith(EMBEDDED_BROKER) or not settings.broker_url.startswith(
        "amqp"
    ):
        return (
            "the embedded broker counts no messages per queue: reconciliation needs RabbitMQ "
            "(a job queued in `jobline dev` whose broker files were deleted is not found)"
        )
    return None


class BrokerCounts:
    """Counts RabbitMQ's queues: a passive declare per domain, one management API request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.timeout = settings.broker_publish_timeout_seconds

    async def count(self, domains: Sequence[DomainSpec]) -> dict[str, BrokerCount]:
        """Each domain's queue counted, by queue name (off the event loop: kombu and httpx
        block)."""
        return await anyio.to_thread.run_sync(
            lambda: self._count(list(domains)), abandon_on_cancel=True
        )

    def _count(self, domains: list[DomainSpec]) -> dict[str, BrokerCount]:
        try:
            return self._declare(domains)
        except (OSError, KombuError, AMQPError) as exc:
            url = redact_url(self.settings.broker_url)
            raise BrokerUnavailable(f"broker {url} is unreachable: {reason(exc)}") from exc

    def _declare(self, domains: list[DomainSpec]) -> dict[str, BrokerCount]:
        # The sample first: a message then ready is, by the declare, ready or taken.
        sampled = self._sample()
        counts: dict[str, BrokerCount] = {}
        with Connection(
            self.settings.broker_url,
            connect_timeout=self.timeout,
            transport_options={"read_timeout": self.timeout, "write_timeout": self.timeout},
        ) as connection:
            connection.ensure_connection(max_retries=1)
            channel = connection.channel()
            for domain in domains:
                try:
                    _, ready, consumers = channel.queue_declare(queue=domain.queue, passive=True)
                except NotFound:
                    # The queue is gone (deleted by hand, a reset node): its messages with it.
                    # Declared again, so the jobs published again have somewhere to go.
                    log.warning("queue %s does not exist; declaring it", domain.queue)
                    channel = connection.channel()
                    declare_queue(domain)(channel).declare()
                    ready, consumers = 0, 0
                sample = sampled.get(domain.queue)
                counts[domain.queue] = BrokerCount(
                    int(ready),
                    int(consumers),
                    None if sample is None else sample[0],
                    None if sample is None else sample[1],
                )
        return counts

    def _sample(self) -> dict[str, tuple[int, int]]:
        """Per queue of the vhost: (ready, unacked) from the management API, or nothing."""
        api = management_api(self.settings)
        if api is None:
            return {}
        parts = urlsplit(api)
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
        netloc = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        base = parts._replace(netloc=netloc).geturl().rstrip("/")
        first = self.settings.broker_url.split(";")[0].strip()
        vhost = unquote(urlsplit(first).path.lstrip("/")) or "/"
        url = f"{base}/queues/{quote(vhost, safe='')}"
        try:
            answer = httpx.get(
                url,
                params={"columns": "name,messages_ready,messages_unacknowledged"},
                auth=auth if parts.username else None,
                timeout=self.timeout,
            )
            answer.raise_for_status()
            rows = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.debug("the management API did not answer (%r): counting without it", exc)
            return {}
        sampled: dict[str, tuple[int, int]] = {}
        for row in rows if isinstance(rows, list) else []:
            ready, unacked = row.get("messages_ready"), row.get("messages_unacknowledged")
            # A queue just declared has no statistics yet: not sampled.
            if isinstance(ready, int) and isinstance(unacked, int):
                sampled[str(row.get("name"))] = (ready, unacked)
        return sampled


class _Moved(Exception):
    """The job is no longer as it was counted: someone else published or started it."""


class Reconciler:
    """Counts each domain's queued jobs against its queue and publishes the lost ones again."""

    def __init__(
        self, store: JobStore, queues: Queues, settings: Settings, broker: BrokerCounts
    ) -> None:
        self.store = store
        self.queues = queues
        self.broker = broker
        self.grace = settings.reconcile_grace_seconds
        self.max_per_round = settings.reconcile_max_per_round
        self.lease = settings.relay_lease_seconds
        self.lock_wait = settings.reconcile_lock_wait_seconds
        # The jobs this reconciler found lost in its last round, as they were then
        # (generation, queued at): with `confirm`, a job is published again only when found
        # lost twice, unmoved.
        self._suspects: dict[UUID, tuple[int, datetime]] = {}

    async def run_once(
        self,
        domains: Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        wait: bool = False,
        confirm: bool = False,
    ) -> Round:
        """One round over `domains` (all by default); with `dry_run`, only counted.

        With `confirm` (the relays' rounds), a job found lost is published again only if
        the previous round found it lost too, at the same generation and queued time: a
        count that was wrong for a moment (a message published or taken between the
        broker's count and the database's) does not republish a job whose message a
        worker may be starting. `jobline reconcile`, an operator's order, acts at once.
        Skipped when another reconciler holds the round's lock (`wait`: for up to
        JOBLINE_RECONCILE_LOCK_WAIT_SECONDS first).
        """
        specs = [
            (name, spec)
            for name, spec in self.queues.domains.items()
            if domains is None or name in domains
        ]
        db = connections.get("default")
        dialect = dialect_of(db)
        if not dialect.supports_named_locks:
            return await self._round(specs, dry_run, confirm)  # one writer at a time (SQLite)
        # The lock is its connection's: one of the pool's, held for the round, outside any
        # transaction (the round's own statements take other connections).
        async with db.acquire_connection() as holder, holder.cursor() as cursor:
            await cursor.execute(
                dialect.database_lock_sql(), [LOCK_NAME, self.lock_wait if wait else 0]
            )
            (got,) = await cursor.fetchone()
            if got != 1:
                return Round(skipped="another reconciler is running a round")
            try:
                return await self._round(specs, dry_run, confirm)
            finally:
                await cursor.execute(dialect.database_unlock_sql(), [LOCK_NAME])

    async def _round(
        self, specs: list[tuple[str, DomainSpec]], dry_run: bool, confirm: bool
    ) -> Round:
        # The broker first: a job counted in the database was published before it.
        counts = await self.broker.count([spec for _, spec in specs])
        cutoff = utcnow() - timedelta(seconds=self.grace)
        result = Round()
        suspects, self._suspects = self._suspects, {}
        for name, spec in specs:
            count = counts[spec.queue]
            held = count.held(spec.concurrency * spec.prefetch)
            part = DomainRound(name, spec.queue, count, held)
            result.domains.append(part)
            if await _count_queued(spec.queue, held + 1) <= held:
                continue  # every queued job may be in the broker: nothing can be lost
            found = await _old_queued(spec.queue, cutoff, held + self.max_per_round)
            part.queued = len(found)
            part.chosen = found[: max(0, len(found) - held)]
            if part.chosen:
                log.warning("lost messages: %s", part.describe())
            if dry_run:
                continue
            reason = (
                f"{REASON_LOST}: {len(found)} job(s) queued over {self.grace:g}s, "
                f"the queue holds at most {held}"
            )
            for candidate in part.chosen:
                seen = (candidate.generation, candidate.queued_at)
                if confirm and suspects.get(candidate.job_id) != seen:
                    self._suspects[candidate.job_id] = seen  # published next round, if still lost
                    part.waiting += 1
                elif await self.requeue(candidate, reason):
                    part.republished += 1
        return result

    async def requeue(self, candidate: Candidate, reason: str) -> bool:
        """Publish one job again as its next generation: `requeued` and an outbox row, in one
        transaction, only while the job is still queued as counted. Whether it was."""
        write, _ = Outbox.writer(candidate.attempt, utcnow(), None, self.lease)

        async def still_lost(conn: Any, locked: JobView) -> None:
            if (
                locked.state is not JobState.QUEUED
                or locked.attempt != candidate.attempt
                or locked.generation != candidate.generation
            ):
                raise _Moved()
            if await DispatchRow.filter(job_id=locked.id).using_db(conn).exists():
                raise _Moved()  # deferred meanwhile: the relay publishes it
            await write(conn, locked)

        data = {"generation": candidate.generation + 1, "reason": reason}
        try:
            await self.store.append(
                candidate.job_id,
                EventType.REQUEUED,
                data,
                attempt=candidate.attempt,
                also=still_lost,
            )
        except (_Moved, InvalidTransition, JobNotFound, IntegrityError):
            return False
        log.info(
            "job %s published again as generation %d (%s)",
            candidate.job_id,
            candidate.generation + 1,
            reason,
        )
        return True


async def _count_queued(queue: str, limit: int) -> int:
    """The domain's queued jobs, counted up to `limit` (idx_jobs_queue_state alone)."""
    db = connections.get("default")
    q, mark = dialect_of(db).ident, dialect_of(db).mark
    _, rows = await db.execute_query(
        f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM {q(meta(JobRow).db_table)} "
        f"WHERE {q('queue')} = {mark} AND {q('state')} = {mark} LIMIT {mark}) AS found",
        [queue, JobState.QUEUED.value, limit],
    )
    return int(rows[0]["n"])


async def _old_queued(queue: str, cutoff: datetime, limit: int) -> list[Candidate]:
    """The domain's jobs queued before `cutoff` with no outbox row, oldest first, at most
    `limit`."""
    db = connections.get("default")
    dialect = dialect_of(db)
    q, mark = dialect.ident, dialect.mark
    jobs, dispatch = meta(JobRow), meta(DispatchRow)
    updated = jobs.fields_map["updated_at"]
    _, rows = await db.execute_query(
        f"SELECT j.{q('id')} AS id, j.{q('attempt')} AS attempt, "
        f"j.{q('generation')} AS generation, j.{q('updated_at')} AS updated_at "
        f"FROM {q(jobs.db_table)} AS j "
        f"WHERE j.{q('queue')} = {mark} AND j.{q('state')} = {mark} "
        f"AND j.{q('updated_at')} < {mark} "
        f"AND NOT EXISTS (SELECT 1 FROM {q(dispatch.db_table)} AS d "
        f"WHERE d.{q('job_id')} = j.{q('id')}) "
        f"ORDER BY j.{q('updated_at')}, j.{q('id')} LIMIT {mark}",
        [queue, JobState.QUEUED.value, updated.to_db_value(cutoff, JobRow), limit],
    )
    return [
        Candidate(
            UUID(str(row["id"])),
            int(row["attempt"]),
            int(row["generation"]),
            updated.to_python_value(row["updated_at"]),
        )
        for row in rows
    ]


class ReconcileLoop:
    """Runs a round every JOBLINE_RECONCILE_INTERVAL_SECONDS beside a relay, until stopped."""

    def __init__(self, reconciler: Reconciler, interval: float) -> None:
        self.reconciler = reconciler
        self.interval = interval
        self.rounds = 0
        # Set before the task is cancelled: a cancelled query may surface as a driver
        # error, not CancelledError, and the loop must end all the same.
        self.stopping = False

    async def run(self) -> None:
        """Rounds until cancelled; database and broker errors are logged and outlived."""
        while not self.stopping:
            await asyncio.sleep(self.interval)
            try:
                await self.reconciler.run_once(confirm=True)
            except DATABASE_ERRORS as exc:
                log.warning("reconciliation round failed (%r)", exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The broker away: the relay's own publishing says so; once a round is enough.
                log.warning("reconciliation round failed (%r)", exc)
            self.rounds += 1
