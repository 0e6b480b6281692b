"""normalize_email: one stored spelling per address."""

from __future__ import annotations

import pytest

from jobline.accounts.emails import normalize_email

FULLWIDTH_BOB = "".join(chr(ord(c) + 0xFEE0) for c in "BOB")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("  bob@example.com\t", "bob@example.com"),
        (FULLWIDTH_BOB + "@example.com", "bob@example.com"),
        ("bo\u0308b@example.com", "b\u00f6b@example.com"),  # decomposed -> precomposed
        ("B\u00d6B@example.com", "b\u00f6b@example.com"),
    ],
)
def test_spellings_of_one_address_are_one(typed: str, stored: str) -> None:
    assert normalize_email(typed) == stored


def test_other_letters_stay_other_addresses() -> None:
    spellings = {"bob@example.com", "b\u00f6b@example.com", "b\u00f2b@example.com"}
    assert len({normalize_email(s) for s in spellings}) == 3


def test_normalizing_twice_changes_nothing() -> None:
    for typed in (FULLWIDTH_BOB + "@x.org", "\u1e9e@x.org", "\u2126@x.org"):
        once = normalize_email(typed)
        assert normalize_email(once) == once
