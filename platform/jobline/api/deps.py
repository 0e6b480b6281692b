"""Dependency aliases routes declare: who is calling, the service, and a job they may see."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from jobline.accounts.credentials import current_user
from jobline.accounts.models import User
from jobline.api.cursors import CursorCodec
from jobline.jobs.projection import JobView
from jobline.jobs.service import Caller, JobService

# Not fastapi-users' current_user dependency: the same rules at a fraction of the cost.
CurrentUser = Annotated[User, Depends(current_user)]

# The dependencies below are async although they never wait: FastAPI runs a plain `def`
# dependency on a worker thread, a thread hop per request for a dictionary lookup.


async def get_service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


async def get_cursors(request: Request) -> CursorCodec:
    codec: CursorCodec = request.app.state.cursors
    return codec


async def get_caller(user: CurrentUser) -> Caller:
    return Caller(id=user.id, is_superuser=user.is_superuser)


ServiceDep = Annotated[JobService, Depends(get_service)]
CursorsDep = Annotated[CursorCodec, Depends(get_cursors)]
CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_job(job_id: UUID, caller: CallerDep, service: ServiceDep) -> JobView:
    """The job in the path, if it exists and the caller may see it (else 404)."""
    return await service.get(caller, job_id)


JobDep = Annotated[JobView, Depends(get_job)]
