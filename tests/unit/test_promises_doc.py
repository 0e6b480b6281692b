"""docs/promises.md names, for each promise of the documentation, the test that holds it:
every file and test it names must exist, so a renamed or removed test shows up here."""

from __future__ import annotations

import re

from tests.support import REPO

DOC = REPO / "docs" / "promises.md"
ROOTS = {"U": REPO / "tests" / "unit", "I": REPO / "tests" / "integration"}


def test_every_file_named_exists() -> None:
    files = re.findall(r"\b([UI]):([\w/]+\.py)", DOC.read_text())
    assert files
    missing = [f"{kind}:{path}" for kind, path in files if not (ROOTS[kind] / path).is_file()]
    assert missing == []


def test_every_test_named_exists() -> None:
    names = set(re.findall(r"`(test_\w+)(\*?)`", DOC.read_text()))
    assert names
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    # `test_cancel_*` names a family of tests; any other name is a whole test's name.
    word_end = {"*": "", "": r"\b"}
    missing = [
        name + star
        for name, star in sorted(names)
        if not re.search(f"def {name}{word_end[star]}", sources)
    ]
    assert missing == []
