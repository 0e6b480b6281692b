"""VerifiedTokens: bearer tokens verified once, with JWTStrategy's verdict every time."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi_users.authentication import JWTStrategy

from jobline.accounts.backends import VerifiedTokens
from jobline.accounts.models import User

SECRET = "unit-secret-" + "y" * 40
AUDIENCE = ["fastapi-users:auth"]


def strategy() -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


def token(secret: str | None = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    payload: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "aud": AUDIENCE,
        "exp": datetime.now(UTC) + timedelta(hours=1),
    }
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(payload, secret, algorithm=algorithm)  # type: ignore[arg-type]


def counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    decode = jwt.decode

    def counted(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return decode(token, *args, **kwargs)

    monkeypatch.setattr("jobline.accounts.backends.jwt.decode", counted)
    return calls


async def test_the_strategys_own_token_gives_its_subject_verified_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = User(id=uuid.uuid4(), email="a@example.com", hashed_password="x")
    written = await strategy().write_token(user)
    calls = counting_decode(monkeypatch)
    tokens = VerifiedTokens(strategy())
    for _ in range(3):
        assert tokens.subject(written, 5.0) == str(user.id)
    assert calls == [written]


def test_bad_tokens_are_refused_every_time_and_never_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    good = token()
    header, payload, signature = good.split(".")
    bad = {
        "expired": token(exp=datetime.now(UTC) - timedelta(seconds=5)),
        "tampered signature": f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}",
        "wrongly signed": token("another-secret-" + "x" * 40),
        "alg none": token(None, "none"),
        "HS512 with our secret": token(algorithm="HS512"),
        "other audience": token(aud=["someone-else"]),
        "cookie audience": token(aud=["jobline:cookie-session"]),
        "no subject": token(sub=None),
        "a subject that is not text": token(sub=42),
        "garbage": "not.a.token",
        "empty": "",
    }
    calls = counting_decode(monkeypatch)
    tokens = VerifiedTokens(strategy())
    for name, text in bad.items():
        for _ in range(2):
            assert tokens.subject(text, 5.0) is None, name
    assert len(calls) == 2 * len(bad), "a refused token is verified in full every time"


def test_a_kept_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=30)
    text = token(exp=expires)
    tokens = VerifiedTokens(strategy())
    assert tokens.subject(text, 3600.0) is not None
    monkeypatch.setattr("jobline.accounts.backends.time.time", lambda: int(expires.timestamp()))
    assert tokens.subject(text, 3600.0) is None, "at its exp a token is expired (PyJWT: exp <= now)"


def test_a_token_is_verified_again_after_keep_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("jobline.accounts.backends.time.monotonic", lambda: clock[0])
    calls = counting_decode(monkeypatch)
    tokens = VerifiedTokens(strategy())
    text = token()
    tokens.subject(text, 5.0)
    clock[0] += 4.9
    tokens.subject(text, 5.0)
    assert len(calls) == 1
    clock[0] += 0.2
    tokens.subject(text, 5.0)
    assert len(calls) == 2


def test_nothing_is_kept_when_the_cache_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting_decode(monkeypatch)
    tokens = VerifiedTokens(strategy())
    text = token()
    assert tokens.subject(text, 0.0) is not None
    assert tokens.subject(text, 0.0) is not None
    assert len(calls) == 2
