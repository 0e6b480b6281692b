"""What a newcomer following the README tripped on (issue 12, item 8), tried again for real.

Against a real server on MariaDB and RabbitMQ: a misspelt payload field is refused naming
it (and a model can opt out); `jobline submit` finds the API on JOBLINE_API_PORT as
`jobline dev` does, names the URL it could not reach, and prints each refused field with
its reason. `jobline dev` and `check-config` with a syntax error in tasks/ print one line
and exit 2; a `jobline dev` run leaves no `control/` folder behind and says how to get a
superuser, and the command it shows makes one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.dev_helpers import (
    clean_env,
    login,
    project_dir,
    start_dev,
    wait_final,
)
from tests.support import JOBLINE, PASSWORD, REPO, free_port, start_server, start_worker

pytestmark = pytest.mark.integration

PAYLOAD_QUEUES = REPO / "tests" / "payload_queues.yaml"
TIMEOUT = 120


def register(base: str) -> tuple[httpx.Client, str]:
    """A new account on a live server: a client sending its token, and the token."""
    import uuid

    email = f"newcomer-{uuid.uuid4().hex[:10]}@example.com"
    r = httpx.post(
        f"{base}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=30
    )
    assert r.status_code == 201, r.text
    client = login(base, email, PASSWORD)
    token = client.headers["Authorization"].split(" ", 1)[1]
    return client, token


def jobline(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`jobline ARGS` with exactly these JOBLINE_ variables, in `cwd` (no .env but its own)."""
    return subprocess.run(
        [JOBLINE, *args],
        cwd=cwd,
        env=clean_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


# ----------------------------------------------------------------- unknown payload fields


def test_a_misspelt_payload_field_is_refused_naming_it(live_server: str) -> None:
    client, _ = register(live_server)
    r = client.post(
        "/api/v1/jobs",
        json={"type": "music.transcode", "payload": {"source": "a.wav", "bitrate": 192}},
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "INVALID_PAYLOAD"
    assert "unknown field(s) bitrate" in detail["message"]
    (error,) = detail["errors"]
    assert (error["loc"], error["type"]) == (["bitrate"], "extra_forbidden")
    # Nothing was stored: the refused job is nowhere.
    assert client.get("/api/v1/jobs").json()["items"] == []
    # The document says so too: the payload's schema is closed.
    (transcode,) = [
        t for t in client.get("/api/v1/job-types").json() if t["name"] == "music.transcode"
    ]
    assert transcode["payload_schema"]["additionalProperties"] is False


@pytest.fixture(scope="module")
def payload_stack(stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    """An API and a worker on tests/payload_queues.yaml: a strict model and two opted out."""
    env = {**stack_env, "JOBLINE_QUEUES_FILE": str(PAYLOAD_QUEUES)}
    server, base = start_server(env, logdir)
    try:
        worker = start_worker("payloads", env, logdir)
    except Exception:
        server.stop()
        raise
    yield base
    worker.stop()
    server.stop()


def test_a_model_that_sets_extra_opts_out(payload_stack: str) -> None:
    client, _ = register(payload_stack)

    def submit(kind: str, payload: dict[str, Any]) -> httpx.Response:
        return client.post("/api/v1/jobs", json={"type": f"payloads.{kind}", "payload": payload})

    nested = submit("resize", {"source": "a", "size": {"width": 2, "height": 3, "depth": 4}})
    assert nested.status_code == 422, nested.text
    assert "unknown field(s) size.depth" in nested.json()["detail"]["message"]
    ok = submit("resize", {"source": "a", "size": {"width": 2, "height": 3}})
    assert ok.status_code == 202, ok.text
    assert wait_final(client, ok.json()["id"])["result"] == {"area": 6}

    kept = submit("tag", {"source": "a", "colour": "red"})
    assert kept.status_code == 202, kept.text
    assert kept.json()["payload"] == {"source": "a", "colour": "red"}
    assert wait_final(client, kept.json()["id"])["result"] == {"source": "a", "colour": "red"}

    dropped = submit("legacy", {"source": "a", "colour": "red"})
    assert dropped.status_code == 202, dropped.text
    assert dropped.json()["payload"] == {"source": "a"}
    assert wait_final(client, dropped.json()["id"])["result"] == {"source": "a"}

    schemas = {t["name"]: t["payload_schema"] for t in client.get("/api/v1/job-types").json()}
    assert schemas["payloads.resize"]["additionalProperties"] is False
    assert schemas["payloads.tag"]["additionalProperties"] is True
    assert "additionalProperties" not in schemas["payloads.legacy"]


# ------------------------------------------------------------------- jobline submit


def test_submit_finds_the_api_where_jobline_dev_puts_it(live_server: str, tmp_path: Path) -> None:
    _, token = register(live_server)
    port = live_server.rsplit(":", 1)[1]
    args = ["submit", "music.transcode", "--payload", '{"source": "port.wav", "chunks": 1}']
    # JOBLINE_API_PORT from the environment, as `jobline dev` reads it.
    done = jobline(args, {"JOBLINE_API_PORT": port, "JOBLINE_TOKEN": token}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["type"] == "music.transcode"
    # ... and from .env in the working directory, as `jobline dev` reads it too.
    (tmp_path / ".env").write_text(f"JOBLINE_API_PORT={port}\n")
    done = jobline(args, {"JOBLINE_TOKEN": token}, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_unreachable_api_is_named(tmp_path: Path) -> None:
    nobody = free_port()
    done = jobline(
        ["submit", "music.transcode", "--payload", '{"source": "a"}'],
        {"JOBLINE_API_PORT": str(nobody), "JOBLINE_TOKEN": "t"},
        tmp_path,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: the API at http://127.0.0.1:{nobody} is unreachable: "), line
    assert "JOBLINE_API_URL" in line
    # An explicit URL wins, and is the one named.
    done = jobline(
        ["submit", "music.transcode", "--api-url", f"http://127.0.0.1:{nobody}/"],
        {"JOBLINE_API_PORT": "1", "JOBLINE_TOKEN": "t"},
        tmp_path,
    )
    assert done.returncode == 3 and f"http://127.0.0.1:{nobody} is unreachable" in done.stderr


def test_submit_prints_each_refused_field_and_why(live_server: str, tmp_path: Path) -> None:
    _, token = register(live_server)
    done = jobline(
        [
            "submit",
            "music.transcode",
            "--payload",
            '{"source": "a.wav", "bitrate": 192, "chunks": "ten"}',
        ],
        {"JOBLINE_API_URL": live_server, "JOBLINE_TOKEN": token},
        tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stderr
    assert "error: the payload does not match the job type's model" in out
    assert "  bitrate: Extra inputs are not permitted" in out
    assert "  chunks: Input should be a valid integer" in out


# ------------------------------------------------------------------ a broken tasks/


def test_a_syntax_error_in_tasks_is_one_line_and_exit_2(tmp_path: Path) -> None:
    workdir = project_dir(tmp_path / "project")
    video = workdir / "tasks" / "video.py"
    lines = video.read_text().splitlines()
    video.write_text("\n".join([*lines, "def broken(:", "    pass", ""]))
    for args in (["check-config"], ["dev", f"--port={free_port()}"]):
        done = jobline(args, {}, workdir)
        assert done.returncode == 2, (args, done.stdout + done.stderr)
        assert "Traceback" not in done.stdout + done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: ") and "cannot be imported" in line, line
        assert f"invalid syntax (tasks/video.py, line {len(lines) + 1})" in line, line


# ------------------------------------------------------------------------ jobline dev


def test_dev_keeps_its_broker_under_var_and_shows_how_to_get_a_superuser(
    tmp_path: Path,
) -> None:
    workdir = project_dir(tmp_path / "project")
    dev = start_dev(workdir, {"JOBLINE_API_PORT": str(free_port())})
    try:
        banner = dev.banner()
        out = dev.output()
        (line,) = [line for line in out.splitlines() if line.startswith("  superuser ")]
        shown = line.split(" jobs: ", 1)[1]
        assert shown.endswith(" users create admin@example.com --superuser"), line
        demo = login(banner.base, banner.email, banner.password)
        assert demo.get("/api/v1/audit").status_code == 403
        # The line as shown, run where jobline dev runs (its settings, its database), with
        # the password on stdin.
        made = subprocess.run(
            ["bash", "-c", shown],
            cwd=workdir,
            env=clean_env({}),
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        admin = login(banner.base, "admin@example.com", PASSWORD)
        assert admin.get("/api/v1/audit").status_code == 200
        assert admin.get("/api/v1/stream/stats").status_code == 200
    finally:
        code = dev.interrupt()
    assert code == 0, dev.output()[-3000:]
    # kombu's file broker keeps its exchange tables in ./control unless told otherwise.
    assert not (workdir / "control").exists()
    assert (workdir / "var" / "broker" / "control").is_dir()
    assert list((workdir / "var" / "broker" / "control").iterdir()), "the tables are there"
