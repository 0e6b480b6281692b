"""The SQL a database spells its own way, and what it can do: one object per database.

The store, the outbox, the quotas and the audit log write their statements through a
Dialect and ask it what the database supports (`supports_for_update`, `force_index`...),
never which database it is. Supporting another database is a new module beside
`sqlite.py` and `mysql.py`, registered in `dialects/__init__.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar


class Dialect:
    """SQL differences and capabilities of one database (its driver under Tortoise).

    Subclasses set the class attributes; the methods build statements from them.
    """

    # Tortoise's `conn.capabilities.dialect` for this database; the URL scheme too.
    name: ClassVar[str]
    # Its name for people (error messages).
    label: ClassVar[str]
    # An embedded database (a file beside the app): fine for development, refused in
    # production.
    embedded: ClassVar[bool] = False
    # Identifier quote and the driver's parameter placeholder.
    quote: ClassVar[str]
    mark: ClassVar[str]
    # SELECT ... FOR UPDATE locks the rows read. Without it a writer must hold the whole
    # database's write lock (SQLite begins its writes as the writer: sqlite_engine.py).
    supports_for_update: ClassVar[bool]
    # FOR UPDATE SKIP LOCKED: concurrent claimers skip each other's rows.
    supports_skip_locked: ClassVar[bool]
    # Index hints (FORCE INDEX): the keyset pages name their index, the planner may not.
    force_index: ClassVar[bool]
    # A query whose one value says whether the rows of one multi-row INSERT get
    # consecutive auto-increment ids (see ids_are_consecutive); None: never assumed.
    consecutive_ids_query: ClassVar[str | None] = None
    # What the driver raises, beyond Tortoise's own errors, when the database is out of
    # reach, and the root of everything it raises.
    unavailable_errors: ClassVar[tuple[type[Exception], ...]] = ()
    driver_errors: ClassVar[tuple[type[Exception], ...]] = ()
    # What the driver raises for data the database will not store (refuses_data()).
    data_errors: ClassVar[tuple[type[Exception], ...]] = ()
    # Several statements may travel in one request and writes wait for the next one
    # (jobs/pipeline.py): a server across a network, whose driver allows it.
    pipelines: ClassVar[bool] = False
    # Named locks of the server (fair-share slots: queueing/fairness.py).
    supports_named_locks: ClassVar[bool] = False
    # An expression for the database server's clock, in milliseconds since the epoch:
    # workers' heartbeats are written and judged by it (jobs/workers.py), so the hosts'
    # own clocks never enter the comparison.
    now_ms: ClassVar[str]

    def as_tortoise_error(self, exc: Exception) -> Exception:
        """The error Tortoise's own client raises for `exc`, one of the driver's, when a
        statement is sent beside Tortoise (jobs/pipeline.py); `exc` itself if none."""
        return exc

    def ident(self, name: str) -> str:
        """A table or column name, quoted."""
        return f"{self.quote}{name}{self.quote}"

    def marks(self, count: int) -> str:
        """`count` placeholders, comma-separated."""
        return ", ".join([self.mark] * count)

    @property
    def for_update(self) -> str:
        """The suffix of a locking read (empty where the database has none)."""
        return " FOR UPDATE" if self.supports_for_update else ""

    def insert_sql(self, table: str, columns: Sequence[str], rows: int = 1) -> str:
        """An INSERT of `rows` rows of `columns`, all values as placeholders."""
        row = f"({self.marks(len(columns))})"
        names = ", ".join(self.ident(c) for c in columns)
        return f"INSERT INTO {self.ident(table)} ({names}) VALUES {', '.join([row] * rows)}"

    def insert_if_one_changed_sql(
        self, table: str, columns: Sequence[str], rows: int, order: str
    ) -> str | None:
        """insert_sql() whose rows are written only if the statement before it, in the same
        request, changed exactly one row; in the order of column `order`. None where the
        database cannot tell (a compare-and-set then needs its answer first)."""
        return None

    def insert_if_absent_sql(self, table: str, columns: Sequence[str], touch: str) -> str:
        """An INSERT of one row that leaves a row with the same key as it was.

        Where rows are locked one by one, a present row is still locked, as an update of
        `touch` to itself would lock it.
        """
        raise NotImplementedError

    def tortoise_connection(
        self, database_url: str, *, pool_max: int, busy_timeout_ms: int
    ) -> str | dict[str, Any]:
        """Tortoise's connection config for `database_url` (pool size, timeouts, engine)."""
        return database_url

    def refuses_data(self, exc: BaseException) -> bool | None:
        """Whether a driver error says the database refused a statement's data (a value it
        cannot store: retrying fails the same way); None for an error not the driver's."""
        return True if isinstance(exc, self.data_errors) else None

    def lacks_schema(self, exc: BaseException) -> bool:
        """Whether a driver error says a table or column is missing: the database is behind
        the code's migrations (`jobline migrate` was not run), not away."""
        return False

    def first_free_lock_sql(self, key_columns: Sequence[str], count: int) -> str:
        """An expression taking the first free one of `count` named locks of a row's key
        (`key_columns`' values, server-wide): the lock's name, or NULL when all are held."""
        raise NotImplementedError(f"{self.label} has no named locks")

    def release_lock_sql(self) -> str:
        """The statement releasing a named lock (one parameter: its name)."""
        raise NotImplementedError(f"{self.label} has no named locks")

    def database_lock_sql(self) -> str:
        """A SELECT taking a named lock of this database (parameters: the lock's name, the
        seconds to wait): one value, 1 when taken."""
        raise NotImplementedError(f"{self.label} has no named locks")

    def database_unlock_sql(self) -> str:
        """The statement releasing database_lock_sql()'s lock (one parameter: its name)."""
        raise NotImplementedError(f"{self.label} has no named locks")

    def ids_are_consecutive(self, value: Any) -> bool:
        """Whether the value `consecutive_ids_query` returned promises consecutive ids."""
        return False

    def sync_connector(self, database_url: str) -> Callable[[], Any] | None:
        """A function opening a plain synchronous connection (jobs/direct.py), or None
        where the database has no such path."""
        return None
