"""A database outage during requests is a 503 with a code and Retry-After, never a 500.

The API reaches the (shared) MariaDB through a TCP proxy this test owns
(tests/integration/db_proxy.py), so cutting the proxy is a real outage for this app alone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from jobline.config import Settings
from tests.integration.db_proxy import DatabaseProxy
from tests.support import REPO, register

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def proxied(
    migrated: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, DatabaseProxy]]:
    from jobline.app import create_app

    proxy = DatabaseProxy(migrated.database_url)
    settings = migrated.model_copy(
        update={
            "database_url": await proxy.start(),
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
    proxied: tuple[httpx.AsyncClient, DatabaseProxy],
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
