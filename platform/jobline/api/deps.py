"""Dependency aliases routes declare: who is calling, the service, and a job they may see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from jobline.accounts.backends import SECURITY
from jobline.accounts.credentials import current_user
from jobline.api.cursors import CursorCodec
from jobline.jobs.projection import JobView
from jobline.jobs.service import Caller, JobService

# The dependencies below are async although they never wait: FastAPI runs a plain `def`
# dependency on a worker thread, a thread hop per request for a dictionary lookup.


async def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def get_cursors(request: Request) -> CursorCodec:
    codec: CursorCodec = request.app.state.cursors
    return codec


async def get_caller(request: Request) -> Caller:
    # Not fastapi-users' current_user dependency: the same rules at a fraction of the cost,
    # called rather than declared (one dependency fewer to solve).
    user = await current_user(request)
    return Caller(id=user.id, is_superuser=user.is_superuser)


ServiceDep = Annotated[JobService, Depends(get_service)]
CursorsDep = Annotated[CursorCodec, Depends(get_cursors)]
CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_job(job_id: UUID, caller: CallerDep, service: ServiceDep) -> JobView:
    """The job in the path, if it exists and the caller may see it (else 404)."""
    return await service.get(caller, job_id)


JobDep = Annotated[JobView, Depends(get_job)]


class CallerRoute(APIRoute):
    """A route that documents the credentials it takes when it takes a caller.

    FastAPI documents a route's security from its security dependencies; get_caller reads
    the credentials itself (accounts/credentials.py, by accounts/backends.py's rules), so
    the route says it instead.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if _takes_caller(self.dependant):
            self.openapi_extra = {"security": SECURITY, **(self.openapi_extra or {})}


def _takes_caller(dependant: Dependant) -> bool:
    return any(d.call is get_caller or _takes_caller(d) for d in dependant.dependencies)
