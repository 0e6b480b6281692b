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

The address is the ASGI client, i.e. X-Forwarded-For only from proxies uvicorn trusts
(FORWARDED_ALLOW_IPS): behind a proxy, configure it, or every client shares one address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import UTC, datetime, timedelta

from fastapi.responses import JSONResponse
from starlette import status
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobline.accounts.emails import normalize_email
from jobline.accounts.models import LoginFailure
from jobline.api.errors import problem
from jobline.api.limits import _replay, read_body
from jobline.config import Settings

# fastapi-users answers a failed login with 400 (LOGIN_BAD_CREDENTIALS, ...).
FAILED = status.HTTP_400_BAD_REQUEST
SUCCEEDED = frozenset({status.HTTP_200_OK, status.HTTP_204_NO_CONTENT})
# An account name longer than any email is cut before hashing (it is only a key).
ACCOUNT_MAX = 320


class LoginThrottle:
    """Pure ASGI: counts failed logins on the login routes and refuses past the limits."""

    def __init__(self, app: ASGIApp, *, paths: tuple[str, ...], secret: str, settings: Settings):
        self.app = app
        self.paths = frozenset(paths)
        self.counter = AttemptCounter(secret, settings.login_window_seconds, settings)
        self.per_account = settings.login_failures_per_account
        self.per_address = settings.login_failures_per_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        messages = await read_body(receive)
        account = self.counter.key("account", await _username(scope, messages, receive))
        address = self.counter.key("address", client_address(scope))
        wait = await self.counter.blocked((account, self.per_account), (address, self.per_address))
        if wait is not None:
            response = JSONResponse(
                problem(
                    "TOO_MANY_LOGIN_ATTEMPTS",
                    "too many failed logins for this account or from this address; "
                    f"try again in {wait} seconds",
                ),
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return
        outcome = 0

        async def send_status(message: Message) -> None:
            nonlocal outcome
            if message["type"] == "http.response.start":
                outcome = message["status"]
            await send(message)

        await self.app(scope, _replay(messages, receive), send_status)
        if outcome == FAILED:
            await self.counter.record(account, address)
        elif outcome in SUCCEEDED:
            await LoginFailure.filter(key=account).delete()


def client_address(scope: Scope) -> str:
    """The ASGI client's address (uvicorn's: X-Forwarded-For only from trusted proxies)."""
    client = scope.get("client")
    return client[0] if client else ""


class AttemptCounter:
    """Attempts under keyed hashes in `login_failures`, counted within a window.

    Login failures (per account and per address) and registrations (per address,
    accounts/registration.py) are kept apart by the kind in the hashed key.
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

    async def record(self, *keys: str) -> None:
        """One attempt under each key, now."""
        now = datetime.now(UTC)
        await LoginFailure.bulk_create([LoginFailure(key=key, at=now) for key in keys])
        # Rows older than the window count for nothing; failures are rare enough to prune here.
        await LoginFailure.filter(at__lt=now - self.keep).delete()


async def _username(scope: Scope, messages: list[Message], receive: Receive) -> str:
    """The `username` field of a login form (urlencoded or multipart, as the route reads it)."""
    try:
        form = await Request(scope, _replay(messages, receive)).form()
    except Exception:
        # Not a form the route could read either: it answers 422, which counts for nothing.
        return ""
    name = form.get("username")
    # The address as accounts store and look it up (accounts/emails.py): every spelling of
    # one account (`Bob@`, `bob@`, fullwidth letters) counts against that account, and only those do.
    return normalize_email(name)[:ACCOUNT_MAX] if isinstance(name, str) else ""
