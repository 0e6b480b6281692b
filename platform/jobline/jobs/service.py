"""The jobs service: the one place that submits, reads and lists jobs. API and CLI call it."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from tortoise import connections

from jobline import metrics
from jobline.config import get_settings
from jobline.errors import (
    IdempotencyConflict,
    InvalidPayload,
    InvalidTransition,
    JobFinished,
    JobNotFound,
    JobNotRetryable,
    PayloadTooLarge,
    PriorityNotAllowed,
    UnknownJobType,
)
from jobline.jobs import payloads, workers
from jobline.jobs.batching import SubmitAlone, SubmitBatcher
from jobline.jobs.events import Event, EventType
from jobline.jobs.outbox import Dispatch, Outbox, new_claim
from jobline.jobs.ports import Publisher
from jobline.jobs.projection import JobView
from jobline.jobs.quotas import ActiveJobsCap, too_many
from jobline.jobs.spec import Queues
from jobline.jobs.states import JobState, may_cancel, may_retry
from jobline.jobs.store import (
    DuplicateIdempotencyKey,
    JobQuery,
    JobStore,
    NewJob,
    NotAdmitted,
    TxHook,
    utcnow,
)
from jobline.logging import current_request_id

log = logging.getLogger("jobline.jobs")

# A cancel races the worker: the state read first may change before the write; retried this often.
CANCEL_TRIES = 3


@dataclass(frozen=True)
class Caller:
    """Who is asking: their id, and whether they may see every job."""

    id: UUID
    is_superuser: bool = False


@dataclass(frozen=True)
class Submission:
    type: str
    payload: dict[str, Any]
    priority: int = 0
    delay_seconds: float | None = None


class JobService:
    """Submits, cancels, retries, reads and lists jobs for a caller; the doors (API, CLI) call it.

    It publishes through the `Publisher` port (jobs/ports.py), built by the one wiring
    site, jobline.queueing.relay.wire().
    """

    def __init__(
        self,
        store: JobStore,
        queues: Queues,
        publisher: Publisher,
        max_payload_bytes: int,
        batcher: SubmitBatcher | None = None,
    ) -> None:
        self.store = store
        # Immediate submits go through it when set (the API process); see jobs/batching.py.
        self.batcher = batcher
        self.queues = queues
        self.publisher = publisher
        self.max_payload_bytes = max_payload_bytes
        self.cap = ActiveJobsCap(
            get_settings().max_active_jobs_per_user, get_settings().active_jobs_recheck_seconds
        )
        if batcher is not None:
            # Batched submits are admitted under the same cap, in their batch's transaction.
            batcher.admit = self.cap.admit

    async def submit(
        self, caller: Caller, submission: Submission, idempotency_key: str | None = None
    ) -> tuple[JobView, bool]:
        """Store and enqueue a job; returns (job, created). A repeated key returns the first job."""
        job_type = self.queues.job_types.get(submission.type)
        if job_type is None:
            known = ", ".join(sorted(self.queues.job_types))
            raise UnknownJobType(f"unknown job type {submission.type!r}; known types: {known}")
        allowed = job_type.policy.max_user_priority
        if submission.priority > allowed and not caller.is_superuser:
            # Refused, not lowered: a client told 202 would believe its job was urgent.
            raise PriorityNotAllowed(
                f"priority {submission.priority} is reserved for superusers; "
                f"{job_type.name} takes 0 to {allowed} (max_user_priority in queues.yaml)"
            )
        payload = self._validated(job_type.payload_model, submission.payload)
        request_hash = _hash(
            {
                "type": submission.type,
                "payload": payload,
                "priority": submission.priority,
                "delay": submission.delay_seconds,
            }
        )
        if idempotency_key is not None:
            first = await self._idempotent(caller, idempotency_key, request_hash)
            if first is not None:
                return first, False
        data = {
            "type": job_type.name,
            "queue": job_type.queue,
            "payload": payload,
            "priority": submission.priority,
            "owner_id": str(caller.id),
            "delay_seconds": submission.delay_seconds,
        }
        request_id = current_request_id()
        if request_id is not None:
            # One grep of the id finds the request's log lines, this event and the worker's lines.
            data["request_id"] = request_id
        if self.batcher is not None and not submission.delay_seconds:
            new_job = NewJob(uuid.uuid4(), data, idempotency_key, request_hash)
            try:
                view = await self.batcher.submit(new_job, request_id)
            except NotAdmitted:
                raise too_many(self.cap.limit) from None
            except SubmitAlone:
                pass  # its batch had a repeated key: the single path below sorts it out
            else:
                metrics.JOBS_SUBMITTED.labels(job_type.name).inc()
                return view, True
        now = utcnow()
        due_at = now + timedelta(seconds=submission.delay_seconds or 0)
        # The job, its `submitted` event and its outbox row commit together: once stored, it
        # is published, by this request right away or by a relay later.
        publish_now = due_at <= now and self.publisher.healthy
        write_outbox, written = Outbox.writer(
            1, due_at, new_claim() if publish_now else None, self.publisher.lease
        )
        try:
            view = await self.store.submit(
                job_id=uuid.uuid4(),
                data=data,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
                also=write_outbox,
                admit=self.cap.admit,
            )
        except NotAdmitted:
            raise too_many(self.cap.limit) from None
        except DuplicateIdempotencyKey:
            # A concurrent request with the same key won the insert.
            first = await self._idempotent(caller, idempotency_key or "", request_hash)
            assert first is not None
            return first, False
        metrics.JOBS_SUBMITTED.labels(job_type.name).inc()
        if publish_now:
            view = await self._publish_now(written[0], view) or view
        return view, True

    async def cancel(self, caller: Caller, job_id: UUID) -> JobView:
        """Cancel a job: at once unless it runs; a running job is asked to stop (cancel_requested).

        The worker running it stops at its next `raise_if_cancelled()`, or terminates it after
        the domain's cancel_grace_seconds. A running job whose worker is gone (stopped, or
        silent for JOBLINE_WORKER_LOST_SECONDS: jobs/workers.py) is cancelled at once. A
        finished job raises JobFinished.
        """
        view = await self.get(caller, job_id)
        for _ in range(CANCEL_TRIES):
            if not may_cancel(view.state):
                raise JobFinished(f"job {job_id} is already {view.state}")
            try:
                if view.state is JobState.RUNNING and not await self._worker_gone(view):
                    done = await self.store.append(
                        job_id, EventType.CANCEL_REQUESTED, {}, attempt=view.attempt
                    )
                    return done.view
                if view.state is JobState.RUNNING:
                    # Its worker is gone: nobody would stop it, so it is cancelled now.
                    done = await self.store.append(
                        job_id,
                        EventType.CANCELLED,
                        {
                            "reason": "cancelled by request; its worker was lost",
                            "worker": view.worker,
                        },
                        attempt=view.attempt,
                        also=_refuse_unless_run_by(view.worker),
                    )
                    return done.view
                done = await self.store.append(
                    job_id,
                    EventType.CANCELLED,
                    {"reason": "cancelled by request"},
                    attempt=view.attempt,
                    also=_refuse_if(JobState.RUNNING, then=Outbox.remover()),
                )
            except (InvalidTransition, _StateChanged):
                view = await self.store.get(job_id)
                continue
            if view.task_id is not None and self.publisher.healthy:
                # Workers drop a revoked message unrun; one that misses the broadcast still
                # skips it, because a worker never runs a finished job.
                try:
                    await self.publisher.revoke(view.task_id)
                except Exception as exc:
                    log.warning("revoking %s failed (%r); workers skip it anyway", job_id, exc)
            return done.view
        raise JobFinished(f"job {job_id} changed state while being cancelled; try again")

    async def _worker_gone(self, view: JobView) -> bool:
        """Whether the worker running the job is gone (a job started before workers beat
        names none: it is asked to stop, as before)."""
        if view.worker is None:
            return False
        db = connections.get(self.store.connection)
        return await workers.is_gone(db, view.worker, get_settings().worker_lost_seconds)

    async def retry(self, caller: Caller, job_id: UUID) -> JobView:
        """Run a failed or cancelled job again as its next attempt; anything else: JobNotRetryable."""
        view = await self.get(caller, job_id)
        if not may_retry(view.state):
            raise JobNotRetryable(
                f"job {job_id} is {view.state}; only failed or cancelled jobs retry"
            )
        attempt = view.attempt
        publish_now = self.publisher.healthy
        write_outbox, written = Outbox.writer(
            attempt + 1,
            utcnow(),
            new_claim() if publish_now else None,
            self.publisher.lease,
            only_if=lambda locked: may_retry(locked.state) and locked.attempt == attempt,
        )

        async def admit_then_write(conn: Any, locked: JobView) -> None:
            # A retried job is unfinished again: it takes a place under the owner's cap.
            if may_retry(locked.state) and locked.attempt == attempt and locked.owner_id:
                await self.cap.admit_one(conn, locked.owner_id)
            await write_outbox(conn, locked)

        try:
            done = await self.store.append(
                job_id,
                EventType.RETRYING,
                {"by": "request", "error": view.error, "next_attempt": attempt + 1},
                attempt=attempt,
                also=admit_then_write,
            )
        except InvalidTransition:
            done = None
        if done is None or done.event is None:
            raise JobNotRetryable(f"job {job_id} is already being retried")
        if publish_now and written:
            return await self._publish_now(written[0], done.view) or done.view
        return done.view

    async def _publish_now(self, dispatch: Dispatch, view: JobView) -> JobView | None:
        """Publish a job this request just stored (`view`); on any error the relay publishes it later.

        The job is stored already: failing the request now would invite a second submit.
        """
        try:
            return await self.publisher.publish(dispatch, view)
        except Exception:
            log.exception("publishing job %s failed; the relay will", dispatch.job_id)
            return None

    async def get(self, caller: Caller, job_id: UUID) -> JobView:
        """The job, if the caller may see it; another user's job is not found."""
        view = await self.store.get(job_id)
        if not caller.is_superuser and view.owner_id != caller.id:
            raise JobNotFound(job_id=str(job_id))
        return view

    async def list_jobs(
        self,
        caller: Caller,
        query: JobQuery,
        after: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[JobView]:
        """A keyset page of the jobs the caller may see, newest first, after `after`."""
        if not caller.is_superuser:
            query = replace(query, owner_id=caller.id)
        return await self.store.list_jobs(query, after, limit)

    async def events(self, job: JobView, after_seq: int, limit: int) -> list[Event]:
        """Events of a job the caller got from get() (so may see), after `after_seq`, oldest first."""
        return await self.store.events(job.id, after_seq, limit)

    def _validated(self, model: Any, payload: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode())
        if size > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"the payload is {size} bytes; the limit is {self.max_payload_bytes}"
            )
        if model is None:
            return payload
        try:
            return payloads.validate(model, text)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False)
            unknown = payloads.unknown_fields(errors)
            message = "the payload does not match the job type's model"
            if unknown:
                message += f": unknown field(s) {', '.join(unknown)}"
            raise InvalidPayload(message, errors=errors) from None

    async def _idempotent(self, caller: Caller, key: str, request_hash: str) -> JobView | None:
        found = await self.store.find_by_idempotency_key(caller.id, key)
        if found is None:
            return None
        view, first_hash = found
        if first_hash != request_hash:
            raise IdempotencyConflict(f"Idempotency-Key {key!r} was used with a different request")
        return view


class _StateChanged(Exception):
    """The job's state, read under its row lock, is not the one the caller decided on."""


def _refuse_if(state: JobState, then: TxHook) -> TxHook:
    """A hook that aborts the append when the locked job is in `state`, else runs `then`."""

    async def check(conn: Any, locked: JobView) -> None:
        if locked.state is state:
            raise _StateChanged(str(locked.state))
        await then(conn, locked)

    return check


def _refuse_unless_run_by(worker: str | None) -> TxHook:
    """A hook that aborts the append unless the locked job still runs on `worker`."""

    async def check(conn: Any, locked: JobView) -> None:
        if locked.state is not JobState.RUNNING or locked.worker != worker:
            raise _StateChanged(str(locked.state))

    return check


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
