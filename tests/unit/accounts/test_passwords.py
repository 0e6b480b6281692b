"""Password rules (accounts/passwords.py)."""

from __future__ import annotations

import pytest

from jobline.accounts.passwords import password_problem

EMAIL = "Grace.Hopper@example.com"


def check(password: str) -> str | None:
    return password_problem(password, EMAIL, min_length=12, max_length=64)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "at least 12"),
        ("x" * 65, "at most 64"),
        (" " * 12, "blanks"),
        ("my-grace.hopper-password", "name part"),
        ("pw:GRACE.HOPPER@EXAMPLE.COM", "email address"),
    ],
)
def test_refused(password: str, reason: str) -> None:
    problem = check(password)
    assert problem is not None and reason in problem


@pytest.mark.parametrize("password", ["correct-horse-battery-staple", "x" * 64, "gra" + "c" * 12])
def test_accepted(password: str) -> None:
    assert check(password) is None


def test_a_short_local_part_is_not_searched() -> None:
    assert (
        password_problem("ab-is-in-this-one", "ab@example.com", min_length=1, max_length=99) is None
    )
