"""Only jobline/compat/ reaches into a library's private names.

A `x._name` outside compat/ is allowed on `self`/`cls`, or when jobline itself defines
`_name` (a method, an attribute it sets, a module-level name) and compat/ does not use it
as a library's: then it is jobline's own private. Anything else is a library's internal,
and belongs behind an adapter in compat/ with a contract test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import jobline

PACKAGE = Path(jobline.__file__).parent
COMPAT = PACKAGE / "compat"
SOURCES = sorted(PACKAGE.rglob("*.py"))
# Underscored but documented and public: os._exit, and namedtuple's methods.
PUBLIC = {"_exit", "_replace", "_asdict", "_fields", "_make"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _own_names() -> set[str]:
    """Every private name jobline defines: functions, classes, assigned names and attributes."""
    names: set[str] = set()
    for path in SOURCES:
        if COMPAT in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[0])
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {name for name in names if _private(name)} | PUBLIC


def _compat_names() -> set[str]:
    """The library internals compat/ reaches (never jobline's own, even if it reuses a name)."""
    return {
        node.attr
        for path in COMPAT.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and _private(node.attr)
    }


def _on_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}


def library_internals(source: str, own: set[str]) -> list[str]:
    """`x._name` reads of names jobline does not define, and imports of private library names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and node.attr not in own
            and not _on_self(node)
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith("jobline"):
            module = node.module or ""
            if any(_private(part) for part in module.split(".")):
                found.append(f"line {node.lineno}: from {module}")
            found += [f"line {node.lineno}: {a.name}" for a in node.names if _private(a.name)]
    return found


def test_the_scan_finds_a_library_internal() -> None:
    assert library_internals("transport._write = send", set()) == ["line 1: ._write"]
    assert library_internals("from kombu._private import x", set()) == [
        "line 1: from kombu._private"
    ]
    assert library_internals("super()._send_with_timeout(send, m)", set()) != []
    assert library_internals("self._write(data)", set()) == []
    assert library_internals("writer._flush()", {"_flush"}) == []
    assert {"_meta", "_init_from_db", "_write", "_send_with_timeout"} <= LIBRARY


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if COMPAT not in p.parents],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_no_module_outside_compat_uses_a_library_internal(path: Path) -> None:
    assert library_internals(path.read_text(), OWN) == [], "move it behind jobline/compat/"


LIBRARY = _compat_names()
OWN = _own_names() - LIBRARY
