"""The jobs service: the one place that submits, reads and lists jobs. API and CLI call it."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from jobline.errors import (
    IdempotencyConflict,
    InvalidPayload,
    JobNotFound,
    PayloadTooLarge,
    UnknownJobType,
)
from jobline.jobs.events import EventType
from jobline.jobs.projection import JobView
from jobline.jobs.store import DuplicateIdempotencyKey, JobStore
from jobline.queueing.spec import Queues

log = logging.getLogger("jobline.jobs")


class Dispatcher(Protocol):
    async def publish(self, view: JobView, delay_seconds: float | None = None) -> str: ...


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
    def __init__(
        self, store: JobStore, queues: Queues, dispatcher: Dispatcher, max_payload_bytes: int
    ) -> None:
        self.store = store
        self.queues = queues
        self.dispatcher = dispatcher
        self.max_payload_bytes = max_payload_bytes

    async def submit(
        self, caller: Caller, submission: Submission, idempotency_key: str | None = None
    ) -> tuple[JobView, bool]:
        """Store and enqueue a job; returns (job, created). A repeated key returns the first job."""
        job_type = self.queues.job_types.get(submission.type)
        if job_type is None:
            known = ", ".join(sorted(self.queues.job_types))
            raise UnknownJobType(f"unknown job type {submission.type!r}; known types: {known}")
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
        try:
            view = await self.store.submit(
                job_id=uuid.uuid4(),
                data=data,
                idempotency_key=idempotency_key,
                request_hash=request_hash,
            )
        except DuplicateIdempotencyKey:
            # A concurrent request with the same key won the insert.
            first = await self._idempotent(caller, idempotency_key or "", request_hash)
            assert first is not None
            return first, False
        return await self.enqueue(view, submission.delay_seconds), True

    async def enqueue(self, view: JobView, delay_seconds: float | None = None) -> JobView:
        """Publish the job and record `queued`; a broker failure leaves it pending."""
        try:
            task_id = await self.dispatcher.publish(view, delay_seconds)
        except Exception:
            log.exception("publishing job %s failed; it stays pending", view.id)
            return view
        done = await self.store.append(
            view.id, EventType.QUEUED, {"task_id": task_id}, attempt=view.attempt
        )
        return done.view

    async def get(self, caller: Caller, job_id: UUID) -> JobView:
        """The job, if the caller may see it; another user's job is not found."""
        view = await self.store.get(job_id)
        if not caller.is_superuser and view.owner_id != caller.id:
            raise JobNotFound(job_id=str(job_id))
        return view

    def _validated(self, model: Any, payload: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        if size > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"the payload is {size} bytes; the limit is {self.max_payload_bytes}"
            )
        if model is None:
            return payload
        try:
            return dict(model.model_validate(payload).model_dump(mode="json"))
        except ValidationError as exc:
            raise InvalidPayload(
                "the payload does not match the job type's model",
                errors=exc.errors(include_url=False, include_context=False),
            ) from None

    async def _idempotent(self, caller: Caller, key: str, request_hash: str) -> JobView | None:
        found = await self.store.find_by_idempotency_key(caller.id, key)
        if found is None:
            return None
        view, first_hash = found
        if first_hash != request_hash:
            raise IdempotencyConflict(f"Idempotency-Key {key!r} was used with a different request")
        return view


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
