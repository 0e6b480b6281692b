"""The README, tried as a new user would: every command in it is run here.

Each code block a reader would run carries a `<!-- test: NAME -->` marker, and a test below
runs that block's own text: the first command (`scripts/dev`) in a copy of the work tree
with a fresh .venv, the quick start's lines against the `jobline dev` it started, the new
domain exactly as the README adds it, the API and client examples, and the production
commands on MariaDB and RabbitMQ. A command block without a marker, or a marker no test
knows, fails the suite; so do the tables when they disagree with the code.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import (
    AMQP_ADMIN_URL,
    MYSQL_ADMIN_URL,
    RUN_ID,
    _admin_connection,
    _mysql_parts,
)
from tests.integration.dev_helpers import (
    DevRun,
    alive,
    clean_env,
    descendants,
    login,
    processes_in,
    project_dir,
    wait_final,
)
from tests.support import PASSWORD, REPO, add_vhost, copy_work_tree, drop_vhost, free_port

pytestmark = pytest.mark.integration

README = REPO / "README.md"
README_BASE = "http://127.0.0.1:8000"
# The first run creates .venv and installs every dependency.
FIRST_RUN_SECONDS = 900.0
COMMAND_SECONDS = 300.0
# A block in one of these is commands a reader runs: each must be run by a test here.
COMMANDS = {"sh", "bash", "shell", "console"}
MARKED = {
    "run",
    "test",
    "follow",
    "domain-yaml",
    "domain-python",
    "domain-try",
    "api",
    "resume",
    "browser",
    "client",
    "prod-setup",
    "prod-run",
    "prod-supervisor",
    "testing-unit",
    "testing-stack",
    "dependency",  # run by test_as_dependency.py
}


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README and the marker before it."""

    name: str | None
    lang: str
    text: str
    line: int


def readme_blocks() -> list[Block]:
    text = README.read_text()
    found = []
    pattern = re.compile(r"(?:<!-- test: ([\w-]+) -->\n)?```(\w*)\n(.*?)```", re.S)
    for match in pattern.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(match.group(1), match.group(2), match.group(3), line))
    return found


def block(name: str) -> str:
    (only,) = [b.text for b in readme_blocks() if b.name == name]
    return only


def at(port: int, text: str) -> str:
    """The README's commands aimed at the test's port instead of 8000."""
    return text.replace(README_BASE, f"http://127.0.0.1:{port}")


def bash(
    script: str, cwd: Path, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\n--- out\n{done.stdout}\n--- err\n{done.stderr}"
    return done.stdout


def json_values(text: str) -> list[Any]:
    """Every JSON value printed one after the other (curl prints no newline between them)."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        values.append(value)
    return values


def sse_events(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")
    ]


# ---------------------------------------------------------------- the README itself


def test_every_command_in_the_readme_is_run_by_a_test() -> None:
    blocks = readme_blocks()
    unmarked = [b for b in blocks if b.lang in COMMANDS - {"console"} and b.name is None]
    assert not unmarked, f"README commands no test runs (add a marker and a test): {unmarked}"
    # A console block is output; a command it shows ("$ ...") must be one a test runs.
    tested = {line for b in blocks if b.name for line in b.text.splitlines()}
    for b in blocks:
        if b.lang == "console":
            shown = re.findall(r"^\$ (.*)$", b.text, re.M)
            assert set(shown) <= tested, f"line {b.line}: {set(shown) - tested} is run by no test"
    names = [b.name for b in blocks if b.name]
    assert sorted(names) == sorted(MARKED), "each marker once, and every one known here"


def test_the_first_screen_holds_the_two_commands_and_ci_runs_the_second() -> None:
    first_screen = README.read_text().split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)```", first_screen, re.S)
    assert [c.strip() for c in commands] == ["scripts/dev", "scripts/test"]
    assert first_screen.count("\n") < 40, "the two commands fit on one screen"
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^exec scripts/test\s*$", ci, re.M), ci
    for script in ("scripts/dev", "scripts/test"):
        assert os.access(REPO / script, os.X_OK), script


def sample_line(prefix: str) -> str:
    """The line of the README's sample `scripts/dev` output that starts with `prefix`."""
    (line,) = [line for line in README.read_text().splitlines() if line.startswith(prefix)]
    return line


def test_the_sample_output_counts_the_migrations_there_are() -> None:
    """A fresh database gets every migration; the sample says how many (it said 3 of 5)."""
    line = sample_line("dev: database ")
    shown = re.search(r"\((\d+) migration\(s\) applied\)$", line)
    assert shown, line
    for dialect in ("sqlite", "mysql"):
        migrations = list((REPO / "migrations" / dialect / "models").glob("[0-9]*_*.py"))
        assert int(shown.group(1)) == len(migrations), (dialect, line)


def _table(heading: str) -> list[list[str]]:
    section = README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]]


def shape(path: str) -> str:
    """A route with its parameters unnamed: /jobs/{id} and /jobs/{job_id} are one route."""
    return re.sub(r"{\w+}", "{}", path)


def test_the_api_table_lists_every_route() -> None:
    from jobline.app import create_app

    paths = create_app().openapi()["paths"]
    routes = {
        f"{method.upper()} {shape(path.removeprefix('/api/v1'))}"
        for path, operations in paths.items()
        for method in operations
    }
    listed = set()
    for row in _table("The API at a glance"):
        for method, path in re.findall(r"`(GET|POST|PATCH|DELETE|PUT) ([^`]+)`", row[0]):
            listed.add(f"{method} {shape(path)}")
    assert listed == routes, f"missing: {sorted(routes - listed)}; gone: {sorted(listed - routes)}"


def test_the_cli_table_lists_every_command() -> None:
    import typer.main

    from jobline.cli import app

    group = typer.main.get_command(app)
    commands = set()
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        subs = getattr(command, "commands", None)
        commands |= {f"{name} {sub}" for sub in subs} if subs else {name}
    listed = {
        command_words(text)
        for row in _table("The command line")
        for text in re.findall(r"`jobline ([^`]+)`", row[0])
    }
    assert listed == commands, (
        f"missing: {sorted(commands - listed)}; not commands: {sorted(listed - commands)}"
    )


def command_words(text: str) -> str:
    """`users create EMAIL [--superuser]` -> `users create`: the words before any argument."""
    words = []
    for word in text.split():
        if word.startswith(("-", "[")) or word.isupper():
            break
        words.append(word)
    return " ".join(words)


def test_the_testing_examples_pass_as_a_projects_own_tests(tmp_path: Path) -> None:
    """ "Testing your jobs": both examples, as test files of a project, run by pytest."""
    project = project_dir(tmp_path / "project")
    (project / "test_unit_example.py").write_text(block("testing-unit"))
    (project / "test_stack_example.py").write_text(block("testing-stack"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore"],
        cwd=project,
        env=clean_env({}),
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout, done.stdout


# ------------------------------------------------------- a new user's first run


def add_the_readme_domain(project: Path) -> None:
    """Do what "Add a domain and a job type" says: its YAML under domains:, its module."""
    snippet = block("domain-yaml")
    assert snippet.startswith("domains:\n")
    queues = project / "queues.yaml"
    before = yaml.safe_load(queues.read_text())
    queues.write_text(queues.read_text().rstrip("\n") + "\n" + snippet.split("\n", 1)[1])
    after = yaml.safe_load(queues.read_text())
    assert set(after["domains"]) == set(before["domains"]) | {"reports"}
    (project / "tasks" / "reports.py").write_text(block("domain-python"))


@dataclass
class FirstRun:
    dev: DevRun
    port: int
    token: str
    email: str
    password: str
    printed: list[str]
    env: dict[str, str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstRun]:
    """The README's first command, run in a copy of the work tree with no .venv yet."""
    project = copy_work_tree(tmp_path_factory.mktemp("clone"))
    add_the_readme_domain(project)
    port = free_port()
    env = clean_env({"JOBLINE_API_PORT": str(port)})
    log = project / "first-run.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            ["bash", "-c", block("run")],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = DevRun(popen, log, project)
    try:
        dev.wait_for("jobline dev is up", timeout=FIRST_RUN_SECONDS)
        banner = dev.banner()
        token = banner.commands[0].split("=", 1)[1]
        yield FirstRun(dev, port, token, banner.email, banner.password, banner.commands, env)
    except BaseException:
        dev.kill()
        raise
    tree = descendants(popen.pid)
    assert dev.interrupt() == 0, dev.output()[-3000:]
    assert not ({pid for pid in tree if alive(pid)} | processes_in(project))


def test_the_first_command_installs_and_runs_everything(first_run: FirstRun) -> None:
    out = first_run.dev.output()
    assert (first_run.dev.workdir / ".venv" / "bin" / "jobline").exists()
    assert "(created now;" in out
    for domain in ("music", "video", "reports"):
        assert f"{domain}@" in out, domain
    docs = httpx.get(f"{first_run.base}/docs", timeout=10)
    assert docs.status_code == 200
    # The sample output's lines that hold no secret are the ones printed.
    printed = out.splitlines()
    assert sample_line("dev: database ") in printed
    assert sample_line("  superuser ") in printed


def test_the_quick_start_lines_are_the_ones_jobline_dev_prints_and_they_work(
    first_run: FirstRun,
) -> None:
    readme_lines = block("follow").strip().splitlines()
    assert [at(first_run.port, line) for line in readme_lines] == first_run.printed[1:], (
        "the README's quick start must show what jobline dev prints"
    )
    out = ok(
        bash(
            at(first_run.port, block("follow")),
            first_run.dev.workdir,
            {**first_run.env, "TOKEN": first_run.token},
        )
    )
    events = sse_events(out)
    assert [e["type"] for e in events][:3] == ["submitted", "queued", "started"]
    assert events[-1]["type"] == "succeeded"
    assert events[-1]["data"]["result"]["output"] == "song.wav.ogg"


def test_the_new_domain_runs_as_the_readme_says(first_run: FirstRun) -> None:
    done = bash(
        at(first_run.port, block("domain-try")),
        first_run.dev.workdir,
        {
            **first_run.env,
            "TOKEN": first_run.token,
            "JOBLINE_API_URL": first_run.base,
        },
    )
    out = ok(done)
    assert "reports: queue=reports pool=threads concurrency=8" in out
    assert "reports.summarize: function tasks.reports:summarize (imports)" in out
    assert "succeeded" in out, out
    assert '"words": 3' in out or "'words': 3" in out, out


def test_the_api_examples(first_run: FirstRun) -> None:
    env = {
        **first_run.env,
        "JOBLINE_EMAIL": first_run.email,
        "JOBLINE_PASSWORD": first_run.password,
    }
    out = ok(bash(at(first_run.port, block("api")), first_run.dev.workdir, env))
    submitted, page, job_types = json_values(out)
    assert submitted["type"] == "video.thumbnail" and submitted["priority"] == 5
    assert {"items", "next_page"} <= set(page)
    assert all(job["state"] == "succeeded" for job in page["items"])
    assert "reports.summarize" in {t["name"] for t in job_types}

    again = ok(bash(at(first_run.port, block("api")), first_run.dev.workdir, env))
    assert json_values(again)[0]["id"] == submitted["id"], "Idempotency-Key: the first job"


def test_a_stream_resumes_after_last_event_id(first_run: FirstRun) -> None:
    client = login(first_run.base, first_run.email, first_run.password)
    r = client.post("/api/v1/jobs", json={"type": "music.transcode", "payload": {"source": "a"}})
    job = wait_final(client, r.json()["id"])
    env = {**first_run.env, "TOKEN": first_run.token, "JOB": job["id"]}
    out = ok(bash(at(first_run.port, block("resume")), first_run.dev.workdir, env))
    events = sse_events(out)
    assert [e["seq"] for e in events] == list(range(4, job["last_seq"] + 1))
    assert re.findall(r"^id: (\d+)$", out, re.M)[0] == "4"


def test_the_browser_snippet_endpoints_work_with_a_cookie(first_run: FirstRun) -> None:
    """What the EventSource snippet does, step by step, with the cookie it relies on."""
    snippet = block("browser")
    login_path = re.search(r'fetch\("([^"]+)"', snippet)
    stream_path = re.search(
        r"const url = `([^`]+)`;\nconst source = new EventSource\(url\)", snippet
    )
    assert login_path and stream_path
    assert 'fetch(url, { headers: { Accept: "application/json" } })' in snippet
    with httpx.Client(base_url=first_run.base, timeout=30) as browser:
        r = browser.post(
            login_path.group(1),
            data={"username": first_run.email, "password": first_run.password},
        )
        assert r.status_code in (200, 204), r.text
        assert browser.cookies, "the cookie backend sets a cookie"
        submitted = browser.post(
            "/api/v1/jobs", json={"type": "music.transcode", "payload": {"source": "b"}}
        )
        assert submitted.status_code == 202, submitted.text
        url = stream_path.group(1).replace("${jobId}", submitted.json()["id"])
        with browser.stream("GET", url) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            body = "".join(stream.iter_text())
        # The snippet's `error` handler: the same URL asked for JSON opens no stream.
        check = browser.get(url, headers={"Accept": "application/json"})
        assert check.status_code == 200, check.text
        assert check.json()["job"]["state"] == "succeeded"
    names = re.findall(r"^event: (\w+)", body, re.M)
    assert names[-1] == "succeeded" and "progress" in names, body
    for event in sse_events(body):
        assert {"seq", "job_id", "type", "attempt", "at", "data"} <= set(event)
    # Without the cookie: the refusal, as JSON with its code.
    refused = httpx.get(f"{first_run.base}{url}", headers={"Accept": "application/json"})
    assert refused.status_code == 401 and refused.json()["detail"]["code"] == "UNAUTHORIZED"


def test_the_python_client_example(first_run: FirstRun) -> None:
    script = first_run.dev.workdir / "client_example.py"
    script.write_text(at(first_run.port, block("client")))
    done = subprocess.run(
        [str(first_run.dev.workdir / ".venv" / "bin" / "python"), script.name],
        cwd=first_run.dev.workdir,
        env=first_run.env,
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
    )
    lines = ok(done).strip().splitlines()
    assert lines[0].startswith("1 submitted ")
    assert lines[-2].split()[1] == "succeeded"
    assert lines[-1] == str({"output": "song.wav.ogg", "bitrate_kbps": 128})


# ------------------------------------------------------------- production stack


@pytest.fixture(scope="module")
def private_stack() -> Iterator[tuple[str, str]]:
    """A database and a vhost of their own (the README's commands create an admin account)."""
    parts = _mysql_parts(MYSQL_ADMIN_URL)
    name = f"jobline_readme_{RUN_ID}"
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    broker = add_vhost(AMQP_ADMIN_URL, name)
    database = f"mysql://{parts['user']}:{parts['password']}@{parts['host']}:{parts['port']}/{name}"
    yield database, broker
    drop_vhost(AMQP_ADMIN_URL, name)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def test_the_production_commands(first_run: FirstRun, private_stack: tuple[str, str]) -> None:
    database, broker = private_stack
    project = first_run.dev.workdir
    setup = block("prod-setup")
    run_lines = [line for line in block("prod-run").splitlines() if line.strip()]
    readme_database = re.search(r"JOBLINE_DATABASE_URL=(\S+)", setup)
    readme_broker = re.search(r"JOBLINE_BROKER_URL=(\S+)", setup)
    assert readme_database and readme_broker
    setup = setup.replace(readme_database.group(1), database).replace(
        readme_broker.group(1), broker
    )
    api_port, flower_port = free_port(), free_port()
    env = clean_env({"JOBLINE_API_PORT": str(api_port), "JOBLINE_FLOWER_PORT": str(flower_port)})
    # The setup block, then its exports as the processes of the second block will see them.
    done = bash(setup + "\nenv -0 > setup.env\n", project, env, stdin=PASSWORD + "\n")
    out = ok(done)
    assert "ok" in out.splitlines() and "applied" in out and "created superuser admin@" in out
    exported = dict(
        item.split("=", 1)
        for item in (project / "setup.env").read_text().split("\0")
        if item.startswith("JOBLINE_")
    )
    assert exported["JOBLINE_ENV"] == "production"
    supervisor = (project / "deploy" / "supervisor" / "jobline.conf").read_text()
    for domain in ("music", "video", "reports"):
        assert f"[program:jobline-worker-{domain}]" in supervisor, supervisor
    assert "--domain=reports --pool=threads --concurrency=8" in supervisor
    assert f"directory={project}" in supervisor
    started: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for i, line in enumerate(run_lines):
            logs.append(project / f"prod-{i}.log")
            with logs[-1].open("wb") as log:
                started.append(
                    subprocess.Popen(
                        ["bash", "-c", f"exec {line}"],
                        cwd=project,
                        env={**env, **exported},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        base = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            dead = [(p.args, p.returncode) for p in started if p.poll() is not None]
            assert not dead and time.monotonic() < deadline, (
                dead,
                "\n".join(log.read_text()[-2000:] for log in logs),
            )
            time.sleep(0.5)
        for domain in ("music", "video"):
            wait_text(logs, f"{domain}@", " ready.")
        client = login(base, "admin@example.com", PASSWORD)
        for job_type, payload in [
            ("music.transcode", {"source": "prod.wav", "chunks": 2}),
            ("video.thumbnail", {"source": "prod.mp4"}),
        ]:
            r = client.post("/api/v1/jobs", json={"type": job_type, "payload": payload})
            assert r.status_code == 202, r.text
            assert wait_final(client, r.json()["id"])["state"] == "succeeded"
        flower = f"http://127.0.0.1:{flower_port}/"
        user, secret = exported["JOBLINE_FLOWER_BASIC_AUTH"].split(":", 1)
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            try:
                assert httpx.get(flower, timeout=5).status_code == 401
                assert httpx.get(flower, auth=(user, secret), timeout=5).status_code == 200
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
    finally:
        for popen in started:
            with_group(popen.pid, signal.SIGTERM)
        for popen in started:
            try:
                popen.wait(COMMAND_SECONDS)
            except subprocess.TimeoutExpired:
                with_group(popen.pid, signal.SIGKILL)
                popen.wait()


def wait_text(logs: list[Path], *texts: str) -> None:
    deadline = time.monotonic() + COMMAND_SECONDS
    while not any(all(t in log.read_text() for t in texts) for log in logs):
        assert time.monotonic() < deadline, f"no log says {texts}"
        time.sleep(0.2)


def with_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
