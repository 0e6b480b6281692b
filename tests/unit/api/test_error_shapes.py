"""The one error shape, from whatever raised: fastapi-users' codes, bare statuses,
validation lists; and which database errors are the request's data, not an outage."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest
from tortoise.exceptions import OperationalError

from jobline.api.errors import http_problem, validation_problem
from jobline.dialects import refused_data


@pytest.mark.parametrize(
    ("status", "detail", "code", "message"),
    [
        (400, "LOGIN_BAD_CREDENTIALS", "LOGIN_BAD_CREDENTIALS", "wrong email or password"),
        (400, "REGISTER_USER_ALREADY_EXISTS", "REGISTER_USER_ALREADY_EXISTS", "already exists"),
        (400, "SOME_NEW_CODE", "SOME_NEW_CODE", "some new code"),
        (
            400,
            {"code": "REGISTER_INVALID_PASSWORD", "reason": "at least 12 characters"},
            "REGISTER_INVALID_PASSWORD",
            "at least 12 characters",
        ),
        (403, {"code": "CSRF", "message": "another origin"}, "CSRF", "another origin"),
        (401, "Unauthorized", "UNAUTHORIZED", "not logged in"),
        (404, "Not Found", "NOT_FOUND", "no such route"),
        (405, "Method Not Allowed", "METHOD_NOT_ALLOWED", "Allow"),
        (400, "There was an error parsing the body", "BAD_REQUEST", "error parsing the body"),
        (418, None, "I_M_A_TEAPOT", "Teapot"),
    ],
)
def test_every_http_error_takes_the_one_shape(
    status: int, detail: Any, code: str, message: str
) -> None:
    body = http_problem(status, detail)
    assert set(body) == {"detail"} and set(body["detail"]) == {"code", "message"}
    assert body["detail"]["code"] == code
    assert message.lower() in body["detail"]["message"].lower()


def test_a_validation_problem_names_the_first_places_and_keeps_every_error() -> None:
    errors = [{"loc": ["body", "f", i], "msg": "bad", "type": "t"} for i in range(5)]
    detail = validation_problem(errors)["detail"]
    assert detail["code"] == "VALIDATION_ERROR" and detail["errors"] == errors
    assert detail["message"] == "body.f.0: bad; body.f.1: bad; body.f.2: bad (and 2 more)"
    long = validation_problem([{"loc": ["body", "k" * 10_000], "msg": "bad"}])["detail"]
    assert len(long["message"]) < 200


def _wrapped(cause: BaseException) -> OperationalError:
    """As Tortoise raises it: its own error, the driver's as the cause."""
    try:
        raise OperationalError(str(cause)) from cause
    except OperationalError as exc:
        return exc


@pytest.mark.parametrize(
    ("error", "data"),
    [
        (pymysql.err.OperationalError(4025, "CONSTRAINT `jobs.payload` failed"), True),
        (pymysql.err.DataError(1406, "Data too long"), True),
        (pymysql.err.IntegrityError(1048, "Column cannot be null"), True),
        (pymysql.err.OperationalError(1366, "Incorrect string value"), True),
        (pymysql.err.OperationalError(2013, "Lost connection to MySQL server"), False),
        (pymysql.err.OperationalError(2003, "Can't connect to MySQL server"), False),
        (pymysql.err.OperationalError(1213, "Deadlock found"), False),
        (pymysql.err.InterfaceError(0, "Not connected"), False),
        (ConnectionResetError(), False),
    ],
)
def test_a_data_error_is_told_from_an_outage(error: BaseException, data: bool) -> None:
    assert refused_data(error) is data
    assert refused_data(_wrapped(error)) is data
