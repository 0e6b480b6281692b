"""`jobline dev`: the API, a worker per domain and (on RabbitMQ) Flower, in one command.

It migrates the database, makes sure a demo account exists, starts every process, waits
until the API answers /readyz and each worker says it is ready, then prints where to go.
Each child runs in a process group of its own, so a terminal's Ctrl-C reaches only this
supervisor: it asks every child to stop (SIGTERM to the group leader, which lets a Celery
worker stop its pool), waits, then kills whatever is left of each group. It then names the
jobs that were still running on a killed worker and records those workers stopped: the
next start's relay recovers them (jobs/workers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
from pydantic import BaseModel, ValidationError

from jobline.config import EMBEDDED_BROKER, Settings, redact_url
from jobline.jobs.spec import JobType, Queues
from jobline.waiting import wait_event

DEMO_EMAIL = "demo@example.com"
SUPERUSER_EMAIL = "admin@example.com"
DEMO_FILE = "demo-account.json"
# Random bytes of a new demo password (more when JOBLINE_PASSWORD_MIN_LENGTH asks for more).
DEMO_PASSWORD_BYTES = 12
# Celery prints "<name>@<host> ready." once its consumer is up.
WORKER_READY = " ready."
# `jobline relay` says this once it runs.
RELAY_READY = "publishing the outbox"
# Flower logs "Visit me at http://host:port" once it listens.
FLOWER_READY = "Visit me at "
READY_POLL_SECONDS = 0.25
# Lines of a child's output shown when it dies before it was ready.
TAIL_LINES = 20
API = "/api/v1"
# A child's output line may be long (a traceback's repr); asyncio's default limit is 64 KiB.
LINE_LIMIT_BYTES = 1 << 20


@dataclass(frozen=True)
class DemoAccount:
    """The development login `jobline dev` prints."""

    email: str
    password: str
    created: bool


async def ensure_demo_account(settings: Settings) -> DemoAccount:
    """Create the demo account on first start; later starts reuse it and its stored password.

    The password lives in var/demo-account.json (mode 600). If that file is gone but the
    account exists, the account gets a new password, so the printed one always works.
    """
    from jobline.accounts.users import TortoiseUserDatabase, UserManager, create_user
    from jobline.db import close_db, open_db

    path = settings.var_dir / DEMO_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    email = stored.get("email", DEMO_EMAIL)
    new_password = secrets.token_urlsafe(max(DEMO_PASSWORD_BYTES, settings.password_min_length))
    password = stored.get("password") or new_password
    await open_db(settings)
    try:
        users = TortoiseUserDatabase()
        manager = UserManager(users)
        user = await users.get_by_email(email)
        created = user is None
        if user is None:
            await create_user(email, password)
        else:
            valid, _ = manager.password_helper.verify_and_update(password, user.hashed_password)
            if not valid:
                password = new_password
                hashed = manager.password_helper.hash(password)
                await users.update(user, {"hashed_password": hashed})
    finally:
        await close_db()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"email": email, "password": password}))
    path.chmod(0o600)
    return DemoAccount(email, password, created)


def jobline_command() -> str:
    """How the user runs this `jobline`: `.venv/bin/jobline` from the project, else its path."""
    executable = os.path.join(os.path.dirname(sys.executable), "jobline")
    relative = os.path.relpath(executable)
    if not relative.startswith(".."):
        return relative
    return "jobline" if shutil.which("jobline") == executable else executable


def example_payload(job_type: JobType) -> dict[str, Any] | None:
    """A small valid payload for the printed curl line, or None if none can be guessed.

    Required fields are filled from their JSON Schema (its `examples` first).
    """
    model: type[BaseModel] | None = job_type.payload_model
    if model is None:
        return None
    schema = model.model_json_schema()
    payload = {
        name: _example_value(schema["properties"].get(name, {}))
        for name in schema.get("required", [])
    }
    try:
        model.model_validate(payload)
    except ValidationError:
        return None
    return payload


def _example_value(prop: dict[str, Any]) -> Any:
    if prop.get("examples"):
        return prop["examples"][0]
    kind = prop.get("type")
    if kind in ("integer", "number"):
        if "exclusiveMinimum" in prop:
            return prop["exclusiveMinimum"] + 1
        return prop.get("minimum", 0)
    return {"boolean": False, "array": [], "object": {}}.get(str(kind), "example")


def demo_job(queues: Queues) -> tuple[str, dict[str, Any]] | None:
    """The first declared job type the API can submit with a guessed payload."""
    for job_type in queues.job_types.values():
        if job_type.importable and (payload := example_payload(job_type)) is not None:
            return job_type.name, payload
    return None


def follow_commands(base: str, token: str, job: tuple[str, dict[str, Any]] | None) -> list[str]:
    """Shell lines that submit a job and follow its events with `curl -N`."""
    type_name, payload = job or ("<domain.type>", {})
    body = json.dumps({"type": type_name, "payload": payload})
    auth = '"Authorization: Bearer $TOKEN"'
    extract = shlex.quote('import json, sys; print(json.load(sys.stdin)["id"])')
    return [
        f"export TOKEN={shlex.quote(token)}",
        f"JOB=$(curl -s -X POST {base}{API}/jobs -H {auth} -H 'Content-Type: application/json'"
        f" -d {shlex.quote(body)} | python3 -c {extract})",
        f"curl -N -s -H {auth} {base}{API}/jobs/$JOB/stream",
    ]


@dataclass
class Child:
    """A process `jobline dev` started, and the line that says it is ready."""

    name: str
    argv: list[str]
    ready_text: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ready_line: str | None = None
    tail: list[str] = field(default_factory=list)
    pump: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class DevFailed(Exception):
    """`jobline dev` could not bring everything up; the message says what."""


class DevServer:
    """Starts and supervises the processes of `jobline dev`."""

    def __init__(
        self, settings: Settings, queues: Queues, host: str, port: int, out: TextIO = sys.stdout
    ) -> None:
        self.settings, self.queues, self.host, self.port, self.out = (
            settings,
            queues,
            host,
            port,
            out,
        )
        self.base = f"http://{host}:{port}"
        self.children: list[Child] = []
        self.stop_requested = asyncio.Event()
        self._forced = False

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def plan(self, account: DemoAccount) -> list[Child]:
        """The processes to start: the API, the relay unless the API runs it, workers, Flower."""
        jobline = [sys.executable, "-m", "jobline"]
        children = [Child("api", [*jobline, "serve", f"--host={self.host}", f"--port={self.port}"])]
        if not self.settings.api_relay:
            children.append(Child("relay", [*jobline, "relay"], ready_text=RELAY_READY))
        for domain in self.queues.domains:
            children.append(
                Child(domain, [*jobline, "worker", f"--domain={domain}"], ready_text=WORKER_READY)
            )
        if self.has_flower:
            auth = self.settings.flower_basic_auth or f"{account.email}:{account.password}"
            children.append(
                Child(
                    "flower",
                    [*jobline, "flower"],
                    ready_text=FLOWER_READY,
                    env={"JOBLINE_FLOWER_BASIC_AUTH": auth},
                )
            )
        return children

    @property
    def has_flower(self) -> bool:
        """Flower needs broker events over RabbitMQ; the embedded broker has none to show."""
        return self.settings.broker_url.startswith("amqp")

    async def run(self) -> int:
        """Run until Ctrl-C (exit 0) or until a child dies (exit 1)."""
        from jobline.db import apply_migrations

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal)
        try:
            self._check_port()
            applied = await apply_migrations(self.settings)
            account = await ensure_demo_account(self.settings)
            self.say(
                f"dev: database {redact_url(self.settings.database_url)}"
                f" ({len(applied)} migration(s) applied)"
            )
            self.children = self.plan(account)
            for child in self.children:
                await self._start(child)
            token = await self._wait_until_ready(account)
            if token is None:
                return 0  # stopped while starting
            self._banner(account, token)
            return await self._supervise()
        finally:
            await self.stop_all()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self.stop_requested.is_set():
            self._forced = True  # a second Ctrl-C: kill now
            self._kill_groups(signal.SIGKILL)
        self.stop_requested.set()

    def _check_port(self) -> None:
        with socket.socket() as probe:
            # As uvicorn binds: connections of a previous run in TIME_WAIT do not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise DevFailed(
                    f"cannot listen on {self.host}:{self.port} ({exc.strerror}); pass --port"
                ) from None

    async def _start(self, child: Child) -> None:
        env = {**os.environ, **child.env, "PYTHONUNBUFFERED": "1"}
        child.process = await asyncio.create_subprocess_exec(
            *child.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env=env,
            limit=LINE_LIMIT_BYTES,
            # Its own process group: Ctrl-C reaches only us, and a stop reaches its pool too.
            start_new_session=True,
        )
        child.pump = asyncio.create_task(self._pump(child))

    async def _pump(self, child: Child) -> None:
        assert child.process is not None and child.process.stdout is not None
        width = max(len(c.name) for c in self.children)
        async for raw in child.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            child.tail = [*child.tail[-(TAIL_LINES - 1) :], line]
            if child.ready_text and not child.ready.is_set() and child.ready_text in line:
                child.ready_line = line
                child.ready.set()
            self.say(f"{child.name:<{width}} | {line}")

    async def _wait_until_ready(self, account: DemoAccount) -> str | None:
        """Wait for every child; returns the demo account's bearer token (None if stopped)."""
        deadline = asyncio.get_running_loop().time() + self.settings.dev_ready_seconds
        async with httpx.AsyncClient(base_url=self.base, timeout=READY_POLL_SECONDS * 8) as http:
            while not self.stop_requested.is_set():
                self._raise_if_a_child_died()
                api_ready = await self._api_ready(http)
                if api_ready and all(c.ready.is_set() for c in self.children if c.ready_text):
                    return await self._login(http, account)
                if asyncio.get_running_loop().time() > deadline:
                    waiting = [
                        c.name for c in self.children if c.ready_text and not c.ready.is_set()
                    ]
                    if not api_ready:
                        waiting.insert(0, "api (/readyz)")
                    raise DevFailed(
                        f"not ready after {self.settings.dev_ready_seconds:g}s: {', '.join(waiting)}"
                    )
                await wait_event(self.stop_requested, READY_POLL_SECONDS)
        return None

    @staticmethod
    async def _api_ready(http: httpx.AsyncClient) -> bool:
        try:
            return (await http.get("/readyz")).status_code == httpx.codes.OK
        except httpx.HTTPError:
            return False

    @staticmethod
    async def _login(http: httpx.AsyncClient, account: DemoAccount) -> str:
        answer = await http.post(
            f"{API}/auth/jwt/login", data={"username": account.email, "password": account.password}
        )
        if answer.status_code != httpx.codes.OK:
            raise DevFailed(
                f"the demo account could not log in: {answer.status_code} {answer.text}"
            )
        token: str = answer.json()["access_token"]
        return token

    def _raise_if_a_child_died(self) -> None:
        for child in self.children:
            if child.process is not None and child.process.returncode is not None:
                tail = "\n".join(f"  {line}" for line in child.tail)
                raise DevFailed(
                    f"{child.name} exited with code {child.process.returncode}:\n{tail}"
                )

    def _banner(self, account: DemoAccount, token: str) -> None:
        settings = self.settings
        broker = redact_url(settings.broker_url)
        if settings.broker_url.startswith(EMBEDDED_BROKER):
            broker += f" (files under {settings.broker_dir()})"
        workers = ", ".join(
            f"{name} ({spec.pool} x{spec.concurrency}, queue {spec.queue})"
            for name, spec in self.queues.domains.items()
        )
        note = "created now" if account.created else "existing"
        lines = [
            "",
            "jobline dev is up. Ctrl-C stops every process it started.",
            "",
            f"  API docs      {self.base}/docs",
            f"  demo account  {account.email}  password: {account.password}  ({note};"
            f" kept in {settings.var_dir / DEMO_FILE})",
            f"  superuser     the demo account is none; for /audit, /stream/stats and everyone's"
            f" jobs: {jobline_command()} users create {SUPERUSER_EMAIL} --superuser",
            f"  database      {redact_url(settings.database_url)}",
            f"  broker        {broker}",
            f"  workers       {workers}",
            "  relay         "
            + ("inside the API process" if settings.api_relay else "its own process")
            + " (publishes jobs the broker did not take at once)",
        ]
        if self.has_flower:
            lines.append(f"  Flower        {self.flower_url()} (log in with the demo account)")
        lines += [
            "",
            f"Submit a job and follow it live (the token is valid for"
            f" {settings.access_token_lifetime_seconds // 60} minutes):",
            "",
            *(f"  {line}" for line in follow_commands(self.base, token, demo_job(self.queues))),
            "",
        ]
        for line in lines:
            self.say(line)

    def flower_url(self) -> str:
        """Where Flower said it listens."""
        line = next((c.ready_line for c in self.children if c.name == "flower"), None) or ""
        return line.split(FLOWER_READY, 1)[-1].split()[0] if FLOWER_READY in line else "?"

    async def _supervise(self) -> int:
        """Wait for Ctrl-C (0) or for a child to exit on its own (1)."""
        waits = {
            asyncio.create_task(c.process.wait()): c for c in self.children if c.process is not None
        }
        stop = asyncio.create_task(self.stop_requested.wait())
        done, _ = await asyncio.wait([stop, *waits], return_when=asyncio.FIRST_COMPLETED)
        for task in [stop, *waits]:
            task.cancel()
        if stop in done:
            self.say("dev: stopping")
            return 0
        died = next(waits[t] for t in done if t in waits)
        assert died.process is not None
        if died.pump is not None:  # what it printed last, up to its end of output
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READY_POLL_SECONDS * 4):
                    await asyncio.shield(died.pump)
        # Its last lines again, together: a worker's traceback scrolls away among the API's.
        tail = "\n".join(f"  {line}" for line in died.tail)
        self.say(
            f"dev: {died.name} exited with code {died.process.returncode}; stopping the rest."
            f" Its last lines:\n{tail}"
        )
        return 1

    async def stop_all(self) -> None:
        """Stop every child: SIGTERM to each leader, a grace period, then SIGKILL to each group."""
        running = [c for c in self.children if c.running]
        for child in running:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        if running and not self._forced:
            waits = [c.process.wait() for c in running if c.process is not None]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.dev_stop_seconds):
                    await asyncio.gather(*waits)
        # Whatever is left of each group (a stuck leader, an orphaned pool process) dies now.
        self._kill_groups(signal.SIGKILL)
        for child in self.children:
            if child.process is not None:
                await child.process.wait()
            if child.pump is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(READY_POLL_SECONDS * 4):
                        await child.pump
        if self.children:
            self.say("dev: every process stopped")
            await self._name_interrupted()

    async def _name_interrupted(self) -> None:
        """Say which jobs the stop interrupted (their workers were killed mid-job), and
        record those workers stopped, so the next start recovers the jobs at once."""
        from tortoise import connections

        from jobline.db import close_db, open_db
        from jobline.jobs import workers

        pids = [c.pid for c in self.children if c.name in self.queues.domains and c.pid]
        if not pids:
            return
        try:
            await open_db(self.settings)
            try:
                db = connections.get("default")
                names = await workers.mark_killed(db, socket.gethostname(), pids)
                interrupted = await workers.orphans(db, names)
            finally:
                await close_db()
        except Exception as exc:
            self.say(f"dev: could not look for interrupted jobs ({exc!r})")
            return
        if not interrupted:
            return
        self.say(
            f"dev: {len(interrupted)} job(s) interrupted; the next start runs them again"
            " (worker_lost, then retried by their retry policy):"
        )
        for job in interrupted:
            where = f"{job.progress}%" + (f" {job.message}" if job.message else "")
            self.say(f"  {job.job_id}  {job.type}  attempt {job.attempt}, {where}")

    def _kill_groups(self, sig: int) -> None:
        for pgid in self._groups():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)

    def _groups(self) -> Iterator[int]:
        # Each child leads its own group, whose id is its pid (start_new_session).
        for child in self.children:
            if child.pid is not None:
                yield child.pid
