"""The peer's processes for a benchmark run: a scratch PostgreSQL database, its API, workers.

PostgreSQL is the local cluster `deploy/local/services up` starts (JOBLINE_TEST_POSTGRES_URL,
a role that may create databases). Each run makes its own database, applies Procrastinate's
schema with Procrastinate's own command, and drops it afterwards.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, LiteralString
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from tests.support import Proc, spawn

from bench.common import BIN, READY_SECONDS, REPO, Server, start_uvicorn

POSTGRES_ADMIN = os.environ.get(
    "JOBLINE_TEST_POSTGRES_URL", "postgresql://jobline:jobline@127.0.0.1:5432/jobline"
)
PROCRASTINATE = str(BIN / "procrastinate")
APP = "bench.peer.tasks.app"
# Like prefork x2 at prefetch 1: two worker processes, each running one job at a time
# (Procrastinate's default concurrency is 1; it is said on the command line all the same).
WORKERS = 2
WORKER_CONCURRENCY = 1
POLL_SECONDS = 0.2


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@dataclass
class PeerDatabase:
    """A private PostgreSQL database with Procrastinate's schema, dropped by `drop()`."""

    name: str
    url: str

    @classmethod
    def create(cls, prefix: str = "jobline_bench") -> PeerDatabase:
        """Create the database and apply Procrastinate's schema to it."""
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database = cls(name, _with_database(POSTGRES_ADMIN, name))
        try:
            database.procrastinate("schema", "--apply")
        except BaseException:
            database.drop()
            raise
        return database

    def env(self) -> dict[str, str]:
        """What the peer's processes read: the database, and the path its CLI imports from."""
        # `procrastinate --app=bench.peer.tasks.app` imports the module by name and, unlike
        # `celery -A`, does not put the working directory on sys.path.
        return {"BENCH_POSTGRES_URL": self.url, "PYTHONPATH": str(REPO)}

    def procrastinate(self, *args: str) -> str:
        """Run Procrastinate's own command on this database; its output."""
        done = subprocess.run(
            [PROCRASTINATE, f"--app={APP}", *args],
            env={**os.environ, **self.env()},
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"procrastinate {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout

    def drop(self) -> None:
        """Drop the database, closing what is still connected to it."""
        try:
            with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as db:
                db.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )
        except psycopg.Error as exc:
            print(f"  (could not drop {self.name}: {exc}; drop it by hand)")

    def query(self, statement: LiteralString, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one statement, on a connection of its own."""
        with psycopg.connect(self.url, autocommit=True) as db:
            return list(db.execute(statement, tuple(args)).fetchall())

    def succeeded(self) -> int:
        """Jobs the workers have finished."""
        return int(
            self.query("SELECT COUNT(*) FROM procrastinate_jobs WHERE status = 'succeeded'")[0][0]
        )


def server_version() -> str:
    """PostgreSQL's version, for the run's machine record ('' if it does not answer)."""
    try:
        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=5) as db:
            row = db.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else ""
    except psycopg.Error:
        return ""


def start_api(database: PeerDatabase, logdir: Path) -> Server:
    """The peer's FastAPI app on one uvicorn worker, with the same flags as the others."""
    return start_uvicorn("peer-api", "bench.peer.api:app", database.env(), logdir)


def start_workers(database: PeerDatabase, logdir: Path, count: int = WORKERS) -> list[Proc]:
    """`procrastinate worker` processes; returns once each has registered itself."""
    procs = [
        spawn(
            "peer-worker",
            [
                PROCRASTINATE,
                f"--app={APP}",
                # At WARNING, like the Celery workers: INFO would log two lines per job.
                "--log-level=warning",
                "worker",
                f"--concurrency={WORKER_CONCURRENCY}",
            ],
            database.env(),
            logdir,
        )
        for _ in range(count)
    ]
    deadline = time.monotonic() + READY_SECONDS
    while database.query("SELECT COUNT(*) FROM procrastinate_workers")[0][0] < count:
        for proc in procs:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"a peer worker exited:\n{proc.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"peer workers not registered after {READY_SECONDS}s")
        time.sleep(POLL_SECONDS)
    return procs
