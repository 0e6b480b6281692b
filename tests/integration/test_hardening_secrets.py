"""No secret ends up where it can be read: logs, the audit log, events, check-config, errors.

A realistic session runs against a real server and worker logging at DEBUG (register,
logins by bearer and cookie, failed logins, a job submitted and followed over SSE, a
password change, refused requests, logout). Then every log file of the run's processes,
the audit table, the job tables, the login counters, `jobline check-config` and the
start-up error of an unreachable database are searched for every secret the session used.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from jobline.config import Settings
from tests.integration.hardening import address, hardened_stack, new_email
from tests.support import JOBLINE, REPO

pytestmark = pytest.mark.integration

AUDIT_WAIT_SECONDS = 15.0
FOLLOW_SECONDS = 60.0


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def db_dump(env: dict[str, str], tables: list[str]) -> str:
    """Every row of the tables, as text."""
    url = env["JOBLINE_DATABASE_URL"].split("://", 1)[1]
    creds, rest = url.rsplit("@", 1)
    user, password = creds.split(":", 1)
    hostport, db = rest.split("/", 1)
    host, port = hostport.split(":")
    conn = pymysql.connect(
        host=host, port=int(port), user=user, password=password, database=db, charset="utf8mb4"
    )
    out: list[str] = []
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"SELECT * FROM `{table}`")
                out.extend(f"{table}: {row!r}" for row in cur.fetchall())
    finally:
        conn.close()
    return "\n".join(out)


def follow(base: str, cookies: dict[str, str], job_id: str) -> list[str]:
    """The SSE event types of a job, read with the browser's cookie until the stream ends."""
    types = []
    with (
        httpx.Client(base_url=base, cookies=cookies, timeout=FOLLOW_SECONDS) as c,
        c.stream("GET", f"/api/v1/jobs/{job_id}/stream") as r,
    ):
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("event: "):
                types.append(line.removeprefix("event: "))
    return types


def test_a_session_leaves_no_secret_anywhere(
    migrated: Settings, stack_env: dict[str, str], logdir: Path, tmp_path: Path
) -> None:
    server_secret = unique("server-secret") + "x" * 20
    password = unique("Password-One")
    new_password = unique("Password-Two")
    wrong = [unique(f"Wrong-{i}") for i in range(2)]  # under the limit of 3
    typed_name = unique("Typed-As-Name")
    echoed = unique("Echo-Me")
    forged = unique("Forged-Bearer")
    email = new_email()
    secrets: dict[str, str] = {
        "server secret key": server_secret,
        "password": password,
        "new password": new_password,
        "password of a refused register": echoed,
        "a forged bearer token": forged,
        "a name typed at login": typed_name,
        **{f"wrong password {i}": w for i, w in enumerate(wrong)},
    }
    env_log = {"JOBLINE_LOG_LEVEL": "DEBUG"}
    with hardened_stack({**stack_env, **env_log}, logdir, server_secret) as stack:
        base = stack.base
        with httpx.Client(base_url=base, timeout=30) as c:
            r = c.post("/api/v1/auth/register", json={"email": email, "password": password})
            assert r.status_code == 201, r.text
            r = c.post(
                "/api/v1/auth/register", json={"email": "bad", "password": echoed, "x": echoed}
            )
            assert r.status_code == 422 and echoed not in r.text, r.text
            for w in wrong:
                r = c.post(
                    "/api/v1/auth/jwt/login",
                    data={"username": email, "password": w},
                    headers={"X-Forwarded-For": address()},
                )
                assert r.status_code == 400, r.text
            r = c.post(
                "/api/v1/auth/jwt/login",
                data={"username": typed_name, "password": password},
                headers={"X-Forwarded-For": address()},
            )
            assert r.status_code == 400, r.text
            r = c.post(
                "/api/v1/auth/jwt/login",
                data={"username": email, "password": password},
                headers={"X-Forwarded-For": address()},
            )
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
            secrets["bearer token"] = token
            auth = {"Authorization": f"Bearer {token}"}
            r = c.get("/api/v1/jobs", headers={"Authorization": f"Bearer {forged}"})
            assert r.status_code == 401 and forged not in r.text
            r = c.post(
                "/api/v1/jobs",
                json={"type": "hostile.echo", "payload": {"note": "hello"}},
                headers=auth,
            )
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]

        with httpx.Client(base_url=base, timeout=30) as browser:
            r = browser.post(
                "/api/v1/auth/cookie/login",
                data={"username": email, "password": password},
                headers={"X-Forwarded-For": address()},
            )
            assert r.status_code == 204, r.text
            cookie = browser.cookies["jobline_auth"]
            secrets["session cookie"] = cookie
            assert follow(base, {"jobline_auth": cookie}, job_id)[-1] == "succeeded"
            r = browser.patch(
                "/api/v1/users/me",
                json={"password": new_password, "current_password": password},
            )
            assert r.status_code == 200, r.text
            r = browser.post(
                "/api/v1/auth/jwt/login",
                data={"username": email, "password": new_password},
                headers={"X-Forwarded-For": address()},
            )
            assert r.status_code == 200, r.text
            secrets["second bearer token"] = r.json()["access_token"]
            assert browser.post("/api/v1/auth/cookie/logout").status_code == 204

        # The audit writer flushes every JOBLINE_AUDIT_FLUSH_SECONDS.
        deadline = time.monotonic() + AUDIT_WAIT_SECONDS
        while "/api/v1/auth/cookie/logout" not in db_dump(stack.env, ["audit_log"]):
            assert time.monotonic() < deadline, "the audit log never recorded the logout"
            time.sleep(0.2)
        own_logs = [stack.server.log, stack.worker.log]

    found = []
    logs = sorted(p for p in logdir.iterdir() if p.is_file())
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts["database"] = db_dump(
        stack.env,
        ["audit_log", "jobs", "job_events", "job_dispatch", "login_failures", "revoked_sessions"],
    )
    texts["check-config"] = check_config_output(stack.env)
    texts["unreachable database"] = unreachable_database_output(stack.env)
    for where, text in texts.items():
        for name, value in secrets.items():
            if value in text:
                found.append(f"{name} in {where}")
    assert not found, found
    # Nothing JWT-shaped at all in this server's and worker's logs, whatever token it is.
    for log in own_logs:
        text = log.read_text(errors="replace")
        assert "eyJ" not in text, log
        assert "DEBUG" in text, "the processes were meant to log at DEBUG"
    # Tortoise's DEBUG lines of queries are there, with their values hidden (they held the
    # name typed at login before jobline.logging.HideSqlParameters).
    server_log = own_logs[0].read_text(errors="replace")
    assert "FROM `users`" in server_log and "[parameters hidden]" in server_log
    print(f"searched {len(logs)} log files, 6 tables, check-config: {len(secrets)} secrets absent")


def check_config_output(env: dict[str, str]) -> str:
    """check-config with every secret setting set to a value of its own; they stay masked."""
    secrets = {
        "JOBLINE_DATABASE_URL": f"mysql://jobline:{unique('DbPw')}@127.0.0.1:3306/x",
        "JOBLINE_BROKER_URL": f"amqp://jobline:{unique('MqPw')}@127.0.0.1:5672/x",
        "JOBLINE_FLOWER_BASIC_AUTH": f"ops:{unique('FlowerPw')}",
        "JOBLINE_FLOWER_BROKER_API": f"http://ops:{unique('ApiPw')}@127.0.0.1:15672/api",
        "JOBLINE_SECRET_KEY": unique("SecretKey") + "k" * 20,
    }
    done = subprocess.run(
        [JOBLINE, "check-config"],
        cwd=REPO,
        env={**env, **secrets},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "secret_key: ***" in out, out
    for name, value in secrets.items():
        secret = value.split(":", 2)[-1].split("@")[0] if "://" in value else value
        secret = secret.split(":")[-1]
        assert secret not in out, (name, out)
    return out


def unreachable_database_output(env: dict[str, str]) -> str:
    password = unique("UnreachablePw")
    done = subprocess.run(
        [JOBLINE, "migrate"],
        cwd=REPO,
        env={**env, "JOBLINE_DATABASE_URL": f"mysql://jobline:{password}@127.0.0.1:1/x"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert password not in out, out
    return out


def test_error_bodies_never_carry_a_credential(
    migrated: Settings, stack_env: dict[str, str], logdir: Path
) -> None:
    """Refusals name what is wrong, never the token, cookie or password that was sent."""
    secret = unique("server-secret") + "y" * 20
    with hardened_stack(stack_env, logdir, secret) as stack:
        base = stack.base
        token = unique("Token")
        answers: list[httpx.Response] = [
            httpx.get(f"{base}/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}),
            httpx.get(f"{base}/api/v1/jobs", headers={"Cookie": f"jobline_auth={token}"}),
            httpx.get(f"{base}/api/v1/stream", headers={"Authorization": f"Basic {token}"}),
            httpx.post(
                f"{base}/api/v1/auth/jwt/login",
                data={"username": token, "password": token},
                headers={"X-Forwarded-For": address()},
            ),
            httpx.post(f"{base}/api/v1/auth/register", json={"password": token}),
            httpx.patch(f"{base}/api/v1/users/me", json={"password": token}),
        ]
        for r in answers:
            assert r.status_code in (400, 401, 422), r.text
            assert token not in r.text, r.text
            assert secret not in r.text
            body: Any = r.json()
            assert json.dumps(body)
