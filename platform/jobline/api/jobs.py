"""/api/v1/jobs: submit, read, list, history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi_pagination.cursor import CursorPage

from jobline import errors
from jobline.api.deps import CallerDep, CallerRoute, CursorsDep, JobDep, ServiceDep
from jobline.api.errors import responses
from jobline.api.schemas import Instant, Job, JobEvent, JobTypeOut, RetryPolicyOut, SubmitJob
from jobline.jobs import payloads
from jobline.jobs.service import JobService, Submission
from jobline.jobs.states import JobState
from jobline.jobs.store import JobQuery

router = APIRouter(tags=["jobs"], route_class=CallerRoute)

Size = Annotated[int, Query(ge=1, le=100, description="items per page")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_page of the previous page")]
NOT_FOUND = responses(errors.JobNotFound)


T = TypeVar("T")


class Page(CursorPage[T], Generic[T]):
    """A cursor page: `items` and the opaque `next_page` cursor (null on the last page)."""

    total: int | None = None  # type: ignore[assignment] # never counted: COUNT(*) over a big table costs seconds


@router.post(
    "/jobs",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses={
        200: {"model": Job, "description": "the job first submitted with this Idempotency-Key"},
        **responses(
            errors.UnknownJobType,
            errors.InvalidPayload,
            errors.PriorityNotAllowed,
            errors.PayloadTooLarge,
            errors.IdempotencyConflict,
        ),
    },
)
async def submit_job(
    body: SubmitJob,
    request: Request,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> Response:
    """Store a job and enqueue it on its domain's queue."""
    # The busiest route spares itself what it can: the service read here rather than
    # through a dependency (one fewer to solve), and the answer serialized once, as FastAPI
    # would from `response_model` (the same bytes), without validating it again.
    service: JobService = request.app.state.service
    view, created = await service.submit(
        caller,
        Submission(body.type, body.payload, body.priority, body.delay_seconds),
        idempotency_key,
    )
    return Response(
        Job.of(view).model_dump_json(),
        status_code=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        headers={"Location": f"{request.scope.get('root_path', '')}/api/v1/jobs/{view.id}"},
        media_type="application/json",
    )


@router.get("/jobs/{job_id}", response_model=Job, responses=NOT_FOUND)
async def get_job(job: JobDep) -> Job:
    """One job."""
    return Job.of(job)


@router.post(
    "/jobs/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=responses(errors.JobNotFound, errors.JobFinished),
)
async def cancel_job(job_id: UUID, caller: CallerDep, service: ServiceDep) -> Job:
    """Cancel a job: pending or queued at once; running: asked to stop, terminated after a grace."""
    return Job.of(await service.cancel(caller, job_id))


@router.post(
    "/jobs/{job_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Job,
    responses=responses(errors.JobNotFound, errors.JobNotRetryable),
)
async def retry_job(job_id: UUID, caller: CallerDep, service: ServiceDep) -> Job:
    """Run a failed or cancelled job again, as its next attempt."""
    return Job.of(await service.retry(caller, job_id))


@router.get("/jobs", response_model=Page[Job], responses=responses(errors.InvalidCursor))
async def list_jobs(
    caller: CallerDep,
    service: ServiceDep,
    cursors: CursorsDep,
    state: JobState | None = None,
    type: Annotated[str | None, Query(max_length=100)] = None,
    queue: Annotated[str | None, Query(max_length=100)] = None,
    created_after: Instant | None = None,
    created_before: Instant | None = None,
    size: Size = 50,
    cursor: Cursor = None,
) -> Page[Job]:
    """Jobs, newest first; a superuser sees every user's."""
    query = JobQuery(
        owner_id=None if caller.is_superuser else caller.id,
        state=state,
        type=type,
        queue=queue,
        created_after=created_after,
        created_before=created_before,
    )
    scope = f"jobs:{caller.id}:{query}"
    after = None
    if cursor is not None:
        values = cursors.decode(scope, cursor)
        try:
            after = (datetime.fromisoformat(values[0]), UUID(values[1]))
        except (IndexError, TypeError, ValueError):
            raise errors.InvalidCursor("the cursor is malformed") from None
    views = await service.list_jobs(caller, query, after, size + 1)
    next_page = None
    if len(views) > size:
        views = views[:size]
        last = views[-1]
        next_page = cursors.encode(scope, [last.created_at.isoformat(), str(last.id)])
    return Page[Job](items=[Job.of(v) for v in views], next_page=next_page, current_page=cursor)


@router.get(
    "/jobs/{job_id}/events",
    response_model=Page[JobEvent],
    responses=responses(errors.JobNotFound, errors.InvalidCursor),
)
async def list_events(
    job: JobDep,
    caller: CallerDep,
    service: ServiceDep,
    cursors: CursorsDep,
    after_seq: Annotated[
        int, Query(ge=0, le=2**31, description="start after this event (the SSE id)")
    ] = 0,
    size: Size = 50,
    cursor: Cursor = None,
) -> Page[JobEvent]:
    """A job's events, oldest first."""
    scope = f"events:{job.id}"
    if cursor is not None:
        after_seq = cursors.decode_int(scope, cursor)
    events = await service.events(job, after_seq, size + 1)
    next_page = None
    if len(events) > size:
        events = events[:size]
        next_page = cursors.encode(scope, [events[-1].seq])
    return Page[JobEvent](
        items=[JobEvent.of(e, operator=caller.is_superuser) for e in events],
        next_page=next_page,
        current_page=cursor,
    )


@router.get("/job-types", response_model=list[JobTypeOut])
async def list_job_types(service: ServiceDep, _: CallerDep) -> list[JobTypeOut]:
    """The declared job types: queue, payload JSON Schema, retry policy."""
    out = []
    for jt in service.queues.job_types.values():
        model = jt.payload_model
        schema = payloads.json_schema(model) if model is not None else None
        out.append(
            JobTypeOut(
                name=jt.name,
                domain=jt.domain,
                queue=jt.queue,
                payload_schema=schema,
                retry=RetryPolicyOut(
                    **jt.policy.model_dump(include=set(RetryPolicyOut.model_fields))
                ),
                rate_limit=jt.spec.rate_limit,
                description=jt.spec.description,
            )
        )
    return out
