"""The `jobline` command, run as a real subprocess."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import textwrap
import uuid
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.support import JOBLINE, PASSWORD, REPO

pytestmark = pytest.mark.integration

SECRET = "cli-test-secret-" + "s" * 40
TIMEOUT = 120


def jobline(
    *args: str, env: Mapping[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `jobline ARGS` from the repository root with exactly these JOBLINE_ variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_")}
    return subprocess.run(
        [JOBLINE, *args],
        cwd=REPO,
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    """A development configuration on a fresh SQLite file."""
    return {
        "JOBLINE_ENV": "development",
        "JOBLINE_DATABASE_URL": f"sqlite://{tmp_path / 'jobline.sqlite3'}",
        "JOBLINE_VAR_DIR": str(tmp_path / "var"),
        "JOBLINE_SECRET_KEY": SECRET,
        "JOBLINE_QUEUES_FILE": str(REPO / "queues.yaml"),
    }


def test_check_config_accepts_the_shipped_file(dev_env: dict[str, str]) -> None:
    done = jobline("check-config", env=dev_env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "music: queue=music" in out and "video: queue=video" in out
    assert "music.transcode: function tasks.music:transcode" in out
    assert "video.render: task_name video.render (send_task)" in out
    assert SECRET not in out and "secret_key: ***" in out


def test_check_config_refuses_a_bad_file_naming_file_key_and_reason(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "queues.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            domains:
              music:
                queue: music
                job_types:
                  transcode: {function: tasks.music:transcode, speed: fast}
            """
        )
    )
    done = jobline("check-config", env={**dev_env, "JOBLINE_QUEUES_FILE": str(bad)})
    assert done.returncode != 0
    assert f"{bad}: domains.music.job_types.transcode.speed: Extra inputs are not permitted" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr

    bad.write_text("domains: {music: {queue: music, job_types: {a: {function: tasks.nope:x}}}}\n")
    done = jobline("check-config", env={**dev_env, "JOBLINE_QUEUES_FILE": str(bad)})
    assert done.returncode != 0
    assert f"{bad}: domains.music.job_types.a: function 'tasks.nope:x' cannot be imported" in (
        done.stderr
    )


def test_migrate_applies_once_on_a_fresh_sqlite_file(
    dev_env: dict[str, str], tmp_path: Path
) -> None:
    first = jobline("migrate", env=dev_env)
    assert first.returncode == 0, first.stderr
    committed = sorted(p.name for p in (REPO / "migrations" / "sqlite" / "models").glob("*.py"))
    assert f"applied {len(committed)} migration(s)" in first.stdout, first.stdout
    assert all(name in first.stdout for name in committed)
    applied = len(committed)
    with sqlite3.connect(tmp_path / "jobline.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        versions = db.execute("SELECT COUNT(*) FROM aerich").fetchone()[0]
    assert {"jobs", "job_events", "users", "aerich"} <= tables
    assert versions == applied
    second = jobline("migrate", env=dev_env)
    assert second.returncode == 0, second.stderr
    assert "applied 0 migration(s)" in second.stdout


async def test_users_create_reads_the_password_from_stdin_and_the_account_logs_in(
    stack_env: dict[str, str], client: httpx.AsyncClient
) -> None:
    email = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    done = jobline("users", "create", email, env=stack_env, stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert f"created user {email}" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr
    r = await client.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["email"] == email and me.json()["is_superuser"] is False
    wrong = await client.post(
        "/api/v1/auth/jwt/login", data={"username": email, "password": "nope"}
    )
    assert wrong.status_code == 400

    again = jobline("users", "create", email, env=stack_env, stdin=PASSWORD + "\n")
    assert again.returncode != 0 and "already exists" in again.stderr


async def test_users_create_superuser(stack_env: dict[str, str], client: httpx.AsyncClient) -> None:
    email = f"cli-root-{uuid.uuid4().hex[:8]}@example.com"
    done = jobline("users", "create", email, "--superuser", env=stack_env, stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    r = await client.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["is_superuser"] is True


def test_users_create_without_a_password_fails(stack_env: dict[str, str]) -> None:
    done = jobline("users", "create", "nobody@example.com", env=stack_env, stdin="\n")
    assert done.returncode != 0
    assert "password" in done.stderr
