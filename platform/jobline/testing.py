"""Test your own jobs: in a unit test with a recording context, or end to end on a local stack.

`run_job(function, payload)` runs a job function the way a worker does, without a worker:
the payload is read through the job's model (INVALID_PAYLOAD when it refuses it), the
function gets a real `JobContext` whose progress is recorded instead of stored, and the
outcome is what the worker would record: `succeeded` with the result as JSON values,
`failed` with the error object, or `cancelled`. `Recorder` stands where the worker's
progress reporter stands, so a test can also call the function itself and ask for
cancellation at any point; `ctx.raise_if_cancelled()` then raises the worker's own
`JobCancelled`.

`LocalStack` runs the real thing on the embedded default (SQLite and the file broker in a
temporary directory): `jobline migrate`, the API (`jobline serve`) and a `jobline worker`
per domain, as processes started from your project directory, with an account logged in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from jobline.client import Client
from jobline.config import get_settings
from jobline.errors import JobCancelled
from jobline.jobs.context import JobContext, JobFunction
from jobline.jobs.events import EventType
from jobline.jobs.states import FINAL_STATES
from jobline.queueing import outcome
from jobline.queueing.limits import clip

__all__ = [
    "JobCancelled",
    "LocalStack",
    "Outcome",
    "Progress",
    "Recorder",
    "arun_job",
    "run_job",
]

TEST_JOB_TYPE = "test.job"


@dataclass(frozen=True)
class Progress:
    """One `ctx.progress()` call, as the worker would record it (rounded, clamped, cut)."""

    percent: int
    message: str | None


class Recorder:
    """The worker side of a test's JobContext: records progress, and asks for cancellation.

    It implements the same `Reporter` seam as the worker's progress reporter
    (queueing/progress.py), so the context a job gets here is the real `JobContext`.
    """

    def __init__(self, *, cancel_after: int | None = None) -> None:
        self.reports: list[Progress] = []
        # After this many progress calls, cancellation is requested (a mid-job cancel).
        self.cancel_after = cancel_after
        self._cancel = threading.Event()
        self._max_message = get_settings().max_progress_message_chars

    def context(
        self, job_type: str = TEST_JOB_TYPE, *, attempt: int = 1, job_id: UUID | None = None
    ) -> JobContext:
        """A real JobContext reporting here."""
        return JobContext(job_id or uuid4(), job_type, attempt, self)

    def cancel(self) -> None:
        """Ask the job to stop, as `POST /jobs/{id}/cancel` does for a running job."""
        self._cancel.set()

    def progress(self, percent: int, message: str | None) -> None:
        """Record one report (JobContext.progress has rounded and clamped it), its message cut."""
        self.reports.append(Progress(percent, clip(message, self._max_message)))
        if self.cancel_after is not None and len(self.reports) >= self.cancel_after:
            self._cancel.set()

    def cancel_requested(self) -> bool:
        """Whether the job was asked to stop (what ctx.cancelled and raise_if_cancelled read)."""
        return self._cancel.is_set()


@dataclass
class Outcome:
    """What a worker would have recorded for the run."""

    state: str  # the final state: a name of jobline.jobs.states.FINAL_STATES
    result: Any = None
    # The failed event's `error`: {"type", "message"} and, for jobline's own refusals, "code".
    error: dict[str, Any] | None = None
    progress: list[Progress] = field(default_factory=list)
    # The exception the function raised, for a test to inspect (None when it raised none).
    exception: BaseException | None = None


def run_job(
    function: JobFunction | Callable[..., Any],
    payload: dict[str, Any] | None = None,
    *,
    job_type: str = TEST_JOB_TYPE,
    attempt: int = 1,
    cancel_after: int | None = None,
    recorder: Recorder | None = None,
) -> Outcome:
    """Run a job function (sync or async) as a worker would, and return its outcome.

    An async function runs on an event loop of its own (in a thread when the caller is
    itself on a loop), as the worker runs it on its own loop. A TransientError ends the
    run `failed` here; a worker would retry it while the job type's retries last.
    """
    recorder = recorder or Recorder(cancel_after=cancel_after)
    ctx = recorder.context(job_type, attempt=attempt)
    parsed = _parse(function, payload)
    if isinstance(parsed, Outcome):
        return parsed
    try:
        if _is_async(function):
            result = _run_coroutine(lambda: function(ctx, parsed))
        else:
            result = function(ctx, parsed)
    except BaseException as exc:  # sorted as the worker sorts it
        return _ended(exc, recorder)
    return _succeeded(result, recorder)


async def arun_job(
    function: JobFunction | Callable[..., Any],
    payload: dict[str, Any] | None = None,
    *,
    job_type: str = TEST_JOB_TYPE,
    attempt: int = 1,
    cancel_after: int | None = None,
    recorder: Recorder | None = None,
) -> Outcome:
    """run_job() for an async test: an async function is awaited on the caller's loop."""
    if not _is_async(function):
        return await asyncio.to_thread(
            run_job,
            function,
            payload,
            job_type=job_type,
            attempt=attempt,
            cancel_after=cancel_after,
            recorder=recorder,
        )
    recorder = recorder or Recorder(cancel_after=cancel_after)
    ctx = recorder.context(job_type, attempt=attempt)
    parsed = _parse(function, payload)
    if isinstance(parsed, Outcome):
        return parsed
    try:
        result = await function(ctx, parsed)
    except BaseException as exc:  # sorted as the worker sorts it
        return _ended(exc, recorder)
    return _succeeded(result, recorder)


def _is_async(function: JobFunction | Callable[..., Any]) -> bool:
    if isinstance(function, JobFunction):
        return function.is_async
    return asyncio.iscoroutinefunction(function)


def _parse(function: JobFunction | Callable[..., Any], payload: dict[str, Any] | None) -> Any:
    """The payload as the worker hands it over, or a failed Outcome (INVALID_PAYLOAD).

    It goes through JSON first, as it does through the broker: a test cannot pass what a
    real submission could not carry.
    """
    wire = json.loads(json.dumps(payload if payload is not None else {}))
    if not isinstance(function, JobFunction):
        return wire
    try:
        return function.parse(wire)
    except ValidationError as exc:
        invalid = outcome.of_invalid_payload(exc)
        return Outcome("failed", error=invalid.data["error"], exception=exc)


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    # Called from a running loop (an async test): asyncio.run() refuses to nest.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(make())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="jobline-test-job")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _ended(exc: BaseException, recorder: Recorder) -> Outcome:
    """The worker's sorting of an exception (queueing/outcome.py), without its retries."""
    if not isinstance(exc, (*outcome.CANCELLATIONS, Exception)):
        raise exc  # KeyboardInterrupt, SystemExit: the test run's, not the job's
    ended = outcome.of_error(exc)
    if ended.type is EventType.CANCELLED:
        return Outcome("cancelled", progress=recorder.reports, exception=exc)
    error = ended.data["error"]
    return Outcome("failed", error=error, progress=recorder.reports, exception=exc)


def _succeeded(result: Any, recorder: Recorder) -> Outcome:
    try:
        ended = outcome.of_result(result, get_settings())
    except Exception as exc:  # not JSON-able: on a worker too, the job fails with it
        return _ended(exc, recorder)
    if ended.type is EventType.FAILED:
        return Outcome("failed", error=ended.data["error"], progress=recorder.reports)
    return Outcome("succeeded", result=ended.data["result"], progress=recorder.reports)


# ------------------------------------------------------------------ the local stack

FINAL_STATE_NAMES = frozenset(state.value for state in FINAL_STATES)
WORKER_READY = " ready."  # Celery's line once a worker consumes
START_SECONDS = 120.0
STOP_SECONDS = 30.0
POLL_SECONDS = 0.05


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class LocalStack:
    """jobline's real processes on SQLite and the file broker, in a directory of their own.

    Started from `project` (your repository: queues.yaml and tasks/), so they import your
    job code as a deployment does. Use it as a context manager; `client` is logged in.
    """

    def __init__(
        self,
        project: Path | str = ".",
        *,
        domains: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        var_dir: Path | str | None = None,
        start_seconds: float = START_SECONDS,
    ) -> None:
        self.project = Path(project).resolve()
        self.domains = domains
        self.start_seconds = start_seconds
        self._own_var = var_dir is None
        self.var_dir = Path(var_dir or tempfile.mkdtemp(prefix="jobline-stack-")).resolve()
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.email = "tests@example.com"
        self.password = secrets.token_urlsafe(18)
        self.env = {
            **os.environ,
            "JOBLINE_ENV": "development",
            "JOBLINE_VAR_DIR": str(self.var_dir),
            "JOBLINE_DATABASE_URL": f"sqlite://{self.var_dir / 'jobline.sqlite3'}",
            "JOBLINE_BROKER_URL": "filesystem://",
            "JOBLINE_API_HOST": "127.0.0.1",
            "JOBLINE_API_PORT": str(self.port),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.processes: dict[str, _Process] = {}
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        """A jobline.client.Client logged in to the stack's API."""
        if self._client is None:
            raise RuntimeError("the stack is not started")
        return self._client

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def jobline(self, *args: str, stdin: str | None = None) -> str:
        """Run a `jobline` command against the stack; its output, or an error with it."""
        done = subprocess.run(
            [sys.executable, "-m", "jobline", *args],
            cwd=self.project,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=self.start_seconds,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"jobline {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def start(self) -> None:
        """Migrate, create the account, start the API and the workers, log in."""
        self.jobline("migrate")
        self.jobline("users", "create", self.email, stdin=self.password + "\n")
        self._spawn("api", "serve")
        deadline = time.monotonic() + self.start_seconds
        while True:
            self._raise_if_dead()
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API did not listen within {self.start_seconds:g}s")
            time.sleep(POLL_SECONDS * 4)
        for domain in self.domains if self.domains is not None else self._all_domains():
            self.start_worker(domain)
        self._client = Client.login(self.base_url, self.email, self.password)

    def start_worker(self, domain: str) -> None:
        """Start `jobline worker --domain DOMAIN` and wait until it consumes."""
        process = self._spawn(domain, "worker", f"--domain={domain}")
        deadline = time.monotonic() + self.start_seconds
        while WORKER_READY not in process.output():
            self._raise_if_dead()
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {domain} not ready:\n{process.output()[-2000:]}")
            time.sleep(POLL_SECONDS * 4)

    def stop_worker(self, domain: str) -> None:
        """Stop one worker (it finishes its running jobs first)."""
        self._stop(self.processes.pop(domain))

    def run(
        self, job_type: str, payload: dict[str, Any] | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Submit a job over HTTP and return it once it ended."""
        return self.wait(self.client.submit(job_type, payload)["id"], timeout)

    def wait(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """The job once it is succeeded, failed or cancelled."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(job_id)
            if job["state"] in FINAL_STATE_NAMES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']} after {timeout:g}s")
            time.sleep(POLL_SECONDS)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's stored events, oldest first."""
        return list(self.client.events(job_id))

    def stop(self) -> None:
        """Stop every process (workers first) and remove the stack's own directory."""
        if self._client is not None:
            self._client.close()
            self._client = None
        for name in [n for n in self.processes if n != "api"] + ["api"]:
            if name in self.processes:
                self._stop(self.processes.pop(name))
        if self._own_var:
            shutil.rmtree(self.var_dir, ignore_errors=True)

    def _all_domains(self) -> list[str]:
        from jobline.jobs.spec import load_queues

        queues_file = Path(self.env.get("JOBLINE_QUEUES_FILE", "queues.yaml"))
        path = queues_file if queues_file.is_absolute() else self.project / queues_file
        return list(load_queues(path, check_imports=False).domains)

    def _spawn(self, name: str, *args: str) -> _Process:
        log = self.var_dir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "jobline", *args],
                cwd=self.project,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: stopping it reaches a worker's pool processes too.
                start_new_session=True,
            )
        self.processes[name] = _Process(name, popen, log)
        return self.processes[name]

    def _raise_if_dead(self) -> None:
        for process in self.processes.values():
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"{process.name} exited {process.popen.returncode}:\n{process.output()[-2000:]}"
                )

    @staticmethod
    def _stop(process: _Process) -> None:
        # To the leader only, as `jobline dev` does: a Celery worker then stops its own pool.
        with contextlib.suppress(ProcessLookupError):
            process.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(STOP_SECONDS)
        # Whatever is left of the group (a stuck leader, an orphaned pool process).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.popen.pid, signal.SIGKILL)
        process.popen.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
