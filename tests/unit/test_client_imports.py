"""jobline.client runs in programs that have none of the server's packages loaded."""

from __future__ import annotations

import subprocess
import sys

SERVER_PACKAGES = (
    "aiomysql",
    "amqp",
    "celery",
    "fastapi",
    "kombu",
    "pymysql",
    "sse_starlette",
    "starlette",
    "tortoise",
)


def test_importing_the_client_loads_no_server_package() -> None:
    probe = (
        "import sys, jobline.client, jobline.client_cli; "
        f"print(' '.join(sorted(p for p in {SERVER_PACKAGES!r} if p in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
