"""Domain errors -> HTTP, in one table; every error body is {"detail": {"code", "message"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette import status

from jobline import errors
from jobline.dialects import UNAVAILABLE

log = logging.getLogger("jobline.api")
# What a client is told to wait after a 503 for a database outage.
RETRY_AFTER_SECONDS = 2

STATUS_OF: dict[type[errors.JoblineError], int] = {
    errors.JobNotFound: status.HTTP_404_NOT_FOUND,
    errors.UnknownJobType: status.HTTP_422_UNPROCESSABLE_CONTENT,
    errors.InvalidPayload: status.HTTP_422_UNPROCESSABLE_CONTENT,
    errors.PayloadTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    errors.InvalidCursor: status.HTTP_400_BAD_REQUEST,
    errors.InvalidLastEventId: status.HTTP_400_BAD_REQUEST,
    errors.InvalidTransition: status.HTTP_409_CONFLICT,
    errors.JobFinished: status.HTTP_409_CONFLICT,
    errors.JobNotRetryable: status.HTTP_409_CONFLICT,
    errors.IdempotencyConflict: status.HTTP_409_CONFLICT,
    errors.BrokerUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    errors.DatabaseUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    errors.SuperuserRequired: status.HTTP_403_FORBIDDEN,
    errors.TooManyActiveJobs: status.HTTP_429_TOO_MANY_REQUESTS,
    errors.TooManyStreams: status.HTTP_429_TOO_MANY_REQUESTS,
}


def problem(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"detail": {"code": code, "message": message, **extra}}


def status_of(exc: errors.JoblineError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def responses(*kinds: type[errors.JoblineError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the errors a route can raise."""
    from jobline.api.schemas import ErrorResponse

    out: dict[int | str, dict[str, Any]] = {}
    for kind in kinds:
        entry = out.setdefault(STATUS_OF[kind], {"model": ErrorResponse, "description": ""})
        entry["description"] = " / ".join(filter(None, [entry["description"], kind.code]))
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.JoblineError)
    async def _domain(_: Request, exc: errors.JoblineError) -> JSONResponse:
        extra = {"errors": exc.context["errors"]} if "errors" in exc.context else {}
        return JSONResponse(problem(exc.code, exc.message, **extra), status_code=status_of(exc))

    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        # A restarting database is an outage, not a bug in the request: 503, retry later.
        log.warning("database error on %s %s: %s", request.method, request.url.path, exc)
        unavailable = errors.DatabaseUnavailable()
        return JSONResponse(
            problem(unavailable.code, unavailable.message),
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    # Every error of a database out of reach (jobline.dialects.UNAVAILABLE, the drivers'
    # own among them: a connection lost mid-transaction escapes Tortoise as pymysql's).
    for error in UNAVAILABLE:
        app.add_exception_handler(error, _database_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last line of defence: log it whole, tell the client nothing internal.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(problem("INTERNAL", "internal error"), status_code=500)
