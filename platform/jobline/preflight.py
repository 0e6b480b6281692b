"""Start-up checks: is the database there, is the broker there, said in one line each.

A process that cannot reach either would otherwise start and then fail on its first job or
request, with a traceback far from the cause; commands check first and stop with
`DatabaseUnavailable` / `BrokerUnavailable` naming which service and where.
"""

from __future__ import annotations

import anyio
from kombu import Connection
from tortoise import connections

from jobline.config import Settings, redact_url
from jobline.db import close_db, open_db
from jobline.errors import BrokerUnavailable, DatabaseUnavailable, reason
from jobline.queueing.app import broker_options


async def check_database(settings: Settings) -> None:
    """Connect and run one query; DatabaseUnavailable names the database on failure."""
    where = redact_url(settings.database_url)
    try:
        with anyio.fail_after(settings.preflight_timeout_seconds):
            await open_db(settings)
            await connections.get("default").execute_query("SELECT 1")
    except TimeoutError:
        raise DatabaseUnavailable(
            f"database {where} is unreachable: no answer in {settings.preflight_timeout_seconds:g}s"
        ) from None
    except Exception as exc:
        raise DatabaseUnavailable(f"database {where} is unreachable: {reason(exc)}") from exc
    finally:
        # Outside the timed scope, whose deadline would cancel this too: the process may open
        # the database again (Tortoise allows one global context at a time).
        await close_db()


def check_broker(settings: Settings) -> None:
    """Open one broker connection; BrokerUnavailable names the broker on failure."""
    where = redact_url(settings.broker_url)
    connection = Connection(
        settings.broker_url,
        transport_options=broker_options(settings),
        connect_timeout=settings.preflight_timeout_seconds,
    )
    try:
        connection.ensure_connection(max_retries=1, timeout=settings.preflight_timeout_seconds)
    except Exception as exc:
        raise BrokerUnavailable(f"broker {where} is unreachable: {reason(exc)}") from exc
    finally:
        connection.release()


async def check_services(settings: Settings, *, broker: bool = True) -> None:
    """The database, then (unless told not to) the broker."""
    await check_database(settings)
    if broker:
        await anyio.to_thread.run_sync(check_broker, settings)
