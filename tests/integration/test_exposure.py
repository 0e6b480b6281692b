"""What anyone can read (issue 13.10): /metrics behind a token, worker host names kept to
operators. Real servers, a real worker, MariaDB."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from jobline.config import Settings
from tests.conftest import _mysql_parts
from tests.integration.stream_helpers import events_of, live_superuser, live_user, read_stream
from tests.support import Proc, User, start_server

pytestmark = pytest.mark.integration

TOKEN = "metrics-" + uuid.uuid4().hex
QUICK = {"source": "song.wav", "chunks": 1, "step_seconds": 0}


@pytest.fixture(scope="module")
def production_servers(
    migrated: Settings, stack_env: dict[str, str], logdir: Path
) -> Iterator[dict[str, str]]:
    """Two production API servers: one with JOBLINE_METRICS_TOKEN, one without."""
    production = {**stack_env, "JOBLINE_ENV": "production"}
    with_token, with_base = start_server({**production, "JOBLINE_METRICS_TOKEN": TOKEN}, logdir)
    try:
        without, without_base = start_server(production, logdir)
    except Exception:
        with_token.stop()
        raise
    yield {"token": with_base, "none": without_base}
    with_token.stop()
    without.stop()


def refused(r: httpx.Response) -> str:
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.json()["detail"]["code"] == "METRICS_TOKEN_REQUIRED"
    assert "jobline_" not in r.text
    message: str = r.json()["detail"]["message"]
    return message


def test_production_metrics_need_the_token(production_servers: dict[str, str]) -> None:
    base = production_servers["token"]
    refused(httpx.get(f"{base}/metrics", timeout=10))
    refused(httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10))
    refused(httpx.get(f"{base}/metrics", headers={"Authorization": f"Basic {TOKEN}"}, timeout=10))
    r = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200 and "jobline_request_duration_seconds" in r.text


def test_production_metrics_without_a_token_are_served_to_nobody(
    production_servers: dict[str, str],
) -> None:
    base = production_servers["none"]
    message = refused(httpx.get(f"{base}/metrics", timeout=10))
    assert "JOBLINE_METRICS_TOKEN" in message
    refused(httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer x"}, timeout=10))
    # The probes stay open: a load balancer needs no token.
    assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200


def stored_started(mysql_url: str, job_id: str) -> dict[str, Any]:
    parts = _mysql_parts(mysql_url)
    conn = pymysql.connect(
        host=str(parts["host"]),
        port=int(str(parts["port"])),
        user=str(parts["user"]),
        password=str(parts["password"]),
        database=str(parts["db"]),
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT data FROM job_events WHERE job_id = %s AND type = 'started'", [job_id]
            )
            (data,) = cur.fetchone()
    finally:
        conn.close()
    found: dict[str, Any] = json.loads(data)
    return found


def started_data(events: list[dict[str, Any]]) -> dict[str, Any]:
    (started,) = [e for e in events if e["type"] == "started"]
    data: dict[str, Any] = started["data"]
    return data


async def test_started_events_name_the_worker_to_superusers_only(
    live_server: str,
    workers: dict[str, Proc],
    stack_env: dict[str, str],
    mysql_url: str,
) -> None:
    user: User = await live_user(live_server)
    admin: User = await live_superuser(live_server, stack_env)
    try:
        job = await user.submit("music.transcode", QUICK)
        assert (await user.wait_final(job["id"]))["state"] == "succeeded"
        path = f"/api/v1/jobs/{job['id']}"
        # The job's history page and its stream, as its owner sees them.
        mine = await user.events(job["id"])
        assert "worker" not in started_data(mine)
        frames, closed = await read_stream(user.client, f"{path}/stream")
        assert closed
        streamed = [f.data for f in events_of(frames) if f.data is not None]
        assert "worker" not in started_data(streamed)
        # The owner's stream of all their jobs, replayed from the start (their only job).
        user_frames, _ = await read_stream(
            user.client,
            "/api/v1/stream",
            last_event_id=0,
            stop=lambda fs: any(f.event == "succeeded" for f in fs),
        )
        per_user = [f.data for f in events_of(user_frames) if f.data is not None]
        assert "worker" not in started_data(per_user)
        # A superuser sees it, on the same routes.
        theirs = await admin.events(job["id"])
        assert started_data(theirs)["worker"].startswith("music@")
        frames, _ = await read_stream(admin.client, f"{path}/stream")
        admin_streamed = [f.data for f in events_of(frames) if f.data is not None]
        assert started_data(admin_streamed)["worker"].startswith("music@")
        start_id = int(user_frames[1].id) - 1  # [0] is the retry hint
        admin_frames, _ = await read_stream(
            admin.client,
            "/api/v1/stream",
            last_event_id=start_id,
            stop=lambda fs: any(
                f.data is not None and f.data["job_id"] == job["id"] and f.event == "succeeded"
                for f in fs
            ),
        )
        admin_per_user = [
            f.data for f in events_of(admin_frames) if f.data and f.data["job_id"] == job["id"]
        ]
        assert started_data(admin_per_user)["worker"].startswith("music@")
        # The stored history is unchanged: the answers leave the field out.
        assert stored_started(mysql_url, job["id"])["worker"].startswith("music@")
    finally:
        await user.client.aclose()
        await admin.client.aclose()
