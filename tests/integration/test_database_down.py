"""A database outage during requests is a 503 with a code and Retry-After, never a 500.

The API reaches the (shared) MariaDB through a TCP proxy this test owns, so cutting the
proxy is a real outage for this app alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from jobline.config import Settings
from tests.support import REPO, register

pytestmark = pytest.mark.integration


class CuttableProxy:
    """Forwards TCP to MariaDB until cut; after a cut every connection is refused or reset."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.pipes):
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


@pytest.fixture(scope="module")
async def proxied(
    migrated: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, CuttableProxy]]:
    from jobline.app import create_app

    real = migrated.database_url
    hostport = real.split("@", 1)[1].split("/", 1)[0]
    host, port = hostport.split(":")
    proxy = CuttableProxy(host, int(port))
    proxy_port = await proxy.start()
    settings = migrated.model_copy(
        update={
            "database_url": real.replace(hostport, f"127.0.0.1:{proxy_port}"),
            "var_dir": Path(tmp_path_factory.mktemp("dbdown")),
            "queues_file": REPO / "queues.yaml",
        }
    )
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://jobline.test"
        ) as client,
    ):
        yield client, proxy


async def test_requests_during_a_database_outage_get_503_not_500(
    proxied: tuple[httpx.AsyncClient, CuttableProxy],
) -> None:
    client, proxy = proxied
    _, _, token = await register(client)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/jobs", headers=headers)).status_code == 200

    await proxy.cut()

    # Routes that must read or write jobs; the caller's account itself may come from the
    # API's short-lived user cache, so /users/me is no database probe.
    for method, path in [
        ("GET", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs"),
        ("GET", f"/api/v1/jobs/{uuid.uuid4()}"),
    ]:
        body = (
            {"type": "music.transcode", "payload": {"source": "a.wav"}}
            if method == "POST"
            else None
        )
        r = await client.request(method, path, headers=headers, json=body)
        assert r.status_code == 503, (method, path, r.status_code, r.text)
        assert r.json()["detail"]["code"] == "DATABASE_UNAVAILABLE"
        assert r.headers["retry-after"].isdigit()
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] != "ok"
