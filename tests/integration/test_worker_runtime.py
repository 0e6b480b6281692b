"""A worker process keeps one event loop and one Tortoise pool for its life, not one per task.

Checked from outside: MariaDB's PROCESSLIST for the run's database, each connection traced
through /proc to the worker process that holds its socket. A pool (or a loop, which forces
Tortoise to reconnect) per task would open at least one new connection per task.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pymysql
import pytest

from jobline.config import Settings
from jobline.jobs.spec import load_queues
from tests.conftest import _mysql_parts
from tests.support import Proc, User, tree

pytestmark = pytest.mark.integration

WARM_UP_JOBS = 4
TRANSCODE_JOBS = 10


def descendants(pid: int) -> set[int]:
    """`pid` and every process below it."""
    return set(tree(pid))


def socket_owners(pids: set[int]) -> dict[int, int]:
    """socket inode -> pid, for the sockets these processes hold."""
    owners = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[int(target[8:-1])] = pid
    return owners


def local_ports_to(remote_port: int, owners: dict[int, int]) -> dict[int, int]:
    """local TCP port -> pid, for connections of these sockets to `remote_port`."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(remote.rsplit(":", 1)[1], 16) == remote_port and inode in owners:
                ports[int(local.rsplit(":", 1)[1], 16)] = owners[inode]
    return ports


def worker_connections(worker: Proc, mysql_url: str) -> dict[int, int]:
    """MariaDB connection id -> worker pid, for the run's database."""
    parts = _mysql_parts(mysql_url)
    ports = local_ports_to(int(str(parts["port"])), socket_owners(descendants(worker.popen.pid)))
    conn = pymysql.connect(
        host=str(parts["host"]),
        port=int(str(parts["port"])),
        user=str(parts["user"]),
        password=str(parts["password"]),
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT ID, HOST FROM information_schema.PROCESSLIST WHERE DB = %s",
                (parts["db"],),
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    out = {}
    for conn_id, host in rows:
        port = int(str(host).rsplit(":", 1)[1]) if ":" in str(host) else None
        if port in ports:
            out[int(conn_id)] = ports[port]
    return out


async def run_all(user: User, jobs: list[tuple[str, dict[str, object]]]) -> list[dict[str, object]]:
    submitted = [await user.submit(type, payload) for type, payload in jobs]
    return list(
        await asyncio.gather(*(user.wait_final(str(j["id"]), within=120) for j in submitted))
    )


async def test_a_worker_keeps_its_connections_across_tasks(
    user: User, workers: dict[str, Proc], settings: Settings, mysql_url: str
) -> None:
    worker = workers["music"]
    concurrency = load_queues(settings.queues_file).domains["music"].concurrency
    bound = concurrency * settings.db_pool_max
    # More tasks than the pools could ever hold connections: one connection per task would show.
    task_count = bound + 10
    fingerprint = ("music.fingerprint", {"source": "a.wav", "step_seconds": 0})
    transcode = ("music.transcode", {"source": "a.wav", "chunks": 1, "step_seconds": 0})

    warm = await run_all(user, [fingerprint, transcode] * (WARM_UP_JOBS // 2))
    assert {j["state"] for j in warm} == {"succeeded"}
    before = worker_connections(worker, mysql_url)
    assert before, "the worker's pool processes hold connections to the run's database"
    pool_processes = descendants(worker.popen.pid) - {worker.popen.pid}

    jobs = [transcode] * TRANSCODE_JOBS + [fingerprint] * (task_count - TRANSCODE_JOBS)
    done = await run_all(user, jobs)
    assert {j["state"] for j in done} == {"succeeded"}, [
        j for j in done if j["state"] != "succeeded"
    ]

    after = worker_connections(worker, mysql_url)
    opened = set(after) - set(before)
    assert len(after) <= bound
    assert len(opened) < task_count, f"{len(opened)} connections opened for {task_count} tasks"
    assert len(opened) <= concurrency, f"connections opened during the run: {sorted(opened)}"
    # The main process holds one connection of its own, its heartbeat's (queueing/heartbeat.py);
    # every other belongs to a pool process.
    main = worker.popen.pid
    assert set(after.values()) <= pool_processes | {main}, "connections of the worker's processes"
    assert list(after.values()).count(main) <= 1, "the main process holds its heartbeat's only"
    assert descendants(worker.popen.pid) - {worker.popen.pid} == pool_processes, (
        "no child was replaced"
    )
    assert "TortoiseLoopSwitchWarning" not in worker.output()
