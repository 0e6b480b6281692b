"""Tokens and the user's "sessions valid after" mark: which tokens it ends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from jobline.accounts.models import User
from jobline.accounts.tokens import Credential, credential_of, still_valid


def user(after: datetime | None = None, kept: str | None = None) -> User:
    return User(
        id=uuid.uuid4(),
        email="a@example.com",
        hashed_password="x",
        sessions_valid_after=after,
        session_kept=kept,
    )


def credential(issued: datetime, jti: str | None = "j1") -> Credential:
    return Credential("bearer", "sub", issued.timestamp(), jti)


def test_every_token_is_valid_until_sessions_are_ended() -> None:
    assert still_valid(credential(datetime(2020, 1, 1, tzinfo=UTC)), user())


def test_ending_sessions_refuses_tokens_issued_before_but_the_kept_one() -> None:
    now = datetime.now(UTC)
    ended = user(after=now, kept="kept")
    assert not still_valid(credential(now - timedelta(microseconds=1)), ended)
    assert still_valid(credential(now - timedelta(hours=1), jti="kept"), ended)
    assert still_valid(credential(now), ended)
    assert still_valid(credential(now + timedelta(milliseconds=1)), ended)
    # A token without an id cannot be the kept one.
    assert not still_valid(credential(now - timedelta(seconds=1), jti=None), user(now, None))


def test_claims_give_the_credential() -> None:
    found = credential_of({"sub": "u", "iat": 12.5, "jti": "abc"}, "cookie")
    assert found == Credential("cookie", "u", 12.5, "abc")
    # A token from before iat was written counts as issued at the epoch: any end ends it.
    old = credential_of({"sub": "u"}, "bearer")
    assert old == Credential("bearer", "u", 0.0, None)
    assert credential_of({"iat": 1}, "bearer") is None
    assert credential_of({"sub": "u", "iat": True}, "bearer") == Credential(
        "bearer", "u", 0.0, None
    )
