"""The databases jobline runs on, each a Dialect, and what an outage of any of them raises.

`dialect_of(conn)` for a Tortoise connection, `dialect_for_url(url)` for a configured one.
A new database: a module with its Dialect subclass, one line in DIALECTS.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tortoise.exceptions import (
    BaseORMException,
    DBConnectionError,
    IntegrityError,
    OperationalError,
)

from jobline.dialects.base import Dialect
from jobline.dialects.mysql import MySQL
from jobline.dialects.sqlite import SQLite
from jobline.errors import ConfigError

DIALECTS: dict[str, Dialect] = {dialect.name: dialect for dialect in (SQLite(), MySQL())}

# What a database out of reach (restarting, unreachable, a connection lost) raises: an
# outage to wait out or answer with 503, not a bug. Tortoise wraps most; the drivers' own
# errors escape it in places (each dialect's `unavailable_errors`).
UNAVAILABLE: tuple[type[Exception], ...] = (
    OperationalError,
    DBConnectionError,
    ConnectionError,
    OSError,
    *(error for dialect in DIALECTS.values() for error in dialect.unavailable_errors),
)
# Anything the database layer may raise: for loops that must outlive every database error
# (the relay) and commands that report it in one line (the CLI).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    BaseORMException,
    OSError,
    *(error for dialect in DIALECTS.values() for error in dialect.driver_errors),
)

# What a database refusing a statement's data raises (refused_data() tells it from an
# outage: Tortoise's IntegrityError is an OperationalError).
DATA_ERRORS: tuple[type[Exception], ...] = (
    IntegrityError,
    *(error for dialect in DIALECTS.values() for error in dialect.data_errors),
)
# How far down an error's chain (Tortoise wraps the driver's error) refused_data() looks.
ERROR_CHAIN_DEPTH = 5


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error and those it wraps (Tortoise wraps the driver's), up to ERROR_CHAIN_DEPTH."""
    seen: BaseException | None = exc
    for _ in range(ERROR_CHAIN_DEPTH):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def refused_data(exc: BaseException) -> bool:
    """Whether the database refused the data of a statement (a value it cannot store).

    Such an error is the request's, not an outage: retrying it fails the same way, and
    answering 503 would invite a retry. Tortoise wraps the driver's error; the chain is
    followed to it, and the first driver's error met decides.
    """
    for seen in _chain(exc):
        for dialect in DIALECTS.values():
            verdict = dialect.refuses_data(seen)
            if verdict is not None:
                return verdict
    return False


def schema_behind(exc: BaseException) -> bool:
    """Whether an error (or one it wraps) says a table or column the code reads is missing:
    the database lacks migrations of this version. Not an outage: a retry fails the same
    way until an operator runs `jobline migrate`."""
    return any(d.lacks_schema(seen) for seen in _chain(exc) for d in DIALECTS.values())


def dialect_for(name: str) -> Dialect:
    """The dialect of a Tortoise dialect name ("sqlite", "mysql")."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"no SQL dialect for database {name!r}") from None


def dialect_of(conn: Any) -> Dialect:
    """The dialect of a Tortoise connection (or transaction)."""
    return dialect_for(conn.capabilities.dialect)


def dialect_for_url(database_url: str) -> Dialect:
    """The dialect of a database URL (sqlite://..., mysql://...); ConfigError for another."""
    scheme = database_url.partition(":")[0]
    if scheme not in DIALECTS:
        known = ", ".join(f"{name}://" for name in DIALECTS)
        raise ConfigError(f"JOBLINE_DATABASE_URL: no support for {scheme}:// ({known} are)")
    return DIALECTS[scheme]


__all__ = [
    "DATABASE_ERRORS",
    "DATA_ERRORS",
    "DIALECTS",
    "UNAVAILABLE",
    "Dialect",
    "MySQL",
    "SQLite",
    "dialect_for",
    "dialect_for_url",
    "dialect_of",
    "refused_data",
    "schema_behind",
]
