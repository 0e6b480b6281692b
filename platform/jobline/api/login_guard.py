"""The login routes' guard: failed logins past the limits are refused with 429.

The limits and their counting are accounts/throttle.py's; this pure ASGI middleware reads
the login form's account name, asks the counter, and records the route's outcome.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette import status
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobline.accounts.emails import normalize_email
from jobline.accounts.throttle import AttemptCounter, client_address
from jobline.api.errors import problem
from jobline.api.limits import read_body, replay_body
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

        await self.app(scope, replay_body(messages, receive), send_status)
        if outcome == FAILED:
            await self.counter.record(account, address)
        elif outcome in SUCCEEDED:
            await self.counter.clear(account)


async def _username(scope: Scope, messages: list[Message], receive: Receive) -> str:
    """The `username` field of a login form (urlencoded or multipart, as the route reads it)."""
    try:
        form = await Request(scope, replay_body(messages, receive)).form()
    except Exception:
        # Not a form the route could read either: it answers 422, which counts for nothing.
        return ""
    name = form.get("username")
    # The address as accounts store and look it up (accounts/emails.py): every spelling of
    # one account (`Bob@`, `bob@`, fullwidth letters) counts against that account, and only those do.
    return normalize_email(name)[:ACCOUNT_MAX] if isinstance(name, str) else ""
