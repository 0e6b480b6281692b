"""What the operations page shows: outbox and relay, the event feed, queues, the audit log.

Each part is read here, in the API process, from what the API itself reads: the outbox
table, this process's relay and event feed, the audit log through `GET /api/v1/audit`'s
query, and per domain the RabbitMQ queue's depth and consumers from RabbitMQ's management
API (where there is one: the broker URL's host, or JOBLINE_FLOWER_BROKER_API).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from uuid import UUID

import httpx
from fastapi import Request
from pydantic import TypeAdapter, ValidationError

from jobline import errors
from jobline.api.audit import AuditEntry
from jobline.api.schemas import Instant
from jobline.audit.store import AuditQuery, list_audit
from jobline.config import Settings
from jobline.flower import broker_api

AUDIT_PAGE = 50
# The management API answers in milliseconds when it is there; a page does not wait long.
BROKER_API_TIMEOUT_SECONDS = 2.0
_INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)


@dataclass
class QueueInfo:
    """One domain's RabbitMQ queue, as the management API reports it."""

    domain: str
    queue: str
    messages: int | None = None
    ready: int | None = None
    unacked: int | None = None
    consumers: int | None = None
    missing: bool = False


@dataclass
class Report:
    """Everything the operations page shows."""

    outbox_rows: int
    outbox_due: int
    outbox_oldest_due: datetime | None
    relay: dict[str, Any]
    feed: dict[str, Any]
    broker_api: str | None  # where the queue figures came from (credentials removed)
    broker_problem: str | None
    queues: list[QueueInfo]
    flower_url: str
    audit: list[AuditEntry] = field(default_factory=list)
    audit_next: str | None = None
    audit_problems: list[str] = field(default_factory=list)


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


async def queue_depths(
    settings: Settings, domains: dict[str, str]
) -> tuple[str | None, str | None, list[QueueInfo]]:
    """(management API, problem, queues): each domain's queue depth and consumers."""
    infos = [QueueInfo(domain=d, queue=q) for d, q in sorted(domains.items())]
    api = broker_api(settings)
    if api is None:
        return None, "the broker is not RabbitMQ, or its management API is not configured", infos
    parts = urlsplit(api)
    auth = None
    if parts.username:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    base = _without_credentials(api).rstrip("/")
    vhost = urlsplit(settings.broker_url).path.lstrip("/") or "/"
    try:
        async with httpx.AsyncClient(timeout=BROKER_API_TIMEOUT_SECONDS, auth=auth) as client:
            r = await client.get(f"{base}/queues/{quote(vhost, safe='')}")
    except httpx.HTTPError as exc:
        return base, f"the management API did not answer ({type(exc).__name__})", infos
    if r.status_code != 200:
        return base, f"the management API answered {r.status_code}", infos
    found = {q.get("name"): q for q in r.json() if isinstance(q, dict)}
    for info in infos:
        q = found.get(info.queue)
        if q is None:
            info.missing = True
            continue
        info.messages = q.get("messages")
        info.ready = q.get("messages_ready")
        info.unacked = q.get("messages_unacknowledged")
        info.consumers = q.get("consumers")
    return base, None, infos


def _audit_query(filters: dict[str, str], problems: list[str]) -> AuditQuery:
    user_id = None
    if filters["user_id"]:
        try:
            user_id = UUID(filters["user_id"])
        except ValueError:
            problems.append("user id: not a UUID")
    status = None
    if filters["status"]:
        if filters["status"].isdigit() and 100 <= int(filters["status"]) <= 599:
            status = int(filters["status"])
        else:
            problems.append("status: an HTTP status from 100 to 599")
    times: list[datetime | None] = []
    for key in ("since", "until"):
        value = None
        if filters[key]:
            try:
                value = _INSTANT.validate_python(filters[key])
            except ValidationError as exc:
                problems.append(f"{key}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}")
        times.append(value)
    return AuditQuery(
        user_id,
        filters["route"] or None,
        filters["method"].upper() or None,
        status,
        times[0],
        times[1],
    )


async def gather(request: Request, filters: dict[str, str], cursor: str | None) -> Report:
    """Read every part of the operations page."""
    settings: Settings = request.app.state.settings
    now = datetime.now(UTC)
    relay = request.app.state.relay
    publisher = relay.publisher
    total, due, oldest = await publisher.outbox.backlog(now)
    relay_state = {
        "runs in this process": settings.api_relay,
        "name": relay.name,
        "running": relay._task is not None and not relay._task.done(),
        "published by it": relay.published,
        "broker healthy": publisher.health.ok,
        "batch": relay.batch,
        "interval seconds": relay.interval,
    }
    domains = {name: d.queue for name, d in request.app.state.service.queues.domains.items()}
    api, problem, queues = await queue_depths(settings, domains)
    report = Report(
        outbox_rows=total,
        outbox_due=due,
        outbox_oldest_due=oldest if isinstance(oldest, datetime) else None,
        relay=relay_state,
        feed=asdict(request.app.state.feed.stats()),
        broker_api=api,
        broker_problem=problem,
        queues=queues,
        flower_url=settings.flower_url or f"http://{settings.flower_host}:{settings.flower_port}/",
    )
    query = _audit_query(filters, report.audit_problems)
    if report.audit_problems:
        return report
    scope = f"audit:{query}"
    before = None
    if cursor:
        try:
            before = request.app.state.cursors.decode_int(scope, cursor)
        except errors.InvalidCursor as exc:
            report.audit_problems.append(exc.message)
            return report
    rows = await list_audit(query, before, AUDIT_PAGE + 1)
    if len(rows) > AUDIT_PAGE:
        rows = rows[:AUDIT_PAGE]
        report.audit_next = request.app.state.cursors.encode(scope, [rows[-1].id])
    report.audit = [AuditEntry.of(r) for r in rows]
    return report
