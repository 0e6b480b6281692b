"""Live streams (SSE): one job's events, and all of a user's jobs' events.

Everything that can fail is checked before the response starts (auth 401, the job 404,
Last-Event-ID 400); the stream itself only reads. A job stream's SSE id is the event's
`seq`, the same number as `GET /jobs/{id}/events?after_seq=`; the per-user stream's SSE id
is the event's row id, which orders events across jobs (seq counts per job).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from jobline import errors, metrics
from jobline.accounts.session_watch import session_watch
from jobline.accounts.tokens import Credential
from jobline.api.deps import CallerDep, CallerRoute, JobDep
from jobline.api.errors import responses
from jobline.api.quotas import StreamSlot
from jobline.api.schemas import Job, JobEvent, shows_operator_fields
from jobline.compat.sse_starlette import SendTimeoutOnPings
from jobline.config import Settings
from jobline.dialects import UNAVAILABLE
from jobline.jobs.service import Caller
from jobline.streaming.feed import EventFeed, FeedStats
from jobline.streaming.follow import StartAt, follow_job, follow_user
from jobline.streaming.reader import FeedEvent

router = APIRouter(tags=["stream"], route_class=CallerRoute)
log = logging.getLogger("jobline.api")

SEP = "\n"
PING = ServerSentEvent(comment="ping", sep=SEP).encode()
# SSE ids: a seq is an INT column, a row id a BIGINT one.
MAX_SEQ = 2**31 - 1
MAX_ROW_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")

LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="resume after this id (browsers send it when they reconnect)",
    ),
]
STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/event-stream": {},
            "application/json": {"schema": {"$ref": "#/components/schemas/StreamCheck"}},
        },
        "description": "the event stream; with `Accept: application/json` (and not "
        "text/event-stream), no stream: the check a page makes after EventSource's `error` "
        "(every refusal is then the JSON error, with its code)",
    },
    **responses(errors.InvalidLastEventId),
    401: {"description": "not logged in (bearer token or the cookie of /auth/cookie/login)"},
}


class StreamCheck(BaseModel):
    """What a stream URL answers to `Accept: application/json` when it would open.

    `job`: the job of a job stream (a finished one explains an `error` after its last
    event: the server closed the stream); null for the stream of all your jobs.
    """

    status: str = "ok"
    job: Job | None = None


def wants_json(request: Request) -> bool:
    """A page asking why a stream failed (fetch with Accept: application/json), not an
    EventSource (which sends Accept: text/event-stream)."""
    accept = request.headers.get("accept", "").lower()
    return "application/json" in accept and "text/event-stream" not in accept


def get_feed(request: Request) -> EventFeed:
    feed: EventFeed = request.app.state.feed
    return feed


FeedDep = Annotated[EventFeed, Depends(get_feed)]


def parse_last_event_id(raw: str | None, maximum: int) -> int | None:
    """The id a client resumes after; an empty header counts as none."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if not _DIGITS.fullmatch(text) or int(text) > maximum:
        raise errors.InvalidLastEventId(f"Last-Event-ID must be an integer from 0 to {maximum}")
    return int(text)


def variant(item: FeedEvent, operator: bool) -> str:
    """The key suffix of an event's encodings for this follower: an operator's own only
    when the event has fields users do not see (most events have one encoding)."""
    return ":op" if operator and shows_operator_fields(item.event) else ""


def event_json(item: FeedEvent, operator: bool = False) -> bytes:
    """The event as `GET /jobs/{id}/events` shows it to this follower, encoded once per process."""
    key = "json" + variant(item, operator)
    cached = item.frames.get(key)
    if cached is None:
        event = JobEvent.of(item.event, operator=operator)
        cached = item.frames[key] = event.model_dump_json().encode()
    return cached


def frame(item: FeedEvent, sse_id: int, operator: bool = False) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        sse_id,
        item.event.type.value.encode(),
        event_json(item, operator),
    )


class FanoutResponse(SendTimeoutOnPings):
    """sse-starlette's response with the send timeout on pings only, ended with its session
    (compat/sse_starlette.py).

    A timer around every frame cost a third of the API's CPU with a thousand followers
    (bench/sse_fanout). A client that stops reading is still caught: its next ping cannot
    be sent either, and that send times out (within JOBLINE_SSE_PING_SECONDS +
    JOBLINE_SSE_SEND_TIMEOUT_SECONDS), which ends the stream and frees its subscription.

    The stream is watched by accounts/session_watch.py while it runs: once its session
    is revoked (logout, a password change, a deactivated or deleted user), it ends the
    way a server shutdown ends it, with a clean end of the body.
    """

    ping_body = PING

    def __init__(self, *args: Any, watch: tuple[UUID, Credential] | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self._watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._watch is None:
            await super().__call__(scope, receive, send)
            return
        user_id, credential = self._watch
        interval = scope["app"].state.settings.sse_session_check_seconds
        with session_watch.watching(user_id, credential, interval) as watched:
            self.end = watched.ended
            await super().__call__(scope, receive, send)


def event_source(
    request: Request, frames: AsyncIterator[bytes], caller: Caller
) -> EventSourceResponse:
    settings: Settings = request.app.state.settings
    credential: Credential | None = getattr(request.state, "credential", None)
    return FanoutResponse(
        frames,
        watch=(caller.id, credential) if credential is not None else None,
        ping=settings.sse_ping_seconds,
        sep=SEP,
        ping_message_factory=lambda: ServerSentEvent(comment="ping", sep=SEP),
        send_timeout=settings.sse_send_timeout_seconds,
    )


@contextmanager
def ends_on_outage() -> Iterator[None]:
    """End a stream quietly when its database read fails: the client resumes from its
    Last-Event-ID once the database is back (a thousand tracebacks would say nothing)."""
    try:
        yield
    except UNAVAILABLE as exc:
        log.warning("a stream ended: the database is unreachable (%s)", exc)


def retry_hint(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    return b"retry: %d\n\n" % settings.sse_retry_ms


@router.get(
    "/jobs/{job_id}/stream",
    response_class=EventSourceResponse,
    responses={
        **STREAM_RESPONSES,
        **responses(errors.JobNotFound, errors.InvalidLastEventId),
        204: {"description": "the job has finished and the client has seen its last event"},
    },
)
async def stream_job(
    job: JobDep,
    caller: CallerDep,
    request: Request,
    feed: FeedDep,
    _: StreamSlot,
    last_event_id: LastEventId = None,
) -> Response:
    """A job's events as SSE: a replay after Last-Event-ID (all without it), then live.

    Each frame is `id: <seq>`, `event: <type>`, `data: <Event JSON>`; the stream closes
    after the terminal event. A finished job whose last event the client has seen answers
    204, which tells a browser's EventSource to stop reconnecting.
    """
    after = parse_last_event_id(last_event_id, MAX_SEQ) or 0
    if wants_json(request):
        return JSONResponse(StreamCheck(job=Job.of(job)).model_dump(mode="json"))
    if job.state.is_final and after >= job.last_seq:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    hint = retry_hint(request)
    operator = caller.is_superuser

    async def frames() -> AsyncIterator[bytes]:
        with metrics.sse_stream_open(), ends_on_outage():
            yield hint
            async for item in follow_job(feed, job.id, after):
                key = "job" + variant(item, operator)
                yield item.frames.get(key) or item.frames.setdefault(
                    key, frame(item, item.seq, operator)
                )

    return event_source(request, frames(), caller)


@router.get("/stream", response_class=EventSourceResponse, responses=STREAM_RESPONSES)
async def stream_mine(
    caller: CallerDep,
    request: Request,
    feed: FeedDep,
    _: StreamSlot,
    last_event_id: LastEventId = None,
) -> Response:
    """Events of all the caller's jobs (every job for a superuser) as SSE, live.

    The SSE id here is the event's global row id, not its per-job seq (the data carries
    both `job_id` and `seq`). With Last-Event-ID the stream first replays the stored
    events after it. Without, it starts live with an id-only frame, so a reconnecting
    client resumes from where it started. The stream does not end by itself.
    """
    after = parse_last_event_id(last_event_id, MAX_ROW_ID)
    if wants_json(request):
        return JSONResponse(StreamCheck().model_dump(mode="json"))
    owner = None if caller.is_superuser else caller.id
    hint = retry_hint(request)

    async def frames() -> AsyncIterator[bytes]:
        with metrics.sse_stream_open(), ends_on_outage():
            yield hint
            async for item in follow_user(feed, owner, after):
                if isinstance(item, StartAt):
                    yield b"id: %d\n\n" % item.id
                else:
                    key = "user" + variant(item, caller.is_superuser)
                    yield item.frames.get(key) or item.frames.setdefault(
                        key, frame(item, item.id, caller.is_superuser)
                    )

    return event_source(request, frames(), caller)


def require_superuser(caller: CallerDep) -> Caller:
    if not caller.is_superuser:
        raise errors.SuperuserRequired()
    return caller


@router.get(
    "/stream/stats", response_model=FeedStats, responses=responses(errors.SuperuserRequired)
)
async def stream_stats(
    feed: FeedDep, _: Annotated[Caller, Depends(require_superuser)]
) -> FeedStats:
    """This API process's event feed: followers, database queries, notices (superusers)."""
    return feed.stats()
