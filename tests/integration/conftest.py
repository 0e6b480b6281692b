"""The real stack: MariaDB, RabbitMQ, Celery worker processes, the API over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from jobline.config import Settings
from tests.support import Proc, User, free_port, register, start_server, start_worker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
async def tortoise_left_closed() -> AsyncIterator[None]:
    """Each module leaves the database closed in this process. One it left open makes every
    later open_db() refuse ("Global context fallback is already enabled"): the module that
    left it gets the error, and the rest of the run starts clean."""
    yield
    from jobline.compat.tortoise import context_left_open
    from jobline.db import close_db

    if context_left_open():
        await close_db(wait_seconds=5)
        pytest.fail("the module left the database open: its app's shutdown did not finish")


@pytest.fixture(scope="session")
def workers(
    migrated: Settings, stack_env: dict[str, str], logdir: Path
) -> Iterator[dict[str, Proc]]:
    """One real Celery worker process per domain of the shipped queues.yaml.

    Each serves its Prometheus metrics on a free port (its log names the URL).
    """
    procs = {
        domain: start_worker(
            domain, {**stack_env, "JOBLINE_WORKER_METRICS_PORT": str(free_port())}, logdir
        )
        for domain in ("music", "video")
    }
    yield procs
    for proc in procs.values():
        proc.stop()


@pytest.fixture(scope="module")
async def app(migrated: Settings) -> AsyncIterator[FastAPI]:
    from jobline.app import create_app

    application = create_app(migrated)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        yield application


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process ASGI client (no auth)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobline.test"
    ) as c:
        yield c


@pytest.fixture(scope="module")
async def make_user(
    app: FastAPI, client: httpx.AsyncClient
) -> AsyncIterator[Callable[[], Awaitable[User]]]:
    """Registers users over HTTP; each gets a client sending its bearer token."""
    made: list[User] = []

    async def make() -> User:
        email, user_id, token = await register(client)
        authed = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://jobline.test",
            headers={"Authorization": f"Bearer {token}"},
        )
        import uuid

        user = User(email, uuid.UUID(user_id), token, authed)
        made.append(user)
        return user

    yield make
    for user in made:
        await user.client.aclose()


@pytest.fixture(scope="module")
async def user(make_user: Callable[[], Awaitable[User]]) -> User:
    return await make_user()


@pytest.fixture(scope="session")
def live_server(migrated: Settings, stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    """A real uvicorn server process; yields its base URL."""
    proc, base = start_server(stack_env, logdir)
    yield base
    proc.stop()
