"""The statements of every append and job read, named here, spelled by a Dialect.

Written by hand: Tortoise's query builder and model instances cost more than the round
trip itself (measured on MariaDB: a job read through the ORM 317 us of CPU, the same
SELECT by hand 170 us). Values go through the models' own fields, so they are encoded and
decoded exactly as the ORM would. The store (async, Tortoise: the functions at the end
run them on its connection) and the direct writer (a task thread's DB-API connection) run
the same statements.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tortoise.models import Model

from jobline.compat.tortoise import from_row, meta
from jobline.dialects import Dialect, dialect_of
from jobline.jobs import pipeline
from jobline.jobs.events import Event, EventType
from jobline.jobs.models import JobEventRow, JobRow
from jobline.jobs.projection import JobView

VIEW_FIELDS = tuple(f.name for f in dataclasses.fields(JobView) if f.name != "id")
_JOB_FIELDS = meta(JobRow).fields_map
_EVENT_FIELDS = meta(JobEventRow).fields_map
_EVENT_COLUMNS = ("job_id", "seq", "type", "attempt", "at", "data", "owner_id")


def view_of(row: JobRow) -> JobView:
    """The view of a job's model instance."""
    return JobView(id=row.id, **{name: getattr(row, name) for name in VIEW_FIELDS})


def event_of(row: JobEventRow) -> Event:
    """The event of an event's model instance."""
    return Event(
        job_id=row.job_id,
        seq=row.seq,
        type=EventType(row.type),
        attempt=row.attempt,
        at=row.at,
        data=row.data,
    )


def row_fields(view: JobView) -> dict[str, Any]:
    """A view's projection columns, by field name."""
    return {name: getattr(view, name) for name in VIEW_FIELDS}


def changed_fields(old: JobView, new: JobView) -> dict[str, Any]:
    """The projection fields whose value differs from `old` to `new`."""
    return {name: value for name, value in row_fields(new).items() if value != getattr(old, name)}


@dataclass(frozen=True, slots=True)
class Statements:
    """A dialect's spelling of the fixed statements."""

    select_job: str
    lock_job: str
    insert_event: str


@functools.cache
def statements(dialect: Dialect) -> Statements:
    """The fixed statements in `dialect` (made once per dialect)."""
    jobs, events = meta(JobRow), meta(JobEventRow)
    columns = ", ".join(dialect.ident(jobs.fields_db_projection[n]) for n in ("id", *VIEW_FIELDS))
    select = f"SELECT {columns} FROM {dialect.ident(jobs.db_table)} WHERE {dialect.ident('id')}={dialect.mark}"
    event_columns = [events.fields_db_projection[n] for n in _EVENT_COLUMNS]
    return Statements(
        select_job=select,
        # Without FOR UPDATE (SQLite) the write lock is the database's, taken at BEGIN.
        lock_job=select + dialect.for_update,
        insert_event=dialect.insert_sql(events.db_table, event_columns),
    )


def job_key(job_id: UUID) -> list[Any]:
    """The parameters of a statement selecting one job by id."""
    return [_JOB_FIELDS["id"].to_db_value(job_id, JobRow)]


def job_view(row: dict[str, Any]) -> JobView:
    """The view of a `jobs` row as the driver returned it (column -> value)."""
    return view_of(from_row(JobRow, row))


def select_jobs_sql(
    dialect: Dialect, job_ids: Sequence[UUID], *, lock: bool
) -> tuple[str, list[Any]]:
    """The SELECT of the jobs among `job_ids`; with `lock`, locking their rows."""
    head = statements(dialect).select_job.rsplit(" WHERE ", 1)[0]
    query = f"{head} WHERE {dialect.ident('id')} IN ({dialect.marks(len(job_ids))})"
    if lock:
        query += dialect.for_update
    return query, [value for job_id in job_ids for value in job_key(job_id)]


def update_sql(
    dialect: Dialect, job_id: UUID, changed: dict[str, Any], at_seq: int | None = None
) -> tuple[str, list[Any]]:
    """The UPDATE writing a job's changed fields; with `at_seq`, only while it is at that seq."""
    q, m = dialect.ident, dialect.mark
    columns = [meta(JobRow).fields_db_projection[name] for name in changed]
    assignments = ", ".join(f"{q(column)}={m}" for column in columns)
    values = [_JOB_FIELDS[name].to_db_value(value, JobRow) for name, value in changed.items()]
    values += job_key(job_id)
    where = f"{q('id')}={m}"
    if at_seq is not None:
        where += f" AND {q('last_seq')}={m}"
        values.append(at_seq)
    return f"UPDATE {q(meta(JobRow).db_table)} SET {assignments} WHERE {where}", values


def update_many_sql(
    dialect: Dialect, changes: Sequence[tuple[JobView, JobView]], *, at_seq: bool = False
) -> tuple[str, list[Any]] | None:
    """One UPDATE writing several jobs' changed fields (a CASE on the id per column), or
    None when nothing changed; with `at_seq`, only the rows still at the old view's seq.

    Only the columns some event changed are sent: an upsert of whole rows re-encoded every
    job's payload, a fifth of the batch's CPU.
    """
    names: dict[str, None] = {}
    for old, new in changes:
        names.update(dict.fromkeys(changed_fields(old, new)))
    if not names:
        return None
    q, m = dialect.ident, dialect.mark
    keys = [job_key(new.id)[0] for _, new in changes]
    assignments, values = [], []
    for name in names:
        column = meta(JobRow).fields_db_projection[name]
        field = _JOB_FIELDS[name]
        whens = " ".join([f"WHEN {m} THEN {m}"] * len(changes))
        assignments.append(f"{q(column)} = CASE {q('id')} {whens} END")
        for key, (_, new) in zip(keys, changes, strict=True):
            values += [key, field.to_db_value(getattr(new, name), JobRow)]
    values += keys
    where = f"{q('id')} IN ({dialect.marks(len(keys))})"
    if at_seq:
        whens = " ".join([f"WHEN {m} THEN {m}"] * len(changes))
        where += f" AND {q('last_seq')} = CASE {q('id')} {whens} END"
        for key, (old, _) in zip(keys, changes, strict=True):
            values += [key, old.last_seq]
    return f"UPDATE {q(meta(JobRow).db_table)} SET {', '.join(assignments)} WHERE {where}", values


def _event_values(event: Event, owner_id: UUID | None) -> list[Any]:
    """An event's row as the INSERT takes it (_EVENT_COLUMNS' order), encoded by its fields."""
    row = (event.job_id, event.seq, event.type, event.attempt, event.at, event.data, owner_id)
    return [
        _EVENT_FIELDS[name].to_db_value(value, JobEventRow)
        for name, value in zip(_EVENT_COLUMNS, row, strict=True)
    ]


def insert_events_sql(
    dialect: Dialect, events: Sequence[Event], owners: Sequence[UUID | None]
) -> tuple[str, list[Any]]:
    """One INSERT of events, each with its job's owner. Where the dialect says so
    (`consecutive_ids_query`), the rows get consecutive ids in order, the first the
    driver's last insert id."""
    head, _, row = statements(dialect).insert_event.partition(" VALUES ")
    values = [
        value
        for event, owner in zip(events, owners, strict=True)
        for value in _event_values(event, owner)
    ]
    return f"{head} VALUES {', '.join([row] * len(events))}", values


@functools.cache
def _insert_events_if_one_changed(dialect: Dialect, rows: int) -> str | None:
    events = meta(JobEventRow)
    columns = [events.fields_db_projection[n] for n in _EVENT_COLUMNS]
    return dialect.insert_if_one_changed_sql(
        events.db_table, columns, rows, order=events.fields_db_projection["seq"]
    )


def insert_events_if_one_changed_sql(
    dialect: Dialect, events: Sequence[Event], owner: UUID | None
) -> tuple[str, list[Any]] | None:
    """insert_events_sql() of one job's events, written only if the statement before it
    changed exactly one row: a compare-and-set UPDATE and its events travel in one
    request. Rows in seq order; None where the dialect cannot."""
    query = _insert_events_if_one_changed(dialect, len(events))
    if query is None:
        return None
    return query, [value for event in events for value in _event_values(event, owner)]


def insert_rows_sql(
    dialect: Dialect, model: type[Model], rows: Sequence[dict[str, Any]]
) -> tuple[str, list[Any]]:
    """One multi-row INSERT of rows, dicts of field values with the same keys, and its
    values in order.

    Values are encoded by the model's fields, as Tortoise's own create() does; fields left
    out get their model default, as create() would give them.
    """
    info = meta(model)
    names = list(rows[0])
    defaults = {
        name: field.default() if callable(field.default) else field.default
        for name, field in info.fields_map.items()
        if name in info.fields_db_projection
        and name not in names
        and field.default is not None
        and not field.generated
    }
    names += defaults
    columns = [info.fields_db_projection[name] for name in names]
    fields = [info.fields_map[name] for name in names]
    values = [
        field.to_db_value(row[name] if name in row else defaults[name], model)
        for row in rows
        for name, field in zip(names, fields, strict=True)
    ]
    return dialect.insert_sql(info.db_table, columns, rows=len(rows)), values


# Run on a Tortoise connection or transaction (`conn`).


async def read_view(conn: Any, job_id: UUID, *, lock: bool = False) -> JobView | None:
    """A job's view, or None; with `lock`, its row locked for the transaction."""
    fixed = statements(dialect_of(conn))
    query = fixed.lock_job if lock else fixed.select_job
    rows = await conn.execute_query_dict(query, job_key(job_id))
    return job_view(rows[0]) if rows else None


async def read_views(conn: Any, job_ids: Sequence[UUID], *, lock: bool) -> list[JobView]:
    """The views of the jobs found among `job_ids`; with `lock`, their rows locked."""
    rows = await conn.execute_query_dict(*select_jobs_sql(dialect_of(conn), job_ids, lock=lock))
    return [job_view(row) for row in rows]


async def update_view(
    conn: Any, job_id: UUID, changed: dict[str, Any], *, at_seq: int | None = None
) -> int:
    """Write the changed fields of a job's row; how many rows changed (0 or 1)."""
    if not changed:
        return 0
    count, _ = await conn.execute_query(*update_sql(dialect_of(conn), job_id, changed, at_seq))
    return int(count)


async def update_views(
    conn: Any, changes: Sequence[tuple[JobView, JobView]], *, at_seq: bool = False
) -> int:
    """Write several jobs' changed fields in one UPDATE; with `at_seq`, only the rows still
    at their old view's seq. How many rows changed."""
    statement = update_many_sql(dialect_of(conn), changes, at_seq=at_seq)
    if statement is None:
        return 0
    count, _ = await conn.execute_query(*statement)
    return int(count)


async def insert_rows(conn: Any, model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows (dicts of field values, the same keys each) in one multi-row INSERT,
    held back to travel with the next statement in a pipelined transaction."""
    if rows:
        await pipeline.write(conn, *insert_rows_sql(dialect_of(conn), model, rows))
