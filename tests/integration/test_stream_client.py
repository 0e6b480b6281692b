"""The Python client and `jobline submit --follow` / `jobline follow` against a real server."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobline.client import Client, ClientError
from jobline.config import Settings
from tests.integration.stream_helpers import live_user
from tests.support import JOBLINE, PASSWORD, REPO, WAIT_SECONDS, Proc, User, start_server

pytestmark = pytest.mark.integration

# The proxy cuts every connection after this many bytes towards the client: mid-frame.
CUT_AFTER_BYTES = 1500
# A job whose stream is several times longer than one connection may carry.
TRANSCODE = {"source": "client.wav", "chunks": 40, "step_seconds": 0.02}


class DroppingProxy:
    """A TCP proxy that drops each connection after `cut_after` bytes to the client."""

    def __init__(self, target: str, cut_after: int) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cut_after = cut_after
        self.cuts = 0
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_r, up_w = await asyncio.open_connection(self.host, self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int) -> bool:
            sent = 0
            while data := await src.read(4096):
                data = data[: limit - sent]
                dst.write(data)
                await dst.drain()
                sent += len(data)
                if sent >= limit:
                    return True
            return False

        upstream = asyncio.create_task(pipe(client_r, up_w, 2**62))
        try:
            if await pipe(up_r, client_w, self.cut_after):
                self.cuts += 1
        except ConnectionError:
            pass
        finally:
            upstream.cancel()
            for writer in (client_w, up_w):
                writer.close()


@pytest.fixture(scope="module")
def fast_retry_server(migrated: Settings, stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    """An API process advising a short reconnect delay, so reconnects are quick."""
    proc, base = start_server({**stack_env, "JOBLINE_SSE_RETRY_MS": "50"}, logdir)
    yield base
    proc.stop()


@pytest.fixture(scope="module")
async def carol(live_server: str) -> AsyncIterator[User]:
    user = await live_user(live_server)
    yield user
    await user.client.aclose()


async def test_the_client_submits_gets_pages_and_follows(
    carol: User, live_server: str, workers: dict[str, Proc]
) -> None:
    def run() -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        with Client(live_server, carol.token) as client:
            job = client.submit("music.transcode", TRANSCODE, idempotency_key="client-1")
            followed = list(client.follow(job["id"]))
            paged = list(client.events(job["id"], page_size=7))
            again = client.submit("music.transcode", TRANSCODE, idempotency_key="client-1")
            assert again["id"] == job["id"]
            return job, followed, paged, client.get(job["id"])

    job, followed, paged, final = await asyncio.to_thread(run)
    assert final["state"] == "succeeded"
    assert followed == paged == await carol.events(job["id"])
    assert len(paged) > 7, "several pages"
    assert followed[-1]["type"] == "succeeded"


async def test_the_client_reports_refusals(carol: User, live_server: str) -> None:
    def run() -> list[ClientError]:
        seen = []
        with Client(live_server, carol.token) as client:
            for call in (
                lambda: client.get("00000000-0000-0000-0000-000000000000"),
                lambda: list(client.follow("00000000-0000-0000-0000-000000000000")),
                lambda: client.submit("music.nope", {}),
            ):
                try:
                    call()
                except ClientError as exc:
                    seen.append(exc)
        with Client(live_server, "not-a-token") as client:
            try:
                client.get("00000000-0000-0000-0000-000000000000")
            except ClientError as exc:
                seen.append(exc)
        return seen

    errors = await asyncio.to_thread(run)
    assert [(e.status, e.code) for e in errors] == [
        (404, "JOB_NOT_FOUND"),
        (404, "JOB_NOT_FOUND"),
        (422, "UNKNOWN_JOB_TYPE"),
        (401, "UNAUTHORIZED"),
    ]


async def test_follow_resumes_by_itself_after_dropped_connections(
    carol: User, fast_retry_server: str, workers: dict[str, Proc]
) -> None:
    proxy = DroppingProxy(fast_retry_server, CUT_AFTER_BYTES)
    base = await proxy.start()
    try:
        job = await carol.submit("music.transcode", TRANSCODE)

        def follow() -> list[dict[str, Any]]:
            with Client(base, carol.token, max_reconnects=5) as client:
                return list(client.follow(job["id"]))

        followed = await asyncio.to_thread(follow)
    finally:
        await proxy.stop()
    history = await carol.events(job["id"])
    assert followed == history, "every event exactly once, in order"
    assert proxy.cuts >= 3 and proxy.connections >= proxy.cuts, (proxy.cuts, proxy.connections)


def jobline(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JOBLINE, *args],
        env={**os.environ, **env, "COLUMNS": "120"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
    )


async def test_cli_submit_follow_shows_progress_and_exits_0(
    carol: User, live_server: str, workers: dict[str, Proc]
) -> None:
    env = {"JOBLINE_API_URL": live_server, "JOBLINE_TOKEN": carol.token}
    done = await asyncio.to_thread(
        jobline,
        [
            "submit",
            "music.transcode",
            "--payload",
            '{"source": "cli.wav", "chunks": 10}',
            "--follow",
        ],
        env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "submitted" in done.stdout and "succeeded" in done.stdout
    assert '"output": "cli.wav.ogg"' in done.stdout
    assert "100%" in done.stdout


async def test_cli_follow_exits_1_when_the_job_fails(
    carol: User, live_server: str, workers: dict[str, Proc]
) -> None:
    job = await carol.submit("music.validate_master", {"source": "cli.mp3"})
    env = {"JOBLINE_API_URL": live_server, "JOBLINE_EMAIL": carol.email}
    done = await asyncio.to_thread(jobline, ["follow", job["id"], "--password", PASSWORD], env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed: UnsupportedMaster" in done.stdout


async def test_cli_refusals_exit_2(carol: User, live_server: str) -> None:
    env = {"JOBLINE_API_URL": live_server, "JOBLINE_TOKEN": carol.token}
    unknown = await asyncio.to_thread(
        jobline, ["follow", "00000000-0000-0000-0000-000000000000"], env
    )
    assert unknown.returncode == 2 and "No such job" in unknown.stderr, unknown.stderr
    bad = await asyncio.to_thread(
        jobline, ["submit", "music.transcode", "--payload", "[1, 2]"], env
    )
    assert bad.returncode == 2 and "JSON object" in bad.stderr, bad.stderr
    no_auth = await asyncio.to_thread(
        jobline, ["follow", "x"], {"JOBLINE_API_URL": live_server, "JOBLINE_TOKEN": ""}
    )
    assert no_auth.returncode == 2 and "--token" in no_auth.stderr, no_auth.stderr
