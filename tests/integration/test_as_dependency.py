"""jobline as a library a project installs: its own queues.yaml, tasks/ and .env.

A scratch project outside the repository runs the README's "jobline as a dependency"
commands as they stand (the path to jobline pointing at a copy of this work tree): a
virtualenv, `pip install` of jobline and its dependencies (a built wheel, not an editable
checkout: the migrations and gunicorn's configuration must come with the package), then
`jobline check-config` and `jobline migrate` from its own directory. From there too:
`jobline dev` runs its domain; jobline.testing.LocalStack (migrate, serve, a worker, on
SQLite and the file broker) runs its job; the API program `jobline deploy supervisor`
writes for it (gunicorn with the package's own configuration) serves. And a payload model
changes while jobs wait in the queue, as a deploy does: a job the new model refuses ends
`failed` with INVALID_PAYLOAD (and again when retried), a job whose model only gained a
field with a default runs.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.dev_helpers import BANNER, DevRun, login, wait_final
from tests.support import REPO, copy_work_tree, free_port

pytestmark = pytest.mark.integration

INSTALL_SECONDS = 900  # a virtualenv and every dependency, as a new user installs them
# Where the README's install command names jobline's checkout.
README_SOURCE = "/path/to/jobline"
RUN_SECONDS = 300

QUEUES = """\
domains:
  billing:
    queue: billing
    pool: threads
    concurrency: 2
    job_types:
      invoice: {function: tasks.billing:invoice}
      refund: {function: tasks.billing:refund}
"""

TASKS_V1 = '''\
"""Billing jobs, first release."""

from pydantic import BaseModel, Field

from jobline import JobContext, job


class Invoice(BaseModel):
    customer: str
    amount_cents: int = Field(gt=0)


@job(payload=Invoice)
def invoice(ctx: JobContext, req: Invoice) -> dict[str, object]:
    ctx.progress(100, "sent")
    return {"customer": req.customer, "total": req.amount_cents}


class Refund(BaseModel):
    invoice_id: str


@job(payload=Refund)
def refund(ctx: JobContext, req: Refund) -> dict[str, object]:
    return {"refunded": req.invoice_id}
'''

# The next release: invoice needs a currency (no default), refund gained a defaulted field.
TASKS_V2 = (
    TASKS_V1.replace("first release", "second release")
    .replace(
        "    amount_cents: int = Field(gt=0)\n",
        "    amount_cents: int = Field(gt=0)\n    currency: str\n",
    )
    .replace("    invoice_id: str\n", '    invoice_id: str\n    reason: str = "customer request"\n')
    .replace(
        'return {"refunded": req.invoice_id}',
        'return {"refunded": req.invoice_id, "reason": req.reason}',
    )
)

# Run by the project's own Python, from its directory: what a project's test would do.
DRIVER = """\
import json, pathlib, sys

import jobline
from jobline.testing import LocalStack

out = {"jobline": jobline.__file__}
with LocalStack(".") as stack:
    out["first"] = stack.run("billing.invoice", {"customer": "acme", "amount_cents": 1200})
    out["first_events"] = [e["type"] for e in stack.events(out["first"]["id"])]
    # A deploy: workers stop, jobs keep arriving and wait in the queue, the code changes.
    stack.stop_worker("billing")
    waiting = [
        stack.client.submit("billing.invoice", {"customer": "acme", "amount_cents": 500}),
        stack.client.submit("billing.refund", {"invoice_id": "inv-1"}),
    ]
    out["waiting"] = [stack.client.get(job["id"])["state"] for job in waiting]
    pathlib.Path("tasks/billing.py").write_text(sys.argv[1])
    stack.start_worker("billing")
    out["after"] = [stack.wait(job["id"]) for job in waiting]
    # A retry runs the same stored payload: refused again.
    answer = stack.client.http.post(f"/api/v1/jobs/{waiting[0]['id']}/retry")
    answer.raise_for_status()
    assert answer.json()["attempt"] == 2, answer.json()
    out["retried"] = stack.wait(waiting[0]["id"])
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Project:
    root: Path
    python: Path
    jobline: Path
    env: dict[str, str]
    installed: str  # what the README's commands printed

    def run(self, *argv: str | Path, timeout: float = RUN_SECONDS) -> str:
        # runs: venv:jobline, venv:python (the scratch project's own virtualenv)
        done = subprocess.run(
            [str(a) for a in argv],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"{argv}\n--- out\n{done.stdout}\n--- err\n{done.stderr}"
        return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """A project of its own, outside the repository, set up as the README says."""
    base = tmp_path_factory.mktemp("dependency")
    # From a copy: building in place would leave build/ in the work tree.
    source = copy_work_tree(base / "jobline-src")
    root = base / "billing-app"
    (root / "tasks").mkdir(parents=True)
    (root / "queues.yaml").write_text(QUEUES)
    (root / "tasks" / "__init__.py").write_text("")
    (root / "tasks" / "billing.py").write_text(TASKS_V1)
    (root / ".env").write_text("JOBLINE_DATABASE_URL=sqlite://var/billing.sqlite3\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_") and k != "PYTHONPATH"
    }
    commands = readme_block("dependency")
    assert README_SOURCE in commands
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands.replace(README_SOURCE, str(source))],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
    )
    assert done.returncode == 0, f"--- out\n{done.stdout}\n--- err\n{done.stderr}"
    venv = root / ".venv" / "bin"
    yield Project(root, venv / "python", venv / "jobline", env, done.stdout)


def readme_block(name: str) -> str:
    """The text of the README's code block marked `<!-- test: NAME -->`."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- test: {name} -->\n```\w*\n(.*?)```", text, re.S)
    assert found, name
    return found.group(1)


def test_the_installed_package_is_not_the_checkout(project: Project) -> None:
    venv = str(project.root / ".venv")
    where = project.run(project.python, "-c", "import jobline; print(jobline.__file__)")
    assert where.startswith(venv), where
    migrations = project.run(
        project.python,
        "-c",
        "from jobline.config import Settings; print(Settings().migrations_dir)",
    ).strip()
    assert migrations.startswith(venv), migrations
    assert sorted(p.name for p in Path(migrations, "sqlite", "models").glob("*.py")) == sorted(
        p.name for p in (REPO / "migrations" / "sqlite" / "models").glob("*.py")
    )


def test_check_config_and_migrate_run_from_the_project(project: Project) -> None:
    out = project.installed
    lines = out.splitlines()
    first = lines.index("queues (queues.yaml):")
    assert "billing: queue=billing pool=threads concurrency=2" in lines[first + 1]
    assert "billing.invoice: function tasks.billing:invoice (imports)" in out
    assert "  database_url: sqlite://var/billing.sqlite3" in lines, "read from the project's .env"
    committed = len(list((REPO / "migrations" / "sqlite" / "models").glob("*.py")))
    assert f"applied {committed} migration(s)" in out
    assert (project.root / "var" / "billing.sqlite3").exists()
    # An upgrade runs it again: only what is missing is applied.
    assert "applied 0 migration(s)" in project.run(project.jobline, "migrate")


def test_a_job_runs_and_a_payload_model_change_fails_queued_jobs_cleanly(
    project: Project,
) -> None:
    out = json.loads(project.run(project.python, "-c", DRIVER, TASKS_V2).splitlines()[-1])
    assert out["jobline"].startswith(str(project.root / ".venv")), out["jobline"]
    first = out["first"]
    assert first["state"] == "succeeded", first
    assert first["result"] == {"customer": "acme", "total": 1200}
    assert out["first_events"] == ["submitted", "queued", "started", "progress", "succeeded"]
    # Not picked up by anyone: no worker was running (pending until the broker took it).
    assert set(out["waiting"]) <= {"pending", "queued"}, out["waiting"]
    invoice, refund = out["after"]
    assert invoice["state"] == "failed", invoice
    assert invoice["error"]["code"] == "INVALID_PAYLOAD"
    assert "currency" in invoice["error"]["message"]
    assert refund["state"] == "succeeded", refund
    assert refund["result"] == {"refunded": "inv-1", "reason": "customer request"}
    retried = out["retried"]
    assert (retried["attempt"], retried["state"]) == (2, "failed"), retried
    assert retried["error"]["code"] == "INVALID_PAYLOAD"


def test_the_generated_supervisor_api_program_runs_from_the_project(project: Project) -> None:
    project.run(project.jobline, "migrate")
    project.run(project.jobline, "deploy", "supervisor", "--root", str(project.root))
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(project.root / "deploy" / "supervisor" / "jobline.conf")
    assert "--domain=billing --pool=threads" in conf["program:jobline-worker-billing"]["command"]
    api = conf["program:jobline-api"]
    assert api["directory"] == str(project.root)
    # gunicorn with the package's own config and app factory: no checkout's files needed.
    command = shlex.split(api["command"])
    assert command[1:] == ["-c", "python:jobline.gunicorn_conf", "jobline.app:create_app()"]
    port = free_port()
    log = project.root / "gunicorn.log"
    with log.open("wb") as out:
        # runs: venv:gunicorn (the command the generated supervisor program names)
        server = subprocess.Popen(
            [str(part) for part in command],
            cwd=project.root,
            env={**project.env, "JOBLINE_API_PORT": str(port), "JOBLINE_API_WORKERS": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + RUN_SECONDS
        while True:
            assert server.poll() is None, log.read_text()
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
                continue
            break
        assert ready.status_code == 200, ready.text
        types = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=5).json()
        assert "/api/v1/jobs" in types["paths"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(RUN_SECONDS)


def test_jobline_dev_runs_the_projects_own_domain(project: Project) -> None:
    port = free_port()
    log = project.root / "dev.log"
    with log.open("wb") as out:
        # runs: venv:jobline (the scratch project's own virtualenv)
        popen = subprocess.Popen(
            [str(project.jobline), "dev", f"--port={port}"],
            cwd=project.root,
            env=project.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dev = DevRun(popen, log, project.root)
    try:
        dev.wait_for(BANNER)
        dev.wait_for("workers       billing (threads x2, queue billing)", timeout=10)
        demo = json.loads((project.root / "var" / "demo-account.json").read_text())
        client = login(f"http://127.0.0.1:{port}", demo["email"], demo["password"])
        with client:
            # refund: its payload is valid for both releases of the module above.
            r = client.post(
                "/api/v1/jobs", json={"type": "billing.refund", "payload": {"invoice_id": "x"}}
            )
            assert r.status_code == 202, r.text
            job = wait_final(client, r.json()["id"])
        assert job["state"] == "succeeded" and job["result"]["refunded"] == "x", job
    except BaseException:
        dev.kill()
        raise
    assert dev.interrupt() == 0, dev.output()[-3000:]
