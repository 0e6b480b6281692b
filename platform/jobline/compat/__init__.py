"""Every use jobline makes of a library's private or undocumented internals, one module per library.

Each shortcut here was measured and is worth keeping (bench/README.md says what it saves),
but a library may change its internals in any release. So they live in one folder, each
behind a small function or class with a documented contract; tests/unit/compat/ checks each
contract against the installed version and fails loudly when a new release breaks it; and
pyproject.toml caps each library at the version these tests last passed on. Raising a cap
means running tests/unit/compat on the new version first.

Nothing else in jobline touches a library's `_private` names (tests/unit/compat/test_scan.py).
"""
