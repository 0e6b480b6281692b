"""create_app(): the HTTP door onto the jobs service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tortoise import connections

from jobline import ui
from jobline.accounts.backends import COOKIE_NAME, bearer_backend, cookie_backend
from jobline.accounts.users import UserCreate, UserRead, UserUpdate, fastapi_users
from jobline.api import audit, docs, errors, jobs, observe, openapi, security, stream
from jobline.api.csrf import CrossOriginGuard
from jobline.api.cursors import CursorCodec
from jobline.api.limits import BodyGuard, BodyLimit
from jobline.api.login_guard import LoginThrottle
from jobline.api.registration import RegistrationGate
from jobline.config import Settings, get_settings
from jobline.db import close_db, open_db, pending_migrations
from jobline.heap import frozen_after_startup
from jobline.jobs.batching import SubmitBatcher
from jobline.jobs.service import JobService
from jobline.jobs.spec import load_queues
from jobline.jobs.store import JobStore
from jobline.queueing.app import create_celery
from jobline.queueing.relay import wire
from jobline.streaming.runtime import StreamingRuntime

log = logging.getLogger("jobline.api")
API = "/api/v1"
# Room for the envelope around a payload of the maximum size (type, priority, JSON escaping).
BODY_OVERHEAD_BYTES = 16_384
READY_TIMEOUT_SECONDS = 3.0


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app; resources open in its lifespan."""
    settings = settings or get_settings()
    queues = load_queues(settings.queues_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each stop is pushed once its resource runs. On the way out every one runs, last
        # started first, even when one before it raised: the database always closes, so
        # a failing stop cannot keep connections (and their locks) open.
        async with AsyncExitStack() as stops:
            await open_db(settings)
            stops.push_async_callback(close_db)
            celery = create_celery(settings, queues)
            stops.callback(celery.close)
            streaming = StreamingRuntime(settings)
            await streaming.start()
            stops.push_async_callback(streaming.stop)
            app.state.feed = streaming.feed
            operations = observe.start(app, settings)
            stops.push_async_callback(operations.stop)
            store = JobStore(listener=streaming.notifier)
            app.state.celery = celery
            publisher, relay = wire(settings, queues, celery, store)
            if publisher.confirming is not None:
                stops.callback(publisher.confirming.close)
            stops.push_async_callback(relay.stop)
            batcher = None
            if settings.submit_batching and publisher.batches:
                batcher = SubmitBatcher(
                    store,
                    publisher,
                    max_batch=settings.submit_batch_max,
                    in_flight=settings.submit_batches_in_flight,
                    answer_at_commit=settings.submit_answer == "commit",
                )
                batcher.start()
                stops.push_async_callback(batcher.stop)
            app.state.service = JobService(
                store, queues, publisher, settings.max_payload_bytes, batcher
            )
            app.state.relay = relay
            if settings.api_relay:
                relay.start()
            with frozen_after_startup(settings.api_gc_thresholds):
                yield

    # /docs and /redoc are jobline's own pages (api/docs.py): FastAPI's load from a CDN.
    app = FastAPI(
        title="jobline", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.secret = settings.resolved_secret()
    app.state.cursors = CursorCodec(app.state.secret)
    errors.install(app)
    openapi.install(app, queues)
    docs.install(app)

    # Innermost: it reads a login form the guards below have already bounded.
    app.add_middleware(
        LoginThrottle,
        paths=(f"{API}/auth/jwt/login", f"{API}/auth/cookie/login"),
        secret=app.state.secret,
        settings=settings,
    )
    app.add_middleware(
        RegistrationGate, path=f"{API}/auth/register", secret=app.state.secret, settings=settings
    )
    # Inside the BodyLimit below: it reads only bodies already known to be under the cap.
    app.add_middleware(
        BodyGuard,
        read_timeout=settings.body_read_timeout_seconds,
        max_depth=settings.max_json_depth,
    )

    app.add_middleware(BodyLimit, limit=settings.max_payload_bytes + BODY_OVERHEAD_BYTES)
    # Before any body is read: a cross-origin cookie request is refused on its headers.
    app.add_middleware(
        CrossOriginGuard,
        cookie_name=COOKIE_NAME,
        login_paths=(f"{API}/auth/cookie/login",),
        allowed=settings.cors_origins,
    )
    # Headers and CORS on every answer, the 413 and 408 above included.
    security.install(app, settings)

    # Added last, so it runs first: it sees every response, the 413 above included.
    observe.install(app)

    app.include_router(
        fastapi_users.get_auth_router(bearer_backend), prefix=f"{API}/auth/jwt", tags=["auth"]
    )
    app.include_router(
        fastapi_users.get_auth_router(cookie_backend), prefix=f"{API}/auth/cookie", tags=["auth"]
    )
    app.include_router(
        fastapi_users.get_register_router(UserRead, UserCreate), prefix=f"{API}/auth", tags=["auth"]
    )
    app.include_router(
        fastapi_users.get_users_router(UserRead, UserUpdate), prefix=f"{API}/users", tags=["users"]
    )
    app.include_router(jobs.router, prefix=API)
    app.include_router(stream.router, prefix=API)
    app.include_router(audit.router, prefix=API)
    ui.install(app)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: the database answers and has every migration applied; the broker answers."""
        database = await _check_database()
        checks = {
            "database": database,
            "schema": (
                await _check_schema(request.app.state.settings)
                if database == "ok"
                else "not checked"
            ),
            "broker": await _check_broker(request.app.state.celery),
        }
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": checks},
            status_code=200 if ok else 503,
        )

    return app


async def _check_database() -> str:
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            await connections.get("default").execute_query("SELECT 1")
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


async def _check_schema(settings: Settings) -> str:
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            pending = await pending_migrations(settings)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    if pending:
        # This code reads columns and tables they add: every request would fail on them.
        return (
            f"error: {len(pending)} migration(s) not applied, from {pending[0]};"
            " run `jobline migrate`"
        )
    return "ok"


async def _check_broker(celery: Any) -> str:
    def probe() -> None:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=READY_TIMEOUT_SECONDS)

    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS * 2):
            await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"
