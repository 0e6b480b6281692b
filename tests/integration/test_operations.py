"""Operations on the real stack: gunicorn, Flower, /metrics, the audit log, request ids."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobline.config import Settings
from tests.support import (
    JOBLINE,
    PASSWORD,
    REPO,
    WAIT_SECONDS,
    Proc,
    User,
    free_port,
    register,
    start,
)

pytestmark = pytest.mark.integration

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
FLOWER_AUTH = ("ops", "flower-" + uuid.uuid4().hex[:8])
# The audit writer flushes every JOBLINE_AUDIT_FLUSH_SECONDS (0.5 s by default).
AUDIT_WAIT_SECONDS = 15.0


def wait_http(url: str, proc: Proc, ok: Callable[[httpx.Response], bool], **kw: Any) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if ok(httpx.get(url, timeout=3, **kw)):
                return
        except httpx.HTTPError:
            pass
        if proc.popen.poll() is not None:
            break
        time.sleep(0.2)
    proc.stop()
    raise RuntimeError(f"{proc.name} did not answer {url}:\n{proc.output()[-3000:]}")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        # Label values may hold braces themselves (route="/api/v1/jobs/{job_id}").
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.rsplit(" ", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- gunicorn


@pytest.fixture(scope="module")
def gunicorn_server(
    migrated: Settings,
    stack_env: dict[str, str],
    logdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Proc, str]]:
    port = free_port()
    env = {
        **stack_env,
        "JOBLINE_API_PORT": str(port),
        "JOBLINE_API_WORKERS": "2",
        "JOBLINE_LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("prom")),
    }
    log = logdir / f"gunicorn-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [GUNICORN, "-c", "deploy/gunicorn.conf.py", "asgi:app"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = Proc("gunicorn", popen, log)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/readyz", proc, lambda r: r.status_code == 200)
    yield proc, base
    proc.stop()


def test_gunicorn_with_the_shipped_config_serves_readyz_and_metrics_of_every_worker(
    gunicorn_server: tuple[Proc, str],
) -> None:
    proc, base = gunicorn_server
    r = httpx.get(f"{base}/readyz", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["checks"] == {"database": "ok", "schema": "ok", "broker": "ok"}
    # Enough requests that both workers serve some; /metrics adds up every worker's files.
    for _ in range(20):
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    text = httpx.get(f"{base}/metrics", timeout=10).text
    assert (
        sample(text, "jobline_request_duration_seconds_count", route="/healthz", status="200") >= 20
    )
    assert "Booting worker" in proc.output()
    assert proc.output().count("Booting worker") >= 2
    # JOBLINE_LOG_FORMAT=json: every line gunicorn and the app wrote is one JSON object.
    lines = [line for line in proc.output().splitlines() if line.strip()]
    assert lines
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(record)


# ---------------------------------------------------------------- Flower


@pytest.fixture(scope="module")
def flower(workers: dict[str, Proc], stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    port = free_port()
    env = {**stack_env, "JOBLINE_FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}
    proc = start("flower", ["flower", f"--port={port}"], env, logdir)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthcheck", proc, lambda r: r.status_code == 200, auth=FLOWER_AUTH)
    yield base
    proc.stop()


def test_flower_refuses_requests_without_credentials_even_metrics_and_healthcheck(
    flower: str,
) -> None:
    for path in ("/", "/workers", "/metrics", "/healthcheck", "/api/workers"):
        r = httpx.get(f"{flower}{path}", timeout=10)
        assert r.status_code == 401, (path, r.status_code)
        r = httpx.get(f"{flower}{path}", timeout=10, auth=("ops", "wrong"))
        assert r.status_code == 401, (path, r.status_code)
    assert httpx.get(f"{flower}/healthcheck", auth=FLOWER_AUTH, timeout=10).text == "OK"


def test_flower_lists_the_workers_and_the_broker_queues_with_credentials(flower: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    names: list[str] = []
    while time.monotonic() < deadline:
        r = httpx.get(f"{flower}/api/workers", params={"refresh": 1}, auth=FLOWER_AUTH, timeout=30)
        assert r.status_code == 200, r.text
        names = list(r.json())
        if any(n.startswith("music@") for n in names) and any(
            n.startswith("video@") for n in names
        ):
            break
        time.sleep(1)
    assert any(n.startswith("music@") for n in names), names
    assert any(n.startswith("video@") for n in names), names
    # The broker tab reads RabbitMQ's management API (derived from the amqp URL).
    r = httpx.get(f"{flower}/broker", auth=FLOWER_AUTH, timeout=30)
    assert r.status_code == 200
    assert "music" in r.text and "video" in r.text


def test_flower_refuses_to_start_in_production_without_auth(stack_env: dict[str, str]) -> None:
    env = {**os.environ, **stack_env, "JOBLINE_ENV": "production"}
    env.pop("JOBLINE_FLOWER_BASIC_AUTH", None)
    done = subprocess.run(
        [JOBLINE, "flower", f"--port={free_port()}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "JOBLINE_FLOWER_BASIC_AUTH" in done.stderr


# ------------------------------------------------ metrics and request ids


def worker_metrics_url(proc: Proc) -> str:
    proc.wait_for("worker metrics on http://")
    found = re.search(r"worker metrics on (http://\S+/metrics)", proc.output())
    assert found, proc.output()[-2000:]
    return found.group(1)


async def test_metrics_and_the_request_id_follow_a_job_from_post_to_the_worker(
    user: User, client: httpx.AsyncClient, workers: dict[str, Proc]
) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    r = await user.client.post(
        "/api/v1/jobs",
        json={"type": "music.transcode", "payload": {"source": "song.wav", "chunks": 3}},
        headers={"X-Request-ID": request_id},
    )
    assert r.status_code == 202, r.text
    assert r.headers["X-Request-ID"] == request_id
    job = await user.wait_final(r.json()["id"])
    assert job["state"] == "succeeded"

    events = await user.events(job["id"])
    assert events[0]["type"] == "submitted"
    assert events[0]["data"]["request_id"] == request_id

    # The worker's lines for this job carry the request id and the job id.
    proc = workers["music"]
    deadline = time.monotonic() + WAIT_SECONDS
    while f"job {job['id']} attempt 1 succeeded" not in proc.output():
        assert time.monotonic() < deadline, proc.output()[-3000:]
        await asyncio.sleep(0.1)
    lines = [line for line in proc.output().splitlines() if request_id in line]
    assert any(f"job {job['id']} (music.transcode) attempt 1 started" in x for x in lines), lines
    assert any(f"job {job['id']} attempt 1 succeeded" in x for x in lines), lines
    assert all(f"job={job['id']}" in x for x in lines), lines

    # deploy/README: an idempotent repeat answers the first job and is not counted again.
    keyed = {"type": "music.fingerprint", "payload": {"source": "once.wav"}}
    key = {"Idempotency-Key": f"count-{uuid.uuid4().hex}"}
    assert (await user.client.post("/api/v1/jobs", json=keyed, headers=key)).status_code == 202
    counted = sample(
        (await client.get("/metrics")).text,
        "jobline_jobs_submitted_total",
        type="music.fingerprint",
    )
    repeat = await user.client.post("/api/v1/jobs", json=keyed, headers=key)
    assert repeat.status_code == 200, repeat.text
    again = sample(
        (await client.get("/metrics")).text,
        "jobline_jobs_submitted_total",
        type="music.fingerprint",
    )
    assert again == counted >= 1

    # The API's /metrics: submitted, its own transitions, latency of the route template.
    api = (await client.get("/metrics")).text
    assert sample(api, "jobline_jobs_submitted_total", type="music.transcode") >= 1
    assert sample(api, "jobline_transitions_total", type="music.transcode", event="submitted") >= 1
    assert (
        sample(
            api,
            "jobline_request_duration_seconds_count",
            method="POST",
            route="/api/v1/jobs",
            status="202",
        )
        >= 1
    )
    assert (
        sample(
            api,
            "jobline_request_duration_seconds_count",
            method="GET",
            route="/api/v1/jobs/{job_id}",
        )
        >= 1
    )
    for name in ("jobline_jobs", "jobline_outbox_backlog", "jobline_sse_streams_open"):
        assert re.search(rf"^{name}(\{{| )", api, re.M), name

    # The worker's /metrics: the transitions it recorded and the job's duration.
    response = await asyncio.to_thread(httpx.get, worker_metrics_url(proc), timeout=10)
    text = response.text
    assert sample(text, "jobline_transitions_total", type="music.transcode", event="started") >= 1
    assert sample(text, "jobline_transitions_total", type="music.transcode", event="succeeded") >= 1
    assert (
        sample(
            text, "jobline_job_duration_seconds_count", type="music.transcode", state="succeeded"
        )
        >= 1
    )


# ---------------------------------------------------------------- audit log


async def superuser(make_user: Callable[[], Awaitable[User]]) -> User:
    from jobline.accounts.models import User as UserRow

    admin = await make_user()
    await UserRow.filter(id=admin.id).update(is_superuser=True)
    return admin


async def audit_rows(admin: User, **params: Any) -> list[dict[str, Any]]:
    r = await admin.client.get("/api/v1/audit", params={"size": 100, **params})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def wait_audit(
    admin: User, check: Callable[[list[dict[str, Any]]], bool], **params: Any
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + AUDIT_WAIT_SECONDS
    while True:
        rows = await audit_rows(admin, **params)
        if check(rows):
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.2)


async def test_every_api_request_is_audited_without_any_secret(
    make_user: Callable[[], Awaitable[User]], client: httpx.AsyncClient, workers: dict[str, Proc]
) -> None:
    from jobline.audit.models import AuditRow

    admin = await superuser(make_user)
    user = await make_user()
    request_id = f"audit-{uuid.uuid4().hex}"
    r = await user.client.post(
        "/api/v1/jobs",
        json={"type": "music.fingerprint", "payload": {"source": "a.wav"}},
        headers={"X-Request-ID": request_id},
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert (await user.client.get(f"/api/v1/jobs/{job_id}")).status_code == 200
    assert (await user.client.get(f"/api/v1/jobs/{uuid.uuid4()}")).status_code == 404
    # A browser login: the cookie identifies the user in the audit row, and is not stored.
    email, cookie_user_id, _ = await register(client)
    login_id = f"login-{uuid.uuid4().hex}"
    client.cookies.clear()  # the module's client may hold an earlier test's session
    r = await client.post(
        "/api/v1/auth/cookie/login",
        data={"username": email, "password": PASSWORD},
        headers={"X-Request-ID": login_id},
    )
    assert r.status_code == 204, r.text
    cookie = r.cookies["jobline_auth"]
    client.cookies.clear()
    r = await client.get("/api/v1/users/me", headers={"Cookie": f"jobline_auth={cookie}"})
    assert r.status_code == 200, r.text
    client.cookies.clear()

    def has_user_rows(rows: list[dict[str, Any]]) -> bool:
        return {(x["method"], x["route"], x["status"]) for x in rows} >= {
            ("POST", "/api/v1/jobs", 202),
            ("GET", "/api/v1/jobs/{job_id}", 200),
            ("GET", "/api/v1/jobs/{job_id}", 404),
        }

    rows = await wait_audit(admin, has_user_rows, user_id=str(user.id))
    post = next(x for x in rows if x["method"] == "POST")
    assert post["request_id"] == request_id
    assert post["user_id"] == str(user.id)
    assert post["client"] == "127.0.0.1"
    assert post["latency_ms"] > 0
    await wait_audit(
        admin,
        lambda rows: any(x["route"] == "/api/v1/users/me" for x in rows),
        user_id=cookie_user_id,
    )
    # This test's own login (the audit log is the whole session's: other tests log in with
    # a session cookie already sent, which names its user).
    logins = await wait_audit(
        admin,
        lambda rows: any(x["request_id"] == login_id for x in rows),
        route="/api/v1/auth/cookie/login",
    )
    assert [x["user_id"] for x in logins if x["request_id"] == login_id] == [None]

    # README: unauthenticated requests are recorded too; deploy/README: probes and scrapes
    # are not. The probes go first: once the 401's row is written, theirs would have been.
    probe_id = f"probe-{uuid.uuid4().hex}"
    for path in ("/healthz", "/readyz", "/metrics"):
        await client.get(path, headers={"X-Request-ID": probe_id})
    anonymous = await client.get("/api/v1/jobs", headers={"X-Request-ID": probe_id})
    assert anonymous.status_code == 401, anonymous.text
    refused = await wait_audit(
        admin, lambda rows: any(x["request_id"] == probe_id for x in rows), status=401
    )
    mine = [x for x in refused if x["request_id"] == probe_id]
    assert [(x["route"], x["user_id"]) for x in mine] == [("/api/v1/jobs", None)]
    for path in ("/healthz", "/readyz", "/metrics"):
        assert await audit_rows(admin, route=path) == []

    # Nothing secret anywhere in the table: no token, cookie, password, header.
    stored = json.dumps([r async for r in _all_rows(AuditRow)], default=str)
    for secret in (user.token, admin.token, cookie, PASSWORD, "Bearer", "Authorization"):
        assert secret not in stored

    # Filters and the cursor page.
    only_posts = await audit_rows(admin, route="/api/v1/jobs", method="POST")
    assert only_posts and all(
        x["route"] == "/api/v1/jobs" and x["method"] == "POST" for x in only_posts
    )
    not_found = await audit_rows(admin, status=404, user_id=str(user.id))
    assert [x["status"] for x in not_found] == [404]
    since = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await audit_rows(admin, since=since) == []
    r = await admin.client.get("/api/v1/audit", params={"size": 1, "user_id": str(user.id)})
    first = r.json()
    assert len(first["items"]) == 1 and first["next_page"]
    r = await admin.client.get(
        "/api/v1/audit", params={"size": 1, "user_id": str(user.id), "cursor": first["next_page"]}
    )
    second = r.json()
    assert second["items"][0]["id"] < first["items"][0]["id"]
    r = await admin.client.get("/api/v1/audit", params={"cursor": first["next_page"]})
    assert r.status_code == 400, "a cursor only works for the listing it was made for"

    # Only a superuser reads it.
    r = await user.client.get("/api/v1/audit")
    assert r.status_code == 403
    assert r.json()["detail"]["code"] == "SUPERUSER_REQUIRED"


async def _all_rows(model: Any) -> Any:
    for row in await model.all().values():
        yield row


async def test_audit_prune_deletes_only_rows_older_than_the_age(
    migrated: Settings, stack_env: dict[str, str], app: Any
) -> None:
    from jobline.audit.models import AuditRow

    now = datetime.now(UTC)
    marker = f"prune-{uuid.uuid4().hex[:8]}"
    old = await AuditRow.create(
        at=now - timedelta(days=40),
        method="GET",
        route="/x",
        status=200,
        latency_ms=1.0,
        request_id=marker + "-old",
    )
    recent = await AuditRow.create(
        at=now - timedelta(days=1),
        method="GET",
        route="/x",
        status=200,
        latency_ms=1.0,
        request_id=marker + "-new",
    )
    env = {**os.environ, **stack_env}
    done = await asyncio.to_thread(
        subprocess.run,
        [JOBLINE, "audit", "prune", "--older-than", "30d"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"deleted [1-9]\d* audit row", done.stdout), done.stdout
    assert not await AuditRow.filter(id=old.id).exists()
    assert await AuditRow.filter(id=recent.id).exists()

    bad = await asyncio.to_thread(
        subprocess.run,
        [JOBLINE, "audit", "prune", "--older-than", "thirty days"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "30d" in bad.stderr


async def test_the_active_job_gauges_count_a_delayed_job_as_pending_not_as_backlog(
    user: User, client: httpx.AsyncClient
) -> None:
    from jobline.api.observe import count_jobs

    job = await user.submit("music.fingerprint", {"source": "later.wav"}, delay_seconds=3600)
    try:
        await count_jobs()
        text = (await client.get("/metrics")).text
        assert sample(text, "jobline_jobs", state="pending") >= 1
        # Its outbox row is not due for an hour: not a backlog of the broker.
        before = sample(text, "jobline_outbox_backlog")
        from jobline.jobs.models import DispatchRow

        due = await DispatchRow.filter(due_at__lte=datetime.now(UTC)).count()
        assert before == due
    finally:
        await user.client.post(f"/api/v1/jobs/{job['id']}/cancel")
