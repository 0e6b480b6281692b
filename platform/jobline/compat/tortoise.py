"""Tortoise ORM internals: a model's metadata (`Model._meta`), building an instance from a
row (`Model._init_from_db`), letting go of a context whose close did not finish, and a
mend of the pooled transaction whose BEGIN fails. Tested with tortoise-orm 1.1.

The store writes its hot statements by hand (a job read through the query builder costs
about twice the CPU, bench/README.md) but encodes and decodes values through the models'
own fields, so they match the ORM's exactly; meta() and from_row() are how it reaches them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar, cast

from tortoise.fields import Field
from tortoise.models import Model

M = TypeVar("M", bound=Model)


class ModelMeta(Protocol):
    """The part of Tortoise's MetaInfo jobline reads."""

    # field name -> Field (to_db_value / default / generated)
    fields_map: dict[str, Field[Any]]
    # field name -> column name, for the fields stored in the model's own table
    fields_db_projection: dict[str, str]
    db_table: str


def meta(model: type[Model]) -> ModelMeta:
    """The model's fields, their columns and its table."""
    return cast(ModelMeta, model._meta)


def from_row(model: type[M], row: Mapping[str, Any]) -> M:
    """An instance of `model` from a row as the driver returned it (column -> value),
    each value decoded by its field, as Tortoise's own queries build instances."""
    return model._init_from_db(**row)


def context_left_open() -> bool:
    """Whether the process-wide context of `Tortoise.init(_enable_global_fallback=True)`
    is still set: no close_db() finished since the last open_db()."""
    from tortoise import context

    return context._global_context is not None


def abandon_context() -> None:
    """Let go of the process-wide context `Tortoise.init(_enable_global_fallback=True)`
    set, as a completed `close_connections()` does: while it is set, a later init refuses
    to run ("Global context fallback is already enabled")."""
    from tortoise import context

    context._global_context = None


def terminate_pools(clients: Iterable[Any]) -> None:
    """Close the connections each client's pool has lent out (aiomysql's `terminate`): a
    pool's close waits for them to come back, which a task stuck on one never does."""
    for client in clients:
        pool = getattr(client, "_pool", None)
        if pool is not None:
            pool.terminate()


def release_when_begin_fails() -> None:
    """Mend Tortoise's pooled transaction (`in_transaction` on MySQL), once per process.

    Its `__aenter__` takes a connection from the pool, then sends BEGIN. When BEGIN fails
    (the task cancelled while it waits, as on shutdown; the connection lost) `__aexit__`
    never runs: the connection is never given back, the pool is one smaller for good, and
    closing the pool waits for it for ever. Here such a connection, whose state is unknown,
    is closed and given back, and the task's connection context restored.
    """
    from tortoise.backends.base.client import TransactionContextPooled
    from tortoise.connection import get_connections

    original = TransactionContextPooled.__aenter__
    if getattr(original, "jobline_mended", False):
        return

    async def __aenter__(self: Any) -> Any:
        try:
            return await original(self)
        except BaseException:
            token = getattr(self, "token", None)
            if token is not None:
                get_connections().reset(token)
            pool = self.client._parent._pool
            connection = self.client._connection
            if pool is not None and connection is not None and connection in pool._used:
                connection.close()
                await pool.release(connection)
            raise

    __aenter__.jobline_mended = True  # type: ignore[attr-defined]
    TransactionContextPooled.__aenter__ = __aenter__  # type: ignore[method-assign]
