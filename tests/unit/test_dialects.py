"""The dialects: each database's SQL and capabilities, and one set of outage errors."""

from __future__ import annotations

import uuid

import pymysql
import pytest
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from jobline.api.stream import ends_on_outage
from jobline.dialects import (
    DATABASE_ERRORS,
    UNAVAILABLE,
    MySQL,
    SQLite,
    dialect_for,
    dialect_for_url,
    schema_behind,
)
from jobline.errors import ConfigError
from jobline.jobs import sql

JOB_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
JOB_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")


def test_each_database_spells_an_insert_its_own_way() -> None:
    assert SQLite().insert_sql("t", ["a", "b"], rows=2) == (
        'INSERT INTO "t" ("a", "b") VALUES (?, ?), (?, ?)'
    )
    assert MySQL().insert_sql("t", ["a", "b"]) == "INSERT INTO `t` (`a`, `b`) VALUES (%s, %s)"


def test_insert_if_absent_keeps_the_present_row_and_on_mysql_locks_it() -> None:
    assert SQLite().insert_if_absent_sql("t", ["k", "n"], touch="n") == (
        'INSERT OR IGNORE INTO "t" ("k", "n") VALUES (?, ?)'
    )
    assert MySQL().insert_if_absent_sql("t", ["k", "n"], touch="n") == (
        "INSERT INTO `t` (`k`, `n`) VALUES (%s, %s) ON DUPLICATE KEY UPDATE `n` = `n`"
    )


def test_an_insert_after_a_compare_and_set_is_mysql_s_alone_and_keeps_the_order() -> None:
    """jobs/direct.py sends it after the UPDATE in one request: its rows only if that
    UPDATE changed one row, in `order`'s order (the ids follow it)."""
    assert SQLite().insert_if_one_changed_sql("t", ["k", "n"], 2, order="n") is None
    assert MySQL().insert_if_one_changed_sql("t", ["k", "n"], 2, order="n") == (
        "INSERT INTO `t` (`k`, `n`)"
        " SELECT %s, %s FROM DUAL WHERE ROW_COUNT() = 1"
        " UNION ALL SELECT %s, %s FROM DUAL WHERE ROW_COUNT() = 1 ORDER BY 2"
    )


def test_capabilities_are_the_dialects_not_a_test_of_its_name() -> None:
    sqlite, mysql = SQLite(), MySQL()
    assert (sqlite.supports_for_update, sqlite.supports_skip_locked, sqlite.force_index) == (
        False,
        False,
        False,
    )
    assert (mysql.supports_for_update, mysql.supports_skip_locked, mysql.force_index) == (
        True,
        True,
        True,
    )
    assert sqlite.embedded and not mysql.embedded


def test_the_job_lock_is_a_locking_read_only_where_the_database_has_one() -> None:
    assert sql.statements(MySQL()).lock_job.endswith(" FOR UPDATE")
    assert sql.statements(SQLite()).lock_job == sql.statements(SQLite()).select_job
    select, keys = sql.select_jobs_sql(MySQL(), [JOB_A, JOB_B], lock=True)
    assert select.endswith("WHERE `id` IN (%s, %s) FOR UPDATE") and len(keys) == 2


def test_consecutive_ids_are_trusted_only_where_the_database_promises_them() -> None:
    assert SQLite().consecutive_ids_query is None
    assert MySQL().consecutive_ids_query is not None
    assert MySQL().ids_are_consecutive(1) and MySQL().ids_are_consecutive("0")
    assert not MySQL().ids_are_consecutive(2)  # interleaved: ids are read back


def test_only_a_plain_mysql_url_gets_a_direct_connection() -> None:
    assert MySQL().sync_connector("mysql://u:p@db:3306/jobs?ssl=true") is None
    assert MySQL().sync_connector("mysql://u:p%40ss@db:3306/jobs") is not None
    assert SQLite().sync_connector("sqlite:///tmp/jobline.sqlite3") is None


def test_a_url_names_its_dialect_and_an_unknown_one_is_a_config_error() -> None:
    assert dialect_for_url("sqlite://var/jobline.sqlite3").name == "sqlite"
    assert dialect_for_url("mysql://u:p@db/jobs") is dialect_for("mysql")
    with pytest.raises(ConfigError, match="postgres://"):
        dialect_for_url("postgres://u@db/jobs")


def test_an_outage_is_every_driver_s_connection_errors() -> None:
    for error in (
        OperationalError,
        DBConnectionError,
        ConnectionError,
        pymysql.err.OperationalError,
        pymysql.err.InterfaceError,
    ):
        assert issubclass(error, UNAVAILABLE)
    # A conflict is not an outage (Tortoise's IntegrityError is an OperationalError: the
    # store turns it into its own errors before it gets this far).
    assert not issubclass(pymysql.err.IntegrityError, UNAVAILABLE)
    assert issubclass(IntegrityError, DATABASE_ERRORS)
    assert issubclass(pymysql.err.ProgrammingError, DATABASE_ERRORS)


def test_issue15_a_stream_ends_quietly_on_pymysql_s_connection_errors() -> None:
    # The stream's own error set missed what the HTTP handler had found it needed.
    for error in (pymysql.err.InterfaceError(0, ""), pymysql.err.OperationalError(2013, "")):
        with ends_on_outage():
            raise error


def test_a_missing_table_or_column_is_a_schema_behind_not_an_outage() -> None:
    """The error a request meets on a database without this version's migrations."""
    import sqlite3

    for missing in (
        pymysql.err.OperationalError(1054, "Unknown column 'worker' in 'SELECT'"),
        pymysql.err.ProgrammingError(1146, "Table 'jobline.workers' doesn't exist"),
        sqlite3.OperationalError("no such column: worker"),
        sqlite3.OperationalError("no such table: workers"),
    ):
        assert schema_behind(missing), missing
        # As Tortoise raises it: its own error, the driver's as the cause.
        wrapped = OperationalError(str(missing))
        wrapped.__cause__ = missing
        assert schema_behind(wrapped), missing
    for away in (
        pymysql.err.OperationalError(2003, "Can't connect to MySQL server"),
        pymysql.err.OperationalError(1213, "Deadlock found"),
        sqlite3.OperationalError("database is locked"),
        OperationalError("connection lost"),
        ValueError("no such column"),
    ):
        assert not schema_behind(away), away
