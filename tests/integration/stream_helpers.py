"""Helpers of the SSE stream tests: users on a live server, reading streams, feed stats."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tests.support import JOBLINE, PASSWORD, REPO, WAIT_SECONDS, User, register

# Longer than the live server's ping interval, so a quiet stream is not a timeout.
STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)


@dataclass
class Frame:
    """One SSE event as a client sees it; `data` is the decoded Event JSON (None if empty)."""

    id: str
    event: str
    data: dict[str, Any] | None
    retry: int | None


async def live_user(base: str) -> User:
    """Register a user on a live server; its client sends the bearer token."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as anon:
        email, user_id, token = await register(anon)
    client = httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=STREAM_TIMEOUT
    )
    return User(email, uuid.UUID(user_id), token, client)


async def live_superuser(base: str, env: Mapping[str, str]) -> User:
    """A superuser made by `jobline users create --superuser`, logged in over HTTP."""
    email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
    made = await asyncio.to_thread(
        subprocess.run,
        [JOBLINE, "users", "create", email, "--superuser"],
        input=PASSWORD + "\n",
        env={**os.environ, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    async with httpx.AsyncClient(base_url=base, timeout=30) as anon:
        r = await anon.post(
            "/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        me = await anon.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    client = httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=STREAM_TIMEOUT
    )
    return User(email, uuid.UUID(me.json()["id"]), token, client)


async def read_stream(
    client: httpx.AsyncClient,
    path: str,
    last_event_id: int | None = None,
    *,
    stop: Callable[[list[Frame]], bool] | None = None,
    within: float = WAIT_SECONDS,
) -> tuple[list[Frame], bool]:
    """The frames of a stream until the server closes it, or until `stop(frames)` is true.

    Returns (frames, closed_by_server).
    """
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    frames: list[Frame] = []
    async with asyncio.timeout(within):
        async with aconnect_sse(client, "GET", path, headers=headers) as source:
            assert source.response.status_code == 200, await source.response.aread()
            async for sse in source.aiter_sse():
                data = json.loads(sse.data) if sse.data else None
                frames.append(Frame(sse.id, sse.event, data, sse.retry))
                if stop is not None and stop(frames):
                    return frames, False
    return frames, True


def events_of(frames: list[Frame]) -> list[Frame]:
    """The frames that carry an event (not the retry hint nor an id-only frame)."""
    return [f for f in frames if f.data is not None]


async def feed_stats(admin: User) -> dict[str, Any]:
    r = await admin.client.get("/api/v1/stream/stats")
    assert r.status_code == 200, r.text
    stats: dict[str, Any] = r.json()
    return stats


async def wait_subscribers(admin: User, expected: int, within: float = WAIT_SECONDS) -> None:
    """Wait until the server's feed has `expected` subscribers; fail with the last count."""
    deadline = time.monotonic() + within
    while True:
        stats = await feed_stats(admin)
        if stats["subscribers"] == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the feed has {stats['subscribers']} subscribers, not {expected}")
        await asyncio.sleep(0.05)
