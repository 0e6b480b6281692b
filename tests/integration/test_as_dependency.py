"""jobline as a library a project installs: its own queues.yaml, tasks/ and .env.

A scratch project outside the repository gets a virtualenv with jobline installed from
the repository's path (a built wheel, not an editable checkout: the migrations must come
with the package), then runs `jobline check-config` and `jobline migrate` from its own
directory, and jobline.testing.LocalStack (migrate, serve, a worker, on SQLite and the
file broker) runs its job. It then changes a payload model while jobs wait in the queue,
as a deploy does: a job the new model refuses ends `failed` with INVALID_PAYLOAD, a job
whose model only gained a field with a default runs. The README section "jobline as a
dependency" says so.

The new virtualenv borrows the test virtualenv's installed dependencies (a path in a .pth
file), so only jobline itself is installed: no index is needed beyond the build backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, copy_work_tree, free_port

pytestmark = pytest.mark.integration

INSTALL_SECONDS = 600
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
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Project:
    root: Path
    python: Path
    jobline: Path
    env: dict[str, str]

    def run(self, *argv: str | Path, timeout: float = RUN_SECONDS) -> str:
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
    """A project of its own, outside the repository, with jobline pip-installed."""
    base = tmp_path_factory.mktemp("dependency")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=INSTALL_SECONDS)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies, from the test virtualenv; jobline itself is not among them (the
    # test virtualenv's editable jobline is its own .pth, which a path here does not read).
    Path(site, "_jobline_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("JOBLINE_") and k != "PYTHONPATH"
    }
    # From a copy: building in place would leave build/ in the work tree.
    source = copy_work_tree(base / "jobline-src")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(source)],
        env=env,
        check=True,
        timeout=INSTALL_SECONDS,
    )
    root = base / "billing-app"
    (root / "tasks").mkdir(parents=True)
    (root / "queues.yaml").write_text(QUEUES)
    (root / "tasks" / "__init__.py").write_text("")
    (root / "tasks" / "billing.py").write_text(TASKS_V1)
    (root / ".env").write_text("JOBLINE_DATABASE_URL=sqlite://var/billing.sqlite3\n")
    yield Project(root, python, venv / "bin" / "jobline", env)


def test_the_installed_package_is_not_the_checkout(project: Project) -> None:
    where = project.run(project.python, "-c", "import jobline; print(jobline.__file__)")
    assert not where.strip().startswith(str(REPO)), where
    migrations = project.run(
        project.python,
        "-c",
        "from jobline.config import Settings; print(Settings().migrations_dir)",
    ).strip()
    assert not migrations.startswith(str(REPO)), migrations
    assert sorted(p.name for p in Path(migrations, "sqlite", "models").glob("*.py")) == sorted(
        p.name for p in (REPO / "migrations" / "sqlite" / "models").glob("*.py")
    )


def test_check_config_and_migrate_run_from_the_project(project: Project) -> None:
    out = project.run(project.jobline, "check-config")
    lines = out.splitlines()
    assert lines[0] == "queues (queues.yaml):"
    assert "billing: queue=billing pool=threads concurrency=2" in lines[1]
    assert "billing.invoice: function tasks.billing:invoice (imports)" in out
    assert "  database_url: sqlite://var/billing.sqlite3" in lines, "read from the project's .env"
    committed = len(list((REPO / "migrations" / "sqlite" / "models").glob("*.py")))
    assert f"applied {committed} migration(s)" in project.run(project.jobline, "migrate")
    assert (project.root / "var" / "billing.sqlite3").exists()
    assert "applied 0 migration(s)" in project.run(project.jobline, "migrate"), "an upgrade"


def test_a_job_runs_and_a_payload_model_change_fails_queued_jobs_cleanly(
    project: Project,
) -> None:
    out = json.loads(project.run(project.python, "-c", DRIVER, TASKS_V2).splitlines()[-1])
    assert not out["jobline"].startswith(str(REPO))
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


def test_gunicorn_runs_the_api_with_the_packages_own_config(project: Project) -> None:
    project.run(project.jobline, "migrate")
    port = free_port()
    # `python -m gunicorn`: gunicorn's own script is in the borrowed virtualenv, not here.
    command = [
        project.python,
        "-m",
        "gunicorn",
        "-c",
        "python:jobline.gunicorn_conf",
        "jobline.api.app:create_app()",
    ]
    log = project.root / "gunicorn.log"
    with log.open("wb") as out:
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
