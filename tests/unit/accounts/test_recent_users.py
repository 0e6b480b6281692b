"""RecentUsers: the per-process cache that spares authenticated requests a user read."""

from __future__ import annotations

import uuid

import pytest

from jobline.accounts.models import User
from jobline.accounts.users import RecentUsers


def a_user() -> User:
    return User(id=uuid.uuid4(), email=f"{uuid.uuid4().hex[:6]}@example.com", hashed_password="x")


def test_a_user_is_reused_within_the_interval_and_read_again_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("jobline.accounts.users.time.monotonic", lambda: clock[0])
    recent = RecentUsers()
    user = a_user()
    recent.put(user)

    clock[0] += 4.9
    assert recent.get(user.id, 5.0) is user
    clock[0] += 0.2
    assert recent.get(user.id, 5.0) is None, "older than the interval: read again"


def test_expired_entries_are_dropped_so_the_cache_holds_only_recent_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr("jobline.accounts.users.time.monotonic", lambda: clock[0])
    recent = RecentUsers()
    old = [a_user() for _ in range(100)]
    for user in old:
        recent.put(user)
    clock[0] += 10
    fresh = a_user()
    recent.put(fresh)

    assert recent.get(fresh.id, 5.0) is fresh
    assert len(recent._users) == 1


def test_a_forgotten_user_is_read_again() -> None:
    recent = RecentUsers()
    user = a_user()
    recent.put(user)
    recent.forget(user.id)
    assert recent.get(user.id, 60.0) is None
