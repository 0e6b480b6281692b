"""Open streams end when the session that opened them does.

A stream is authenticated once, when it opens, and may then stay open for hours. Every
open stream of an API process registers its credential here; one task per process
re-validates all of them every JOBLINE_SSE_SESSION_CHECK_SECONDS with two queries in all
(however many streams are open): the users behind them (deleted, deactivated, or their
sessions ended by a password or email change, accounts/sessions.py) and the cookie
sessions among them that were logged out. A stream whose credential fails is ended (the
SSE response closes cleanly; the browser's reconnect then gets 401).

Why a periodic check rather than a check per stream or a broadcast: a per-stream check
would cost a query per stream per interval (a thousand streams, hundreds of queries a
second); a broadcast of revocations would need a second channel besides the database,
and a missed message would leave a stream open for ever. One batched read per interval
is bounded, cannot miss anything, and a logout or a user change made through this
process checks at once (`check_now`): other processes see it within the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jobline.accounts.models import RevokedSession, User
from jobline.accounts.tokens import Credential, still_valid
from jobline.waiting import wait_event

log = logging.getLogger("jobline.accounts")
# Ids per IN (...) list: far under any statement or placeholder limit.
CHUNK = 500


@dataclass(eq=False)
class Watched:
    """One open stream: who opened it, with what; `ended` is set when that is revoked."""

    user_id: uuid.UUID
    credential: Credential
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class SessionWatch:
    """The open streams of this process and the task that re-validates their sessions."""

    def __init__(self) -> None:
        self.interval = 2.0
        self._watched: set[Watched] = set()
        self._task: asyncio.Task[None] | None = None
        # Made by the task, on its own event loop (tests run several loops in turn).
        self._now: asyncio.Event | None = None

    @contextlib.contextmanager
    def watching(
        self, user_id: uuid.UUID, credential: Credential, interval: float
    ) -> Iterator[Watched]:
        """Watch one stream's session, every `interval` seconds, for as long as the block runs."""
        watched = Watched(user_id, credential)
        self._watched.add(watched)
        self.interval = interval
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="jobline-session-watch"
            )
        try:
            yield watched
        finally:
            self._watched.discard(watched)

    def check_now(self) -> None:
        """Re-validate at once (a logout or an account change made in this process)."""
        if self._now is not None and self._task is not None and not self._task.done():
            self._now.set()

    async def _run(self) -> None:
        now = self._now = asyncio.Event()
        while self._watched:
            await wait_event(now, self.interval)
            now.clear()
            try:
                await self.check()
            except Exception as exc:
                # A database outage ends no stream: the next round tries again.
                log.warning("re-validating the sessions of open streams failed: %r", exc)

    async def check(self) -> int:
        """End every watched stream whose session is no longer valid; how many were ended."""
        watched = list(self._watched)
        if not watched:
            return 0
        users = await _users({w.user_id for w in watched})
        revoked = await _revoked({w.credential.jti for w in watched if _is_cookie(w)})
        ended = 0
        for w in watched:
            user = users.get(w.user_id)
            valid = (
                user is not None
                and user.is_active
                and still_valid(w.credential, user)
                and not (_is_cookie(w) and w.credential.jti in revoked)
            )
            if not valid:
                w.ended.set()
                self._watched.discard(w)
                ended += 1
        return ended


def _is_cookie(w: Watched) -> bool:
    return w.credential.kind == "cookie" and w.credential.jti is not None


def _chunks(values: set[Any]) -> Iterator[list[Any]]:
    items = sorted(values, key=str)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


async def _users(ids: set[uuid.UUID]) -> dict[uuid.UUID, User]:
    # Straight from the database, not through the short user cache: the point is to see
    # a change another process made.
    found: dict[uuid.UUID, User] = {}
    for chunk in _chunks(ids):
        fields = ("id", "is_active", "sessions_valid_after", "session_kept")
        for user in await User.filter(id__in=chunk).only(*fields):
            found[user.id] = user
    return found


async def _revoked(jtis: set[str | None]) -> set[str]:
    out: set[str] = set()
    for chunk in _chunks({j for j in jtis if j is not None}):
        rows = await RevokedSession.filter(jti__in=chunk).values_list("jti", flat=True)
        out.update(str(jti) for jti in rows)
    return out


session_watch = SessionWatch()
