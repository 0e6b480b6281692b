"""The dashboard's pages under /ui/: server-rendered, over the same service as the API.

Every page reads through the code the API's routes run (the list page *is* a call of the
`GET /api/v1/jobs` route function, with its cursors), so a page shows what the API would
answer and costs what it costs. Pages need the cookie session: without it they redirect to
/ui/login. A job the caller may not see answers 404 with nothing of it on the page.

The two streams here are the API's own (`GET /api/v1/jobs/{id}/stream` and
`GET /api/v1/stream`) with one addition: `?after=` says where to start when the request has
no Last-Event-ID. An EventSource cannot send that header on its first connection, and a
page has already rendered everything up to a point; on a reconnect the browser sends
Last-Event-ID itself, and the header wins.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError

from jobline import errors
from jobline.accounts.credentials import current_user
from jobline.accounts.models import User
from jobline.accounts.users import emails_of
from jobline.api import jobs as jobs_api
from jobline.api import stream as stream_api
from jobline.api.deps import CallerDep, JobDep
from jobline.api.quotas import StreamSlot
from jobline.api.schemas import Instant, Job
from jobline.api.stream import FeedDep, LastEventId
from jobline.jobs.projection import JobView
from jobline.jobs.service import Caller, JobService
from jobline.jobs.states import FINAL_STATES, RETRYABLE_STATES, JobState
from jobline.jobs.store import JobQuery
from jobline.ui import forms, operations

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(
    iso=lambda at: at.isoformat() if isinstance(at, datetime) else "",
    ts=lambda at, ms=False: format_time(at, ms=ms),
    seconds=lambda s: format_seconds(s),
    duration=lambda job: format_duration(job),
)
router = APIRouter(prefix="/ui", include_in_schema=False)

LIST_SIZES = (25, 50, 100)
DEFAULT_LIST_SIZE = 50


# The row a list page clones for a job that appears live (list.js fills it in).
BLANK_ROW: dict[str, Any] = {
    "id": "",
    "type": "",
    "queue": "",
    "state": "",
    "progress": 0,
    "attempt": 1,
    "last_seq": 0,
    "created_at": None,
    "started_at": None,
    "finished_at": None,
    "owner_id": None,
}


def format_time(at: datetime | None, *, ms: bool = False) -> str:
    """A time as the pages show it: UTC, to the second (or millisecond)."""
    if at is None:
        return ""
    at = at.astimezone(UTC) if at.tzinfo else at
    text = at.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{at.microsecond // 1000:03d}" if ms else text


def format_seconds(seconds: float) -> str:
    """A span of time in words a person reads at a glance: 85 ms, 2.4 s, 3 min 5 s."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_duration(job: Any) -> str:
    """How long a finished job ran (from its start, or its creation if it never started)."""
    finished = job["finished_at"] if isinstance(job, dict) else job.finished_at
    if finished is None:
        return ""
    begun = job.started_at or job.created_at
    return format_seconds(max(0.0, (finished - begun).total_seconds()))


class LoginRequired(Exception):
    """The page needs the cookie session."""


async def page_user(request: Request) -> User:
    """The logged-in user of a page request; LoginRequired (a redirect) without one."""
    try:
        return await current_user(request)
    except HTTPException as exc:
        raise LoginRequired() from exc


def login_redirect(request: Request) -> RedirectResponse:
    """To the login page, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?{urlencode({'next': target})}", status_code=303)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page with the context every template reads (the user, the nav's current page)."""
    response = templates.TemplateResponse(
        request, name, {"states": list(JobState), **context}, status_code=status_code
    )
    # A page shows one user's data: no cache may keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(
    request: Request, user: User | None, status_code: int, title: str, message: str
) -> HTMLResponse:
    """An error page: its message in [data-error], and nothing else of what was asked."""
    return render(
        request,
        "error.html",
        {"user": user, "title": title, "message": message},
        status_code=status_code,
    )


def caller_of(user: User) -> Caller:
    return Caller(id=user.id, is_superuser=user.is_superuser)


def service_of(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/ui/") -> HTMLResponse:
    """The login form; it posts to the cookie backend (static/login.js)."""
    # Only a path of this site: never a redirect elsewhere after logging in.
    if not next.startswith("/") or next.startswith("//"):
        next = "/ui/"
    return render(request, "login.html", {"user": None, "next": next})


def _parse_time(raw: str | None, label: str, problems: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        value: datetime = _INSTANT.validate_python(raw)
    except ValidationError as exc:
        problems.append(f"{label}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}")
        return None
    return value


_INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)


@router.get("/", response_class=HTMLResponse)
async def jobs_page(
    request: Request,
    state: str = "",
    type: Annotated[str, Query(max_length=100)] = "",
    queue: Annotated[str, Query(max_length=100)] = "",
    created_after: Annotated[str, Query(max_length=64)] = "",
    created_before: Annotated[str, Query(max_length=64)] = "",
    size: int = DEFAULT_LIST_SIZE,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Your jobs, newest first, a cursor page of `GET /api/v1/jobs`; rows follow live."""
    try:
        user = await page_user(request)
    except LoginRequired:
        return login_redirect(request)
    caller = caller_of(user)
    service = service_of(request)
    problems: list[str] = []
    job_state: JobState | None = None
    if state:
        try:
            job_state = JobState(state)
        except ValueError:
            problems.append(f"state: {state!r} is not a state")
    after = _parse_time(created_after, "created after", problems)
    before = _parse_time(created_before, "created before", problems)
    if size not in LIST_SIZES:
        size = DEFAULT_LIST_SIZE
    filters = {
        "state": state,
        "type": type,
        "queue": queue,
        "created_after": created_after,
        "created_before": created_before,
    }
    context: dict[str, Any] = {
        "user": user,
        "nav": "jobs",
        "filters": filters,
        "types": sorted(service.queues.job_types),
        "queues": sorted({jt.queue for jt in service.queues.job_types.values()}),
        "size": size,
        "sizes": LIST_SIZES,
        "max_rows": request.app.state.settings.ui_list_max_rows,
        "blank_row": BLANK_ROW,
        "owners": {},
    }
    if problems:
        context.update(rows=[], problems=problems, next_url=None, prev_url=None, start=None)
        return render(request, "jobs.html", context, status_code=422)
    # Where the live stream starts: read before the page, so every event the page does not
    # reflect comes after it (the page applies an event it already shows at most once).
    start = request.app.state.feed.stats().watermark
    try:
        page = await jobs_api.list_jobs(
            caller,
            service,
            request.app.state.cursors,
            state=job_state,
            type=type or None,
            queue=queue or None,
            created_after=after,
            created_before=before,
            size=size,
            cursor=cursor,
        )
    except errors.InvalidCursor as exc:
        return error_page(request, user, 400, "Bad page link", exc.message)
    query = JobQuery(
        owner_id=None if caller.is_superuser else caller.id,
        state=job_state,
        type=type or None,
        queue=queue or None,
        created_after=after,
        created_before=before,
    )
    base = {k: v for k, v in filters.items() if v}
    if size != DEFAULT_LIST_SIZE:
        base["size"] = str(size)
    next_url = f"?{urlencode({**base, 'cursor': page.next_page})}" if page.next_page else None
    prev_url = None
    if cursor is not None and page.items:
        prev = await previous_cursor(request, caller, query, page.items[0], size)
        prev_url = "?" + urlencode({**base, "cursor": prev} if prev else base)
    owners: dict[UUID, str] = {}
    if caller.is_superuser:
        owners = await emails_of({j.owner_id for j in page.items if j.owner_id is not None})
    context.update(
        rows=page.items,
        owners=owners,
        problems=[],
        next_url=next_url,
        prev_url=prev_url,
        # New jobs join the list live only on its first page.
        live_new=cursor is None and not created_before,
        start=start,
    )
    return render(request, "jobs.html", context)


async def previous_cursor(
    request: Request, caller: Caller, query: JobQuery, first: Job, size: int
) -> str | None:
    """The cursor of the page before the one starting at `first`; None: the first page.

    The API's cursors go one way (older); the page before is the `size` jobs just newer
    than `first`, found by the same keyset read upwards, and named by the API's cursor of
    the job just above them.
    """
    service = request.app.state.service
    newer = await service.store.newer_keys(query, (first.created_at, first.id), size + 1)
    if len(newer) <= size:
        return None
    at, job_id = newer[size]
    scope = f"jobs:{caller.id}:{query}"
    cursor: str = request.app.state.cursors.encode(scope, [at.isoformat(), str(job_id)])
    return cursor


def event_rows(events: list[Any]) -> list[dict[str, Any]]:
    """A timeline's entries: each event with the time since the one before it."""
    out = []
    previous: datetime | None = None
    for e in events:
        gap = (e.at - previous).total_seconds() if previous is not None else None
        out.append(
            {
                "seq": e.seq,
                "type": e.type.value,
                "attempt": e.attempt,
                "at": e.at,
                "gap": gap,
                "data": json.dumps(e.data, separators=(",", ":"), ensure_ascii=False),
            }
        )
        previous = e.at
    return out


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_page(request: Request, job_id: str) -> Response:
    """One job: its fields, the newest page of its timeline, then live; cancel and retry."""
    try:
        user = await page_user(request)
    except LoginRequired:
        return login_redirect(request)
    service = service_of(request)
    try:
        view: JobView = await service.get(caller_of(user), UUID(job_id))
    except (ValueError, errors.JobNotFound):
        # Unknown, malformed or another user's: the same answer, with nothing of the job.
        return error_page(request, user, 404, "Job not found", "No such job.")
    settings = request.app.state.settings
    page = settings.ui_timeline_page
    first_seq = max(0, view.last_seq - page)
    events = await service.events(view, first_seq, page)
    owner = None
    if user.is_superuser and view.owner_id is not None and view.owner_id != user.id:
        owner = (await emails_of([view.owner_id])).get(view.owner_id, str(view.owner_id))
    jt = service.queues.job_types.get(view.type)
    return render(
        request,
        "job.html",
        {
            "user": user,
            "nav": "jobs",
            "job": Job.of(view),
            "owner": owner,
            "description": jt.spec.description if jt else None,
            "events": event_rows(events),
            "first_seq": events[0].seq if events else 0,
            "last_seq": events[-1].seq if events else 0,
            "final": view.state in FINAL_STATES,
            "can_cancel": view.state not in FINAL_STATES,
            "can_retry": view.state in RETRYABLE_STATES,
            "cancel_requested": view.cancel_requested,
            "payload": json.dumps(view.payload, indent=2, sort_keys=True, ensure_ascii=False),
            "result": None
            if view.result is None
            else json.dumps(view.result, indent=2, sort_keys=True, ensure_ascii=False),
            "timeline_page": page,
            "timeline_max": settings.ui_timeline_max,
        },
    )


@router.get("/submit", response_class=HTMLResponse)
async def submit_page(request: Request, type: str = "") -> Response:
    """The submit form: a type, then fields generated from its payload's JSON Schema."""
    try:
        user = await page_user(request)
    except LoginRequired:
        return login_redirect(request)
    types = await jobs_api.list_job_types(service_of(request), caller_of(user))
    chosen = next((t for t in types if t.name == type), types[0] if types else None)
    return render(
        request,
        "submit.html",
        {
            "user": user,
            "nav": "submit",
            "types": [(t, forms.fields_of(t.payload_schema)) for t in types],
            "chosen": chosen.name if chosen else None,
        },
    )


@router.get("/types", response_class=HTMLResponse)
async def types_page(request: Request) -> Response:
    """Each job type: queue, retry policy, limits, rate limit and payload schema."""
    try:
        user = await page_user(request)
    except LoginRequired:
        return login_redirect(request)
    types = await jobs_api.list_job_types(service_of(request), caller_of(user))
    return render(
        request,
        "types.html",
        {
            "user": user,
            "nav": "types",
            "types": [
                (t, json.dumps(t.payload_schema, indent=2) if t.payload_schema else None)
                for t in types
            ],
        },
    )


@router.get("/operations", response_class=HTMLResponse)
async def operations_page(
    request: Request,
    user_id: Annotated[str, Query(max_length=64)] = "",
    route: Annotated[str, Query(max_length=255)] = "",
    method: Annotated[str, Query(max_length=16)] = "",
    status: Annotated[str, Query(max_length=3)] = "",
    since: Annotated[str, Query(max_length=64)] = "",
    until: Annotated[str, Query(max_length=64)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """For superusers: outbox and relay, event feed, broker queues, the audit log."""
    try:
        user = await page_user(request)
    except LoginRequired:
        return login_redirect(request)
    if not user.is_superuser:
        return error_page(request, user, 403, "Superusers only", "This page is for superusers.")
    audit_filters = {
        "user_id": user_id,
        "route": route,
        "method": method,
        "status": status,
        "since": since,
        "until": until,
    }
    report = await operations.gather(request, audit_filters, cursor)
    return render(
        request,
        "operations.html",
        {"user": user, "nav": "operations", "report": report, "audit_filters": audit_filters},
        status_code=422 if report.audit_problems else 200,
    )


@router.get("/jobs/{job_id}/stream")
async def job_stream(
    job: JobDep,
    caller: CallerDep,
    request: Request,
    feed: FeedDep,
    slot: StreamSlot,
    last_event_id: LastEventId = None,
    after: Annotated[int | None, Query(ge=0, le=stream_api.MAX_SEQ)] = None,
) -> Response:
    """`GET /api/v1/jobs/{id}/stream`, starting after `?after=` when no Last-Event-ID came."""
    resume = _resume_from(last_event_id, after)
    return await stream_api.stream_job(job, caller, request, feed, slot, resume)


@router.get("/stream")
async def user_stream(
    caller: CallerDep,
    request: Request,
    feed: FeedDep,
    slot: StreamSlot,
    last_event_id: LastEventId = None,
    after: Annotated[int | None, Query(ge=1, le=stream_api.MAX_ROW_ID)] = None,
) -> Response:
    """`GET /api/v1/stream`, starting after `?after=` when no Last-Event-ID came."""
    resume = _resume_from(last_event_id, after)
    return await stream_api.stream_mine(caller, request, feed, slot, resume)


def _resume_from(last_event_id: str | None, after: int | None) -> str | None:
    """The browser's Last-Event-ID (a reconnect) wins; else the page's `?after=` (an
    EventSource cannot send the header on its first connection)."""
    if not (last_event_id or "").strip() and after is not None:
        return str(after)
    return last_event_id
