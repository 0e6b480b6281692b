"""Failed logins are limited per account and per client address, across API processes.

Each failed login (fastapi-users answers 400) is a row in `login_failures` under two
keys, the account and the client address, so the limits hold across gunicorn workers
and restarts. Past JOBLINE_LOGIN_FAILURES_PER_ACCOUNT failures for one account, or
JOBLINE_LOGIN_FAILURES_PER_ADDRESS from one address, within
JOBLINE_LOGIN_WINDOW_SECONDS, every login attempt for it is answered 429
TOO_MANY_LOGIN_ATTEMPTS with Retry-After, the right password included: a guesser learns
nothing more. The answer is the same whether the account exists or not. A successful
login clears its account's failures. Keys are keyed hashes: what someone typed as a user
name is never stored. The account key is the normalized address (accounts/emails.py),
the one a login looks up exactly: no other spelling reaches the account, and every
spelling that does counts against it.

The counting lives here; the HTTP guard that applies it to the login routes is
api/login_guard.py (LoginThrottle).

The address is the ASGI client, i.e. X-Forwarded-For only from proxies uvicorn trusts
(FORWARDED_ALLOW_IPS): behind a proxy, configure it, or every client shares one address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta

from starlette.types import Scope

from jobline.accounts.models import LoginFailure
from jobline.config import Settings


def client_address(scope: Scope) -> str:
    """The ASGI client's address (uvicorn's: X-Forwarded-For only from trusted proxies)."""
    client = scope.get("client")
    return client[0] if client else ""


class AttemptCounter:
    """Attempts under keyed hashes in `login_failures`, counted within a window.

    Login failures (per account and per address) and registrations (per address,
    api/registration.py) are kept apart by the kind in the hashed key.
    """

    def __init__(self, secret: str, window_seconds: int, settings: Settings) -> None:
        self._key = hashlib.sha256(b"jobline-login:" + secret.encode()).digest()
        self.window = timedelta(seconds=window_seconds)
        # The table is shared: prune only what no counter's window still needs.
        longest = max(settings.login_window_seconds, settings.registration_window_seconds)
        self.keep = timedelta(seconds=longest)

    def key(self, kind: str, value: str) -> str:
        """The stored key of a value: a keyed hash, so what was typed is never stored."""
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    async def blocked(self, *limits: tuple[str, int]) -> int | None:
        """Seconds until the first over-limit key frees up, or None when none is over."""
        now = datetime.now(UTC)
        since = now - self.window
        for key, limit in limits:
            recent = LoginFailure.filter(key=key, at__gt=since)
            # Bounded: never more than `limit` rows are read to decide.
            ats = await recent.order_by("-at").limit(limit).values_list("at", flat=True)
            if len(ats) >= limit:
                oldest = min(ats)  # type: ignore[type-var]
                assert isinstance(oldest, datetime)
                return max(1, math.ceil((oldest + self.window - now).total_seconds()))
        return None

    async def clear(self, key: str) -> None:
        """Forget the attempts under `key` (a successful login clears its account's)."""
        await LoginFailure.filter(key=key).delete()

    async def record(self, *keys: str) -> None:
        """One attempt under each key, now."""
        now = datetime.now(UTC)
        await LoginFailure.bulk_create([LoginFailure(key=key, at=now) for key in keys])
        # Rows older than the window count for nothing; failures are rare enough to prune here.
        await LoginFailure.filter(at__lt=now - self.keep).delete()
