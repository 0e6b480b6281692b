"""Domain errors -> HTTP, in one table; every error body is {"detail": {"code", "message"}}."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette import status

from jobline import errors
from jobline.dialects import DATA_ERRORS, UNAVAILABLE, refused_data, schema_behind

log = logging.getLogger("jobline.api")
# What a client is told to wait after a 503 for a database outage.
RETRY_AFTER_SECONDS = 2

STATUS_OF: dict[type[errors.JoblineError], int] = {
    errors.JobNotFound: status.HTTP_404_NOT_FOUND,
    errors.UnknownJobType: status.HTTP_422_UNPROCESSABLE_CONTENT,
    errors.InvalidPayload: status.HTTP_422_UNPROCESSABLE_CONTENT,
    errors.PriorityNotAllowed: status.HTTP_422_UNPROCESSABLE_CONTENT,
    errors.PayloadTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    errors.InvalidCursor: status.HTTP_400_BAD_REQUEST,
    errors.InvalidLastEventId: status.HTTP_400_BAD_REQUEST,
    errors.InvalidTransition: status.HTTP_409_CONFLICT,
    errors.JobFinished: status.HTTP_409_CONFLICT,
    errors.JobNotRetryable: status.HTTP_409_CONFLICT,
    errors.IdempotencyConflict: status.HTTP_409_CONFLICT,
    errors.BrokerUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    errors.DatabaseUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    errors.DatabaseSchemaBehind: status.HTTP_503_SERVICE_UNAVAILABLE,
    errors.SuperuserRequired: status.HTTP_403_FORBIDDEN,
    errors.TooManyActiveJobs: status.HTTP_429_TOO_MANY_REQUESTS,
    errors.TooManyStreams: status.HTTP_429_TOO_MANY_REQUESTS,
}


def problem(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one error body: {"detail": {"code", "message"}} (and `errors` for validation)."""
    return {"detail": {"code": code, "message": message, **extra}}


# fastapi-users' error codes (its routes raise HTTPException(detail=CODE)) with what they
# mean; a code not listed gets its own words.
USER_ERRORS = {
    "LOGIN_BAD_CREDENTIALS": "wrong email or password, or the account is inactive",
    "LOGIN_USER_NOT_VERIFIED": "the account's email is not verified",
    "REGISTER_USER_ALREADY_EXISTS": "an account with this email already exists",
    "REGISTER_INVALID_PASSWORD": "the password is not accepted",
    "UPDATE_USER_EMAIL_ALREADY_EXISTS": "another account has this email",
    "UPDATE_USER_INVALID_PASSWORD": "the password is not accepted",
}
# The body of a bare HTTPException(status) (Starlette's routing, fastapi-users' 401/403/404).
STATUS_MESSAGES = {
    status.HTTP_401_UNAUTHORIZED: "not logged in: no valid bearer token or session cookie",
    status.HTTP_403_FORBIDDEN: "not allowed for this account",
    status.HTTP_404_NOT_FOUND: "nothing here: no such route or resource",
    status.HTTP_405_METHOD_NOT_ALLOWED: "this path does not take this method; see Allow",
}
_CODE = re.compile(r"[A-Z][A-Z0-9_]*")
_PHRASES = frozenset(s.value for s in HTTPStatus)
# A validation message names places up to this long (a key may be as long as the body).
MAX_PLACE_CHARS = 120


def status_code_name(status_code: int) -> str:
    """NOT_FOUND for 404: the code of an error that has no code of its own."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        return "HTTP_ERROR"
    return re.sub(r"\W+", "_", phrase).strip("_").upper()


def http_problem(status_code: int, detail: Any) -> dict[str, Any]:
    """The documented body for an HTTPException's `detail`, whatever raised it.

    A code string (fastapi-users' `LOGIN_BAD_CREDENTIALS`) becomes the code with its
    meaning; `{"code", "reason"}` (a refused password) keeps its code, the reason is the
    message; free text (Starlette's "Not Found") is the message of the status's code.
    """
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        text = detail.get("message") or detail.get("reason")
        extra = {k: v for k, v in detail.items() if k not in ("code", "message", "reason")}
        code = detail["code"]
        return problem(code, str(text or USER_ERRORS.get(code) or _words(code)), **extra)
    if isinstance(detail, str) and _CODE.fullmatch(detail):
        return problem(detail, USER_ERRORS.get(detail) or _words(detail))
    default = STATUS_MESSAGES.get(status_code)
    phrase = HTTPStatus(status_code).phrase if status_code in _PHRASES else None
    text = str(detail) if detail and detail != phrase else (default or phrase or "error")
    return problem(status_code_name(status_code), text)


def _words(code: str) -> str:
    return code.replace("_", " ").lower()


def validation_problem(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """A 422's body: VALIDATION_ERROR, a message naming the first places, every error."""
    shown = [f"{_place(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    message = "; ".join(shown) + more if shown else "the request is invalid"
    return problem("VALIDATION_ERROR", message, errors=errors)


def _place(loc: Any) -> str:
    place = ".".join(str(part) for part in loc) or "request"
    return place if len(place) <= MAX_PLACE_CHARS else place[:MAX_PLACE_CHARS] + "…"


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
        retry_after = exc.context.get("retry_after")
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse(
            problem(exc.code, exc.message, **extra), status_code=status_of(exc), headers=headers
        )

    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        if refused_data(exc):
            # The request's data, not an outage: a retry would fail the same way.
            log.warning("the database refused %s %s: %s", request.method, request.url.path, exc)
            return JSONResponse(
                problem(
                    "UNSTORABLE_VALUE",
                    "the database cannot store a value of this request (a number out of "
                    "range, text or JSON it refuses)",
                ),
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            )
        # A restarting database is an outage, not a bug in the request: 503, retry later.
        # So is one behind this version's migrations, but it needs an operator: said so.
        log.warning("database error on %s %s: %s", request.method, request.url.path, exc)
        unavailable: errors.JoblineError = (
            errors.DatabaseSchemaBehind() if schema_behind(exc) else errors.DatabaseUnavailable()
        )
        return JSONResponse(
            problem(unavailable.code, unavailable.message),
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    # Every error of a database out of reach (jobline.dialects.UNAVAILABLE, the drivers'
    # own among them: a connection lost mid-transaction escapes Tortoise as pymysql's),
    # and those of data it refuses (DATA_ERRORS: answered 422 by refused_data()).
    for error in (*UNAVAILABLE, *DATA_ERRORS):
        app.add_exception_handler(error, _database_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last line of defence: log it whole, tell the client nothing internal.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(problem("INTERNAL", "internal error"), status_code=500)
