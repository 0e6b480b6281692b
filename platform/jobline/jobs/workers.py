"""Worker processes' heartbeats (the `workers` table), and the running jobs of workers gone.

Each worker process beats into its row every JOBLINE_WORKER_HEARTBEAT_SECONDS
(queueing/heartbeat.py): one UPDATE, whatever it runs. A `running` job names the worker
that started it (`jobs.worker`, from the `started` event's data). When that worker has not
beaten for JOBLINE_WORKER_LOST_SECONDS, or is known to have stopped, nothing else will end
the attempt: the file broker never redelivers a message, and RabbitMQ keeps one unacked as
long as it believes the dead worker's connection open. `recover()` then ends the attempt
as a redelivery would (queueing/delivery.py): `worker_lost`, then `failed` once the job
has lost `max_worker_losses` workers, or `cancelled` when a cancel was asked meanwhile. A
requeued job's next attempt is an outbox row written in the same transaction, which the
relay publishes as a new message; the `worker_lost` event names that message's task id, so
a late redelivery of the old message is dropped by the worker (queueing/delivery.py).

The statements take a Tortoise client (`db`): the process's connection, or the heartbeat
thread's own. Times are the database's clock (Dialect.now_ms), in milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tortoise.exceptions import IntegrityError

from jobline.dialects import dialect_of
from jobline.errors import InvalidTransition, JobNotFound
from jobline.jobs.decision import Appended, Step
from jobline.jobs.events import EventType, job_error
from jobline.jobs.outbox import Outbox, task_id_for
from jobline.jobs.projection import JobView
from jobline.jobs.states import JobState
from jobline.jobs.store import JobStore, utcnow

# What a `worker_lost` found by the heartbeat says happened (its data's `reason`).
STOPPED = "its worker stopped"
SILENT = "its worker stopped beating"


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """One worker process: its Celery node name (`DOMAIN@host:pid`), domain, host and pid."""

    name: str
    domain: str
    host: str
    pid: int


@dataclass(frozen=True, slots=True)
class Gone:
    """A worker known stopped (its row says so), or silent for longer than the bound."""

    name: str
    stopped: bool


@dataclass(frozen=True, slots=True)
class Orphan:
    """A running job whose worker is gone: the attempt to end."""

    job_id: UUID
    type: str
    attempt: int
    worker: str
    cancel_requested: bool
    progress: int = 0
    message: str | None = None


def _marks(db: Any, count: int) -> str:
    return dialect_of(db).marks(count)


async def beat(db: Any, me: WorkerIdentity) -> None:
    """Prove `me` alive now: one UPDATE; the row is made on the first beat (or again, after
    forget() dropped it while the process was frozen)."""
    d = dialect_of(db)
    q, m = d.ident, d.mark
    count, _ = await db.execute_query(
        f"UPDATE {q('workers')} SET {q('beat_ms')} = {d.now_ms}, {q('stopped_ms')} = NULL"
        f" WHERE {q('name')} = {m}",
        [me.name],
    )
    if count:
        return
    columns = ", ".join(q(c) for c in ("name", "domain", "host", "pid", "started_ms", "beat_ms"))
    # IntegrityError: made meanwhile by a beat of the same name; it is fresh.
    with contextlib.suppress(IntegrityError):
        await db.execute_query(
            f"INSERT INTO {q('workers')} ({columns})"
            f" VALUES ({m}, {m}, {m}, {m}, {d.now_ms}, {d.now_ms})",
            [me.name, me.domain, me.host, me.pid],
        )


async def mark_stopped(db: Any, name: str) -> None:
    """Record that the worker stopped (its own shutdown): its running jobs, if any, are
    recovered at once, without waiting out the bound."""
    d = dialect_of(db)
    q, m = d.ident, d.mark
    await db.execute_query(
        f"UPDATE {q('workers')} SET {q('stopped_ms')} = {d.now_ms} WHERE {q('name')} = {m}",
        [name],
    )


async def take_over(db: Any, me: WorkerIdentity) -> bool:
    """Before a process's first beat: a row of its name is a predecessor's (a name reused
    across restarts: a fixed `--name`, a container restarted with the same host name and
    pid), which is gone now. It is recorded stopped, so the relays recover the jobs it left
    (which name the same worker); whether there are any."""
    d = dialect_of(db)
    q, m = d.ident, d.mark
    await db.execute_query(
        f"UPDATE {q('workers')} SET {q('stopped_ms')} = {d.now_ms}"
        f" WHERE {q('name')} = {m} AND {q('stopped_ms')} IS NULL",
        [me.name],
    )
    return bool(await orphans(db, [me.name]))


async def mark_killed(db: Any, host: str, pids: Sequence[int]) -> list[str]:
    """Record that the worker processes `pids` of `host` are gone (killed by whoever started
    them: `jobline dev`); the names of their rows."""
    if not pids:
        return []
    d = dialect_of(db)
    q, m = d.ident, d.mark
    where = f"{q('host')} = {m} AND {q('pid')} IN ({_marks(db, len(pids))})"
    await db.execute_query(
        f"UPDATE {q('workers')} SET {q('stopped_ms')} = {d.now_ms}"
        f" WHERE {where} AND {q('stopped_ms')} IS NULL",
        [host, *pids],
    )
    _, rows = await db.execute_query(
        f"SELECT {q('name')} FROM {q('workers')} WHERE {where}", [host, *pids]
    )
    return [str(row["name"]) for row in rows]


async def gone(db: Any, bound_seconds: float) -> list[Gone]:
    """Workers stopped, or silent for more than `bound_seconds` (the table holds one row per
    live worker process, and the dead ones until forget())."""
    d = dialect_of(db)
    q, m = d.ident, d.mark
    _, rows = await db.execute_query(
        f"SELECT {q('name')}, {q('stopped_ms')} FROM {q('workers')}"
        f" WHERE {q('stopped_ms')} IS NOT NULL OR {q('beat_ms')} < {d.now_ms} - {m}",
        [int(bound_seconds * 1000)],
    )
    return [Gone(str(row["name"]), row["stopped_ms"] is not None) for row in rows]


async def is_gone(db: Any, name: str, bound_seconds: float) -> bool:
    """Whether the worker `name` is stopped, silent for more than `bound_seconds`, or
    forgotten (no row: forget() drops only silent workers)."""
    d = dialect_of(db)
    q, m = d.ident, d.mark
    _, rows = await db.execute_query(
        f"SELECT {q('stopped_ms')}, {q('beat_ms')} < {d.now_ms} - {m} AS {q('silent')}"
        f" FROM {q('workers')} WHERE {q('name')} = {m}",
        [int(bound_seconds * 1000), name],
    )
    if not rows:
        return True
    return rows[0]["stopped_ms"] is not None or bool(rows[0]["silent"])


async def orphans(db: Any, names: Sequence[str]) -> list[Orphan]:
    """The running jobs of the workers `names` (through the jobs' state index: the running
    jobs are at most the workers' slots)."""
    if not names:
        return []
    q, m = dialect_of(db).ident, dialect_of(db).mark
    # The Orphan's fields are the jobs' columns of the same names (its job_id is `id`).
    names_read = ["id", *(f.name for f in dataclasses.fields(Orphan) if f.name != "job_id")]
    columns = ", ".join(q(c) for c in names_read)
    _, rows = await db.execute_query(
        f"SELECT {columns} FROM {q('jobs')}"
        f" WHERE {q('state')} = {m} AND {q('worker')} IN ({_marks(db, len(names))})",
        [JobState.RUNNING.value, *names],
    )
    return [
        Orphan(
            job_id=UUID(str(row["id"])),
            type=str(row["type"]),
            attempt=int(row["attempt"]),
            worker=str(row["worker"]),
            cancel_requested=bool(row["cancel_requested"]),
            progress=int(row["progress"]),
            message=row["message"],
        )
        for row in rows
    ]


async def forget(db: Any, names: Sequence[str], bound_seconds: float) -> int:
    """Drop the rows of gone workers that no running job names any more; how many.

    Checked again in the statement: a row that beat meanwhile, or a job that started on it,
    keeps it.
    """
    if not names:
        return 0
    d = dialect_of(db)
    q, m = d.ident, d.mark
    count, _ = await db.execute_query(
        f"DELETE FROM {q('workers')} WHERE {q('name')} IN ({_marks(db, len(names))})"
        f" AND ({q('stopped_ms')} IS NOT NULL OR {q('beat_ms')} < {d.now_ms} - {m})"
        f" AND NOT EXISTS (SELECT 1 FROM {q('jobs')} WHERE {q('jobs')}.{q('state')} = {m}"
        f" AND {q('jobs')}.{q('worker')} = {q('workers')}.{q('name')})",
        [*names, int(bound_seconds * 1000), JobState.RUNNING.value],
    )
    return int(count)


def ending(orphan: Orphan, losses: int, max_worker_losses: int, reason: str) -> list[Step]:
    """The events that end an orphan's attempt, as a redelivery would end it.

    `losses` counts this loss too. A job asked to stop is `cancelled` (what its owner
    wanted; no attempt follows); otherwise `worker_lost`, then `failed` (WORKER_LOST) once
    the job lost `max_worker_losses` workers. A requeued job's `worker_lost` names the task
    id of its next attempt's message.
    """
    if orphan.cancel_requested:
        data = {"reason": f"cancelled by request; {reason}", "worker": orphan.worker}
        return [Step(EventType.CANCELLED, data)]
    lost: dict[str, Any] = {"worker": orphan.worker, "reason": reason}
    if losses >= max_worker_losses:
        message = f"the job's worker died {losses} times"
        failed = {"error": job_error("WorkerLost", message, "WORKER_LOST")}
        return [Step(EventType.WORKER_LOST, lost), Step(EventType.FAILED, failed)]
    lost["task_id"] = task_id_for(orphan.job_id, orphan.attempt + 1)
    return [Step(EventType.WORKER_LOST, lost)]


class _Moved(Exception):
    """The job is no longer the orphan found: another detector or a redelivery ended it."""


async def recover(
    store: JobStore, orphan: Orphan, max_worker_losses: int, lease_seconds: float, reason: str
) -> JobView | None:
    """End an orphan's attempt (ending()) in one transaction, its next attempt's outbox row
    with it; the job afterwards, or None when it moved on meanwhile (nothing recorded).

    Safe when several processes recover the same job at once: the job's row is locked, and
    the first event must end exactly the attempt found, on the worker found.
    """
    events = await store.all_events(orphan.job_id)
    losses = 1 + sum(1 for event in events if event.type is EventType.WORKER_LOST)
    steps = ending(orphan, losses, max_worker_losses, reason)
    requeue = steps[-1].type is EventType.WORKER_LOST

    def same(view: JobView) -> bool:
        return (
            view.state is JobState.RUNNING
            and view.attempt == orphan.attempt
            and view.worker == orphan.worker
        )

    write_next, _ = Outbox.writer(orphan.attempt + 1, utcnow(), None, lease_seconds, only_if=same)

    def check(index: int, done: Appended) -> None:
        # The first step ends the attempt found, or nothing is written. Within an attempt the
        # worker is the one found: only `started` names it, once per attempt.
        first = done.event
        if index == 0 and (first is None or first.attempt != orphan.attempt):
            raise _Moved()

    try:
        outcomes = await store.append_chain(
            orphan.job_id, steps, also=write_next if requeue else None, check=check
        )
    except (InvalidTransition, JobNotFound, _Moved):
        return None
    return outcomes[-1].view
