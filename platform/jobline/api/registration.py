"""Who may register: in production no one, unless JOBLINE_REGISTRATION_OPEN says so.

Self-registration lets anyone who can reach the API make an account and submit jobs to
the workers. In production it is closed by default: accounts come from
`jobline users create`, or from a superuser, whose own `POST /auth/register` (with their
token or session) still works. Development and test keep it open. When open, each client address
may try JOBLINE_REGISTRATIONS_PER_ADDRESS times per JOBLINE_REGISTRATION_WINDOW_SECONDS
(every attempt counts, a refused one too: probing which addresses have accounts costs
the same), after which it gets 429 TOO_MANY_REGISTRATIONS with Retry-After.
"""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette import status
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from jobline.accounts.throttle import AttemptCounter, client_address
from jobline.api.errors import problem
from jobline.config import Settings


class RegistrationGate:
    """Pure ASGI in front of POST /auth/register: closed (403) or rate-limited (429)."""

    def __init__(self, app: ASGIApp, *, path: str, secret: str, settings: Settings) -> None:
        self.app = app
        self.path = path
        self.open = settings.registration_is_open
        self.limit = settings.registrations_per_address
        self.counter = AttemptCounter(secret, settings.registration_window_seconds, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if not self.open:
            if await _by_superuser(scope, receive):
                await self.app(scope, receive, send)
                return
            response = JSONResponse(
                problem(
                    "REGISTRATION_CLOSED",
                    "this server creates accounts itself (jobline users create); "
                    "JOBLINE_REGISTRATION_OPEN=true opens registration",
                ),
                status_code=status.HTTP_403_FORBIDDEN,
            )
            await response(scope, receive, send)
            return
        address = self.counter.key("register-address", client_address(scope))
        wait = await self.counter.blocked((address, self.limit))
        if wait is not None:
            response = JSONResponse(
                problem(
                    "TOO_MANY_REGISTRATIONS",
                    f"too many registrations from this address; try again in {wait} seconds",
                ),
                status_code=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(wait)},
            )
            await response(scope, receive, send)
            return
        await self.counter.record(address)
        await self.app(scope, receive, send)


async def _by_superuser(scope: Scope, receive: Receive) -> bool:
    """Whether the request is a superuser's (bearer token or session cookie)."""
    from jobline.accounts.credentials import current_user

    try:
        user = await current_user(Request(scope, receive))
    except HTTPException:
        return False
    return user.is_superuser
