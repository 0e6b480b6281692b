"""The stack of the hardening tests: an API server and a worker with low limits of their own.

Their own secret keys their login counters apart from every other test's logins (the
counters hash the secret in), and X-Forwarded-For, which uvicorn trusts from 127.0.0.1,
gives each test a client address of its own.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import REPO, Proc, start_server, start_worker

HOSTILE_QUEUES = REPO / "tests" / "hostile_queues.yaml"
ORIGIN = "https://app.example"
LIMITS = {
    "JOBLINE_QUEUES_FILE": str(HOSTILE_QUEUES),
    "JOBLINE_LOGIN_FAILURES_PER_ACCOUNT": "3",
    "JOBLINE_LOGIN_FAILURES_PER_ADDRESS": "6",
    "JOBLINE_MAX_STREAMS_PER_USER": "2",
    "JOBLINE_MAX_ACTIVE_JOBS_PER_USER": "10",
    "JOBLINE_BODY_READ_TIMEOUT_SECONDS": "2",
    "JOBLINE_MAX_PROGRESS_MESSAGE_CHARS": "100",
    "JOBLINE_MAX_RESULT_BYTES": "5000",
    "JOBLINE_MAX_ERROR_MESSAGE_CHARS": "200",
    "JOBLINE_CORS_ORIGINS": f'["{ORIGIN}"]',
}


@dataclass
class Stack:
    server: Proc
    base: str
    worker: Proc
    env: dict[str, str]


@contextmanager
def hardened_stack(stack_env: dict[str, str], logdir: Path, secret: str) -> Iterator[Stack]:
    """The API and a `hostile` worker on the run's database and vhost, with LIMITS."""
    env = {**stack_env, **LIMITS, "JOBLINE_SECRET_KEY": secret}
    server, base = start_server(env, logdir)
    try:
        worker = start_worker("hostile", env, logdir)
    except Exception:
        server.stop()
        raise
    try:
        yield Stack(server, base, worker, env)
    finally:
        worker.stop()
        server.stop()


_addresses = itertools.count(uuid.uuid4().int % 2**20)


def address() -> str:
    """A client address no other call of this run gets (10/8), sent as X-Forwarded-For."""
    n = next(_addresses) % 2**24
    return f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"


def new_email() -> str:
    return f"h-{uuid.uuid4().hex[:10]}@example.com"


def register(base: str, password: str, email: str | None = None) -> str:
    email = email or new_email()
    r = httpx.post(
        f"{base}/api/v1/auth/register", json={"email": email, "password": password}, timeout=30
    )
    assert r.status_code == 201, r.text
    return email


def login(base: str, email: str, password: str, client_address: str) -> httpx.Response:
    return httpx.post(
        f"{base}/api/v1/auth/jwt/login",
        data={"username": email, "password": password},
        headers={"X-Forwarded-For": client_address},
        timeout=30,
    )


def bearer(base: str, password: str) -> tuple[httpx.Client, str]:
    """A client logged in as a new user (its own address), and the user's id."""
    email = register(base, password)
    r = login(base, email, password, address())
    assert r.status_code == 200, r.text
    client = httpx.Client(
        base_url=base,
        headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        timeout=30,
    )
    me = client.get("/api/v1/users/me")
    assert me.status_code == 200, me.text
    return client, me.json()["id"]
