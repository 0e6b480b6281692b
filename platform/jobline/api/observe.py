"""What the API tells operators: request ids, latency metrics, audit records, /metrics.

One pure ASGI middleware does the per-request work (a BaseHTTPMiddleware would cost a
task and a stream per request); the audit write and the job counts run in background
tasks of the lifespan, never on a request's path.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobline import metrics
from jobline.accounts.backends import COOKIE_NAME
from jobline.api.errors import problem
from jobline.api.schemas import ErrorResponse
from jobline.audit.store import prune as prune_audit
from jobline.audit.writer import AuditRecord, AuditWriter
from jobline.config import Settings
from jobline.jobs.counts import active_job_counts
from jobline.jobs.outbox import Outbox
from jobline.logging import REQUEST_ID_HEADER, new_request_id, request_id_var

log = logging.getLogger("jobline.api")

# Only API requests are audited: probes and scrapes (/healthz, /readyz, /metrics) would
# flood the log with rows nobody reads.
AUDITED_PREFIX = "/api/"
UNMATCHED = "<unmatched>"
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_BEARER = "bearer "
MS_PER_SECOND = 1000.0


class ObserveMiddleware:
    """Gives each request its id, times it, and hands an audit record to the writer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        at = datetime.now(UTC)
        offered: str | None = None
        credential: str | None = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID:
                offered = value.decode("latin-1")
            elif name == b"authorization":
                text = value.decode("latin-1")
                if text[: len(_BEARER)].lower() == _BEARER:
                    credential = text[len(_BEARER) :].strip()
            elif name == b"cookie" and credential is None:
                credential = _cookie(value.decode("latin-1"), COOKIE_NAME)
        request_id = new_request_id(offered)
        token = request_id_var.set(request_id)
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            elapsed = time.perf_counter() - started
            template = _template(scope)
            method = scope["method"]
            metrics.REQUEST_LATENCY.labels(method, template or UNMATCHED, str(status)).observe(
                elapsed
            )
            path: str = scope["path"]
            writer: AuditWriter | None = getattr(scope["app"].state, "audit", None)
            if writer is not None and path.startswith(AUDITED_PREFIX):
                client = scope.get("client")
                writer.offer(
                    AuditRecord(
                        at=at,
                        method=method,
                        route=template or path,
                        status=status,
                        latency_ms=elapsed * MS_PER_SECOND,
                        client=client[0] if client else None,
                        request_id=request_id,
                        credential=credential,
                    )
                )


# A route object -> the prefix it is included under (FastAPI's route knows only its own part).
_PREFIXES: dict[int, str] = {}


def _template(scope: Scope) -> str | None:
    """The matched route's full path template (`/api/v1/jobs/{job_id}`), or None."""
    route = scope.get("route")
    fmt: str | None = getattr(route, "path_format", None)
    regex = getattr(route, "path_regex", None)
    if fmt is None or regex is None:
        return None
    path: str = scope["path"]
    prefix = _PREFIXES.get(id(route))
    if prefix is None or not path.startswith(prefix):
        # Find where the route's own pattern starts; prefixes end at a slash.
        prefix = next(
            (path[:i] for i, ch in enumerate(path) if ch == "/" and regex.match(path[i:])), ""
        )
        _PREFIXES[id(route)] = prefix
    return prefix + fmt


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value or None
    return None


async def count_jobs() -> None:
    """Jobs per active state (an indexed range count each) and the due outbox rows.

    Both sets are small however big the jobs table grows: finished jobs are not counted,
    and an outbox row is deleted once its attempt is queued.
    """
    counts = await active_job_counts()
    metrics.set_job_counts({state.value: count for state, count in counts.items()})
    metrics.set_outbox_backlog(await Outbox().due())


async def _refresh_job_counts(interval: float) -> None:
    while True:
        try:
            await count_jobs()
        except Exception as exc:  # the database may be away for a while; try again later
            log.warning("counting jobs for /metrics failed: %s", exc)
        await asyncio.sleep(interval)


async def _prune_audit_log(settings: Settings) -> None:
    """Delete audit rows past JOBLINE_AUDIT_RETENTION_DAYS, every ..._PRUNE_INTERVAL_SECONDS.

    Every request writes a row, unauthenticated ones too: without this the table grows
    with any flood until someone runs `jobline audit prune`. Each API process runs it; two
    pruning at once only find each other's rows gone.
    """
    retention = timedelta(days=settings.audit_retention_days)
    while True:
        try:
            removed = await prune_audit(datetime.now(UTC) - retention, settings.audit_prune_batch)
        except Exception as exc:
            # The database restarting, or a lock another pruner held: the next round retries.
            log.warning("pruning the audit log failed: %s", exc)
        else:
            if removed:
                log.info("pruned %d audit row(s) older than %s", removed, retention)
        await asyncio.sleep(settings.audit_prune_interval_seconds)


@dataclass
class Operations:
    """The lifespan's background work: the audit writer, its pruning, the periodic job count."""

    writer: AuditWriter | None
    counter: asyncio.Task[None]
    pruner: asyncio.Task[None]

    async def stop(self) -> None:
        for task in (self.counter, self.pruner):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.writer is not None:
            await self.writer.close()


def start(app: FastAPI, settings: Settings) -> Operations:
    """Start the background work (called in the lifespan, once the database is open)."""
    writer = None
    if settings.audit_enabled:
        writer = AuditWriter(
            app.state.secret,
            queue_max=settings.audit_queue_max,
            batch_max=settings.audit_batch_max,
            flush_seconds=settings.audit_flush_seconds,
        )
        writer.start()
    app.state.audit = writer
    counter = asyncio.create_task(
        _refresh_job_counts(settings.metrics_refresh_seconds), name="jobline-job-counts"
    )
    pruner = asyncio.create_task(_prune_audit_log(settings), name="jobline-audit-prune")
    return Operations(writer, counter, pruner)


def metrics_allowed(settings: Settings, authorization: str | None) -> bool:
    """Whether a request with this Authorization header may read /metrics."""
    if settings.metrics_open_without_token():
        return True
    if not settings.metrics_token or authorization is None:
        return False
    scheme, _, given = authorization.partition(" ")
    # Compared in constant time: the answer's timing must not tell how much of it matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), settings.metrics_token.encode()
    )


def install(app: FastAPI) -> None:
    """Add the middleware and the /metrics route."""
    app.state.audit = None
    app.add_middleware(ObserveMiddleware)

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={401: {"model": ErrorResponse, "description": "METRICS_TOKEN_REQUIRED"}},
    )
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format; under gunicorn, the sum over every worker process.

        With JOBLINE_METRICS_TOKEN set, only for `Authorization: Bearer <token>`; in
        production without one, for nobody unless JOBLINE_METRICS_PUBLIC=true.
        """
        settings: Settings = request.app.state.settings
        if not metrics_allowed(settings, request.headers.get("authorization")):
            why = (
                "send JOBLINE_METRICS_TOKEN as a bearer token"
                if settings.metrics_token
                else "set JOBLINE_METRICS_TOKEN (or JOBLINE_METRICS_PUBLIC=true) to scrape it"
            )
            return JSONResponse(
                problem("METRICS_TOKEN_REQUIRED", f"/metrics is not public: {why}"),
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        # Sync on purpose: in multiprocess mode it reads files, so it runs in the threadpool.
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)
