"""Database knowledge lives in jobline/dialects: no other module spells a database's SQL,
imports a driver or asks which database it is (issue 15 item 5)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import jobline

PACKAGE = Path(jobline.__file__).parent
# Allowed to know the database: the dialects, the migrations (one directory per database)
# and SQLite's Tortoise engine, which the SQLite dialect names.
OWNERS = ("dialects/", "migrations/", "sqlite_engine.py")
DRIVERS = {"pymysql", "aiomysql", "sqlite3", "aiosqlite", "asyncmy"}
# A database's spelling of SQL: locking reads, upserts, hints, its settings; placeholders
# and quotes in a statement (log messages use %s too: only SQL is looked at for those).
SPELLINGS = ("FOR UPDATE", "ON DUPLICATE", "INSERT OR", "FORCE INDEX", "@@")
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b")
MARKS = ("%s", "?", "`")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def offences(path: Path) -> list[str]:
    """What in one module knows which database it runs on."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"imports {n}" for n in names if n and n.split(".")[0] in DRIVERS]
        elif isinstance(node, ast.Attribute) and node.attr in {"is_sqlite", "dialect"}:
            if isinstance(node.value, ast.Attribute) and node.value.attr == "capabilities":
                found.append("asks capabilities.dialect")
            elif node.attr == "is_sqlite":
                found.append("asks is_sqlite")
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        ):
            found += [f"spells {s!r}" for s in SPELLINGS if s in node.value]
            if node.value == "%s" or SQL.search(node.value):
                found += [f"spells {m!r}" for m in MARKS if m in node.value]
            if node.value in {"mysql", "sqlite"}:
                found.append(f"names {node.value!r}")
    return found


def test_only_the_dialects_know_which_database_jobline_runs_on() -> None:
    found = {
        str(path.relative_to(PACKAGE)): offences(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if not str(path.relative_to(PACKAGE)).startswith(OWNERS)
    }
    assert {name: what for name, what in found.items() if what} == {}


def test_the_seam_check_sees_what_it_looks_for() -> None:
    # A check that finds nothing must be able to find something.
    owner = PACKAGE / "dialects" / "mysql.py"
    assert "imports pymysql" in offences(owner)
    assert "spells '%s'" in offences(owner)
