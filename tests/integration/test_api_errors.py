"""Bad input gets a clear error with a code, and never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support import User

pytestmark = pytest.mark.integration

JOBS = "/api/v1/jobs"
# A job that does nothing much if a worker ever picks it up.
QUICK = {"type": "video.thumbnail", "payload": {"source": "clip.mp4", "at_seconds": []}}


def detail(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The {"code", "message"} body of a domain error, after checking status and code."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()["detail"]
    assert body["code"] == code, body
    assert body["message"]
    return body


def validation(r: httpx.Response, *loc: str | int) -> list[dict[str, Any]]:
    """A 422 VALIDATION_ERROR, with FastAPI's list of errors beside code and message, one
    of them at `loc` (and the message names the first places)."""
    body = detail(r, 422, "VALIDATION_ERROR")
    errors: list[dict[str, Any]] = body["errors"]
    assert isinstance(errors, list) and errors
    if loc:
        assert any(tuple(e["loc"]) == loc for e in errors), errors
        assert ".".join(map(str, errors[0]["loc"])) in body["message"], body
    return errors


async def submit(user: User, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return await user.client.post(JOBS, json=body or QUICK, headers=headers)


async def test_an_unknown_job_type_names_the_known_ones(user: User) -> None:
    r = await submit(user, {"type": "music.remix", "payload": {}})
    body = detail(r, 422, "UNKNOWN_JOB_TYPE")
    assert "music.remix" in body["message"]
    for known in ("music.transcode", "video.thumbnail", "video.render"):
        assert known in body["message"]


async def test_a_payload_failing_its_model(user: User) -> None:
    r = await submit(user, {"type": "music.transcode", "payload": {"bitrate_kbps": 999}})
    body = detail(r, 422, "INVALID_PAYLOAD")
    assert {tuple(e["loc"]) for e in body["errors"]} == {("source",), ("bitrate_kbps",)}
    assert all(e["msg"] for e in body["errors"])


async def test_a_payload_over_the_limit(user: User, app: FastAPI) -> None:
    limit = app.state.settings.max_payload_bytes
    big = {"type": "music.transcode", "payload": {"source": "x" * limit}}
    body = detail(await submit(user, big), 413, "PAYLOAD_TOO_LARGE")
    assert str(limit) in body["message"]


def counting(
    total: int, chunk: int = 64 * 1024
) -> tuple[list[int], Callable[[], AsyncIterator[bytes]]]:
    """A request body of `total` bytes whose chunks count themselves as they are read."""
    read = [0]

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while sent < total:
            piece = b" " * min(chunk, total - sent)
            sent += len(piece)
            read[0] += len(piece)
            yield piece

    return read, body


async def test_a_content_length_over_the_limit_is_refused_before_reading(
    user: User, app: FastAPI
) -> None:
    size = app.state.settings.max_payload_bytes * 4
    read, body = counting(size)
    r = await user.client.post(
        JOBS,
        content=body(),
        headers={"Content-Length": str(size), "Content-Type": "application/json"},
    )
    detail(r, 413, "PAYLOAD_TOO_LARGE")
    assert read[0] == 0, "no byte of the body is read"


async def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(
    user: User, app: FastAPI
) -> None:
    size = app.state.settings.max_payload_bytes * 40
    read, body = counting(size)
    r = await user.client.post(JOBS, content=body(), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    detail(r, 413, "PAYLOAD_TOO_LARGE")
    assert read[0] < size / 10, f"read {read[0]} of {size} bytes before refusing"


async def test_a_chunked_body_under_the_limit_is_accepted(user: User) -> None:
    raw = json.dumps(QUICK).encode()

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    r = await user.client.post(JOBS, content=body(), headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text


@pytest.mark.parametrize("raw", [b'{"type": "music.transcode", ', b"{'type': 1}", b"nul"])
async def test_malformed_json(user: User, raw: bytes) -> None:
    r = await user.client.post(JOBS, content=raw, headers={"Content-Type": "application/json"})
    errors = validation(r)
    assert errors[0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ([QUICK], ("body",)),
        ("music.transcode", ("body",)),
        (None, ("body",)),
        ({"payload": {}}, ("body", "type")),
        ({**QUICK, "colour": "red"}, ("body", "colour")),
        ({**QUICK, "payload": [1, 2]}, ("body", "payload")),
        ({**QUICK, "type": ""}, ("body", "type")),
        ({**QUICK, "delay_seconds": -1}, ("body", "delay_seconds")),
    ],
    ids=[
        "list",
        "string",
        "null",
        "missing-type",
        "extra-field",
        "payload-list",
        "empty-type",
        "negative-delay",
    ],
)
async def test_a_body_of_the_wrong_shape(user: User, body: Any, loc: tuple[str, ...]) -> None:
    r = await user.client.post(
        JOBS, content=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    validation(r, *loc)


@pytest.mark.parametrize("priority", [-1, 10, 1000, "high", 1.5])
async def test_priority_out_of_range(user: User, priority: Any) -> None:
    validation(await submit(user, {**QUICK, "priority": priority}), "body", "priority")


async def test_priority_in_range_is_kept(user: User) -> None:
    r = await submit(user, {**QUICK, "priority": 5})
    assert r.status_code == 202 and r.json()["priority"] == 5


async def test_idempotency_keys_differing_in_case_or_accent_are_two_jobs(user: User) -> None:
    """Regression (issue 13.6): the key was matched case- and accent-insensitively."""
    first = await submit(user, QUICK, **{"Idempotency-Key": "Order-abc"})
    assert first.status_code == 202, first.text
    ids = {first.json()["id"]}
    # Header values are ASCII here (accents and lookalikes: test_store_contract).
    for key in ("ORDER-ABC", "order-abc", "Order-abC"):
        r = await submit(user, QUICK, **{"Idempotency-Key": key})
        assert r.status_code == 202, (key, r.text)
        ids.add(r.json()["id"])
    assert len(ids) == 4
    again = await submit(user, QUICK, **{"Idempotency-Key": "Order-abc"})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


async def test_priorities_above_max_user_priority_are_for_superusers(
    make_user: Callable[[], Awaitable[User]],
) -> None:
    from jobline.accounts.models import User as UserRow

    user = await make_user()
    # queues.yaml's max_user_priority is 5: 6 to 9 are refused to a user, not lowered.
    for priority in (6, 9):
        body = detail(
            await submit(user, {**QUICK, "priority": priority}), 422, "PRIORITY_NOT_ALLOWED"
        )
        assert "max_user_priority" in body["message"]
    admin = await make_user()
    await UserRow.filter(id=admin.id).update(is_superuser=True)
    r = await submit(admin, {**QUICK, "priority": 9})
    assert r.status_code == 202 and r.json()["priority"] == 9, r.text


async def first_cursor(user: User, path: str = JOBS, **params: Any) -> str:
    r = await user.client.get(path, params={"size": 1, **params})
    assert r.status_code == 200, r.text
    cursor: str | None = r.json()["next_page"]
    assert cursor, "two items make a second page"
    return cursor


@pytest.fixture(scope="module")
async def owner(make_user: Callable[[], Awaitable[User]]) -> User:
    """A user with two jobs, so their listings have a second page."""
    user = await make_user()
    for _ in range(2):
        await user.submit(QUICK["type"], QUICK["payload"])  # type: ignore[arg-type]
    return user


@pytest.fixture(scope="module")
async def stranger(make_user: Callable[[], Awaitable[User]]) -> User:
    user = await make_user()
    await user.submit(QUICK["type"], QUICK["payload"])  # type: ignore[arg-type]
    await user.submit(QUICK["type"], QUICK["payload"])  # type: ignore[arg-type]
    return user


@pytest.mark.parametrize("cursor", ["garbage", "a.b", "é.é", "..", "x" * 512, "eyJ9.AAAA"])
async def test_a_malformed_cursor(owner: User, cursor: str) -> None:
    detail(await owner.client.get(JOBS, params={"cursor": cursor}), 400, "INVALID_CURSOR")
    job = owner.jobs[0]
    r = await owner.client.get(f"{JOBS}/{job}/events", params={"cursor": cursor})
    detail(r, 400, "INVALID_CURSOR")


async def test_a_cursor_works_for_the_listing_it_was_made_for(owner: User) -> None:
    cursor = await first_cursor(owner)
    r = await owner.client.get(JOBS, params={"size": 1, "cursor": cursor})
    assert r.status_code == 200
    assert [j["id"] for j in r.json()["items"]] == [owner.jobs[0]]


async def test_a_cursor_of_another_user(owner: User, stranger: User) -> None:
    cursor = await first_cursor(owner)
    detail(await stranger.client.get(JOBS, params={"cursor": cursor}), 400, "INVALID_CURSOR")


@pytest.mark.parametrize(
    "filters",
    [
        {"state": "queued"},
        {"type": "video.thumbnail"},
        {"queue": "video"},
        {"created_after": "2000-01-01T00:00:00Z"},
    ],
)
async def test_a_cursor_of_another_filter_set(owner: User, filters: dict[str, str]) -> None:
    cursor = await first_cursor(owner)
    r = await owner.client.get(JOBS, params={"cursor": cursor, **filters})
    detail(r, 400, "INVALID_CURSOR")


async def test_an_events_cursor_of_another_job(owner: User) -> None:
    first, second = owner.jobs[:2]
    cursor = await first_cursor(owner, f"{JOBS}/{first}/events")
    r = await owner.client.get(f"{JOBS}/{second}/events", params={"cursor": cursor})
    detail(r, 400, "INVALID_CURSOR")
    # ...and a jobs cursor is no events cursor.
    r = await owner.client.get(
        f"{JOBS}/{first}/events", params={"cursor": await first_cursor(owner)}
    )
    detail(r, 400, "INVALID_CURSOR")


@pytest.mark.parametrize("size", [0, 101, -1, "ten"])
async def test_size_out_of_range(owner: User, size: Any) -> None:
    validation(await owner.client.get(JOBS, params={"size": size}), "query", "size")
    r = await owner.client.get(f"{JOBS}/{owner.jobs[0]}/events", params={"size": size})
    validation(r, "query", "size")


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"state": "sleeping"}, "state"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01"}, "created_before"),
        ({"type": "t" * 101}, "type"),
    ],
)
async def test_a_bad_filter(owner: User, params: dict[str, str], name: str) -> None:
    validation(await owner.client.get(JOBS, params=params), "query", name)


@pytest.mark.parametrize("after_seq", [-1, "first", 2**40])
async def test_a_bad_after_seq(owner: User, after_seq: Any) -> None:
    r = await owner.client.get(f"{JOBS}/{owner.jobs[0]}/events", params={"after_seq": after_seq})
    validation(r, "query", "after_seq")


@pytest.mark.parametrize("job_id", ["42", "not-a-uuid", "0" * 40, "%00"])
async def test_a_job_id_that_is_not_a_uuid(user: User, job_id: str) -> None:
    validation(await user.client.get(f"{JOBS}/{job_id}"), "path", "job_id")
    validation(await user.client.get(f"{JOBS}/{job_id}/events"), "path", "job_id")


async def test_an_unknown_job(user: User) -> None:
    missing = uuid.uuid4()
    detail(await user.client.get(f"{JOBS}/{missing}"), 404, "JOB_NOT_FOUND")
    detail(await user.client.get(f"{JOBS}/{missing}/events"), 404, "JOB_NOT_FOUND")


async def test_another_users_job_is_not_found(owner: User, stranger: User) -> None:
    job = owner.jobs[0]
    assert (await owner.client.get(f"{JOBS}/{job}")).status_code == 200
    detail(await stranger.client.get(f"{JOBS}/{job}"), 404, "JOB_NOT_FOUND")
    detail(await stranger.client.get(f"{JOBS}/{job}/events"), 404, "JOB_NOT_FOUND")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer " + "a" * 20 + "." + "b" * 20 + "." + "c" * 20},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Cookie": "jobline_auth=forged"},
    ],
    ids=["none", "garbage", "forged-jwt", "basic", "forged-cookie"],
)
async def test_no_token_or_a_bad_token(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    job = uuid.uuid4()
    for method, path in [
        ("GET", JOBS),
        ("POST", JOBS),
        ("GET", f"{JOBS}/{job}"),
        ("GET", f"{JOBS}/{job}/events"),
        ("GET", "/api/v1/job-types"),
        ("GET", "/api/v1/users/me"),
    ]:
        r = await client.request(
            method, path, headers=headers, json=QUICK if method == "POST" else None
        )
        assert r.status_code == 401, (method, path, r.text)


async def test_a_token_signed_with_another_secret(client: httpx.AsyncClient, owner: User) -> None:
    import jwt

    claims = jwt.decode(owner.token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-server-secret-" + "z" * 20, algorithm="HS256")
    r = await client.get(JOBS, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


async def test_an_idempotency_key_returns_the_first_job(user: User) -> None:
    key = f"key-{uuid.uuid4()}"
    first = await submit(user, QUICK, **{"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    again = await submit(user, QUICK, **{"Idempotency-Key": key})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"] == f"{JOBS}/{first.json()['id']}"


async def test_an_idempotency_key_with_another_body_is_a_conflict(user: User) -> None:
    key = f"key-{uuid.uuid4()}"
    assert (await submit(user, QUICK, **{"Idempotency-Key": key})).status_code == 202
    other = {**QUICK, "priority": 5}
    detail(await submit(user, other, **{"Idempotency-Key": key}), 409, "IDEMPOTENCY_KEY_REUSED")
    other_type = {"type": "music.fingerprint", "payload": {"source": "a.wav"}}
    detail(
        await submit(user, other_type, **{"Idempotency-Key": key}), 409, "IDEMPOTENCY_KEY_REUSED"
    )


async def test_an_idempotency_key_belongs_to_its_user(owner: User, stranger: User) -> None:
    key = f"key-{uuid.uuid4()}"
    mine = await submit(owner, QUICK, **{"Idempotency-Key": key})
    theirs = await submit(stranger, QUICK, **{"Idempotency-Key": key})
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]


async def test_a_bad_idempotency_key(user: User) -> None:
    validation(
        await submit(user, QUICK, **{"Idempotency-Key": "k" * 256}), "header", "idempotency-key"
    )


# ------------------------------------------------------------------ one error shape (12.5)

SECURITY_HEADER = "x-content-type-options"


def shaped(r: httpx.Response) -> dict[str, Any]:
    """An error answer in the documented shape, with the security headers; its detail."""
    assert r.status_code >= 400, r.text
    body = r.json()
    assert set(body) == {"detail"}, body
    problem: dict[str, Any] = body["detail"]
    assert isinstance(problem, dict) and {"code", "message"} <= set(problem), body
    assert isinstance(problem["code"], str) and problem["code"].isupper(), body
    assert isinstance(problem["message"], str) and problem["message"], body
    assert set(problem) - {"code", "message"} <= {"errors"}, body
    if "errors" in problem:
        assert problem["errors"] and all("loc" in e and "msg" in e for e in problem["errors"])
    assert r.headers[SECURITY_HEADER] == "nosniff", r.headers
    return problem


STREAM_PATHS = ("/api/v1/stream", "/api/v1/jobs/{job_id}/stream")
# Last: a logout must not end the session the other requests use.
LOGOUTS = ("/api/v1/auth/jwt/logout", "/api/v1/auth/cookie/logout")


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (method, path, operation) of the OpenAPI document, logouts last."""
    found = [
        (method.upper(), path, op)
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    ]
    return sorted(found, key=lambda f: f[1] in LOGOUTS)


def bad_requests(method: str, path: str, op: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Requests to one operation that something is wrong with, each as (why, httpx kwargs)."""
    wrong_ids = re.sub(r"\{\w+\}", "not-a-uuid", path)
    unknown_ids = re.sub(r"\{\w+\}", str(uuid.uuid4()), path)
    # Never a stream: a page's check (api/stream.py), and a resume id that is no number.
    quiet = {"Accept": "application/json", "Last-Event-ID": "x"} if path in STREAM_PATHS else {}
    cases: list[tuple[str, dict[str, Any]]] = []
    if "{" in path:
        cases.append(("ids that are no UUIDs", {"url": wrong_ids, "headers": quiet}))
        cases.append(("ids of nothing", {"url": unknown_ids, "headers": quiet}))
    if path in STREAM_PATHS:
        cases.append(("a resume id that is no number", {"url": unknown_ids, "headers": quiet}))
    params = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
    for name in params:
        cases.append((f"a bad {name}", {"url": unknown_ids, "params": {name: "!!"}}))
    if params:
        long = dict.fromkeys(params, "x" * 3000)
        cases.append(("long query values", {"url": unknown_ids, "params": long}))
    body = op.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        json_type = {"Content-Type": "application/json"}
        cases += [
            ("malformed JSON", {"url": unknown_ids, "content": b'{"', "headers": json_type}),
            ("NaN", {"url": unknown_ids, "content": b'{"a": [NaN]}', "headers": json_type}),
            ("a JSON list", {"url": unknown_ids, "content": b"[1]", "headers": json_type}),
            (
                "UTF-16",
                {"url": unknown_ids, "content": '{"a": 1}'.encode("utf-16"), "headers": json_type},
            ),
            ("no content type", {"url": unknown_ids, "content": b"{}"}),
        ]
    elif body:
        cases.append(("an empty form", {"url": unknown_ids, "data": {"x": "y"}}))
    if method in ("GET", "DELETE") and not cases:
        cases.append(("a body where none goes", {"url": unknown_ids, "content": b"\xff"}))
    return cases


async def test_every_route_answers_every_error_in_one_shape(
    app: FastAPI, client: httpx.AsyncClient, make_user: Callable[[], Awaitable[User]]
) -> None:
    """12.5: every operation of the OpenAPI document, without credentials, with forged
    ones, with bad ids, query values and bodies: every 4xx is {"detail": {"code",
    "message"}} with the security headers, and nothing is a 5xx."""
    user = await make_user()
    seen: Counter[tuple[int, str]] = Counter()
    forged = {"Authorization": "Bearer not.a.token"}
    ops = operations(app)
    assert len(ops) >= 20
    for method, path, op in ops:
        url = re.sub(r"\{\w+\}", str(uuid.uuid4()), path)
        tries: list[tuple[str, httpx.AsyncClient, dict[str, Any]]] = []
        if op.get("security"):
            tries.append(("no credentials", client, {"url": url}))
            tries.append(("a forged token", client, {"url": url, "headers": forged}))
        for why, kwargs in bad_requests(method, path, op):
            tries.append((why, user.client, kwargs))
            if op.get("security"):
                tries.append((f"{why}, no credentials", client, kwargs))
        for why, sender, kwargs in tries:
            r = await sender.request(method, **kwargs)
            assert r.status_code < 500, (method, path, why, r.text)
            if r.status_code >= 400:
                problem = shaped(r)
                seen[r.status_code, problem["code"]] += 1
            if why.startswith("no credentials") or why == "a forged token":
                assert r.status_code == 401, (method, path, why, r.text)
    print(sorted(seen.items()))
    codes = {code for _, code in seen}
    for expected in (
        "UNAUTHORIZED",
        "VALIDATION_ERROR",
        "JOB_NOT_FOUND",
        "UNSUPPORTED_ENCODING",
        "FORBIDDEN",
        "INVALID_LAST_EVENT_ID",
        "INVALID_CURSOR",
    ):
        assert expected in codes, (expected, seen)


@pytest.mark.parametrize("path", ["/nowhere", "/api/v1/nope", "/api/v1/jobs/x/y/z", "/api"])
async def test_an_unknown_route_is_404_in_the_one_shape(
    client: httpx.AsyncClient, path: str
) -> None:
    assert shaped(await client.get(path))["code"] == "NOT_FOUND"


async def test_a_405_names_the_allowed_methods_on_every_path(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """13.11: Allow is never empty and names every documented method of the path."""
    for path, ops in app.openapi()["paths"].items():
        documented = {m.upper() for m in ops}
        wrong = next(m for m in ("PUT", "DELETE", "PATCH", "POST") if m not in documented)
        r = await client.request(wrong, re.sub(r"\{\w+\}", str(uuid.uuid4()), path))
        assert r.status_code == 405, (path, wrong, r.text)
        assert shaped(r)["code"] == "METHOD_NOT_ALLOWED"
        allowed = {m.strip() for m in r.headers["allow"].split(",")}
        assert documented <= allowed and wrong not in allowed, (path, r.headers["allow"])


async def test_fastapi_users_errors_take_the_one_shape(
    client: httpx.AsyncClient, user: User
) -> None:
    """Its 400 codes keep their names; a refused password's reason is the message."""
    r = await client.post(
        "/api/v1/auth/register", json={"email": user.email, "password": "x" * 20 + "-Long-1"}
    )
    assert shaped(r)["code"] == "REGISTER_USER_ALREADY_EXISTS"
    r = await client.post(
        "/api/v1/auth/register",
        json={"email": f"w-{uuid.uuid4().hex[:8]}@example.com", "password": "short"},
    )
    problem = shaped(r)
    assert problem["code"] == "REGISTER_INVALID_PASSWORD" and "at least" in problem["message"]
    r = await client.post(
        "/api/v1/auth/jwt/login", data={"username": user.email, "password": "wrong-password-x"}
    )
    assert r.status_code == 400 and shaped(r)["code"] == "LOGIN_BAD_CREDENTIALS"
    r = await client.get("/api/v1/users/me")
    assert r.status_code == 401 and shaped(r)["code"] == "UNAUTHORIZED"
    r = await user.client.get(f"/api/v1/users/{uuid.uuid4()}")
    assert r.status_code == 403 and shaped(r)["code"] == "FORBIDDEN"


async def test_an_unexpected_error_is_a_500_with_the_headers(app: FastAPI) -> None:
    """The last line of defence answers inside the headers middleware (it was a bare 500)."""

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/test-boom", boom)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://jobline.test",
    ) as c:
        r = await c.get("/test-boom")
    assert r.status_code == 500
    assert shaped(r) == {"code": "INTERNAL", "message": "internal error"}
    assert "default-src 'none'" in r.headers["content-security-policy"]


# ------------------------------------------------------------------ JSON bodies (13.2, 13.7)

NOT_FINITE = {
    "in a typed payload": (
        b'{"type": "video.thumbnail", "payload": {"source": "a", "at_seconds": [1, NaN]}}',
        ["body", "payload", "at_seconds", 1],
    ),
    "in an untyped payload": (
        b'{"type": "video.render", "payload": {"a": {"b": [Infinity]}}}',
        ["body", "payload", "a", "b", 0],
    ),
    "an overflowing number": (
        b'{"type": "video.render", "payload": {"x": 1e400}}',
        ["body", "payload", "x"],
    ),
    "a long overflowing number": (
        b'{"type": "video.render", "payload": {"x": 1' + b"0" * 400 + b".5}}",
        ["body", "payload", "x"],
    ),
    "the type": (b'{"type": NaN}', ["body", "type"]),
    "the priority": (b'{"type": "video.render", "priority": -Infinity}', ["body", "priority"]),
    "the delay": (
        b'{"type": "video.render", "delay_seconds": Infinity}',
        ["body", "delay_seconds"],
    ),
    "the whole body": (b"NaN", ["body"]),
}


@pytest.mark.parametrize(("body", "loc"), NOT_FINITE.values(), ids=NOT_FINITE.keys())
async def test_a_number_that_is_not_finite_is_422_naming_where(
    user: User, body: bytes, loc: list[Any]
) -> None:
    """13.2: NaN, Infinity and 1e400 are no JSON numbers; MariaDB refused the row (503) or
    the answer could not carry them back (500)."""
    r = await user.client.post(JOBS, content=body, headers={"Content-Type": "application/json"})
    problem = shaped(r)
    assert r.status_code == 422 and problem["code"] == "VALIDATION_ERROR", r.text
    assert problem["errors"][0]["loc"] == loc
    assert ".".join(map(str, loc)) in problem["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/auth/register", b'{"email": "n@example.com", "password": NaN}'),
        ("POST", "/api/v1/auth/register", b'{"email": Infinity, "password": "x"}'),
        ("POST", "/api/v1/auth/register", b'{"email": "n@example.com", "is_active": NaN}'),
        ("PATCH", "/api/v1/users/me", b'{"email": NaN}'),
        ("PATCH", "/api/v1/users/me", b'{"is_verified": 1e999}'),
    ],
)
async def test_not_finite_numbers_in_any_field_of_any_route(
    user: User, method: str, path: str, body: bytes
) -> None:
    r = await user.client.request(
        method, path, content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and shaped(r)["code"] == "VALIDATION_ERROR", r.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", json.dumps(QUICK).encode("utf-16")),
        ("application/json", json.dumps(QUICK).encode("utf-16-le")),
        ("application/json", json.dumps(QUICK).encode("utf-32")),
        ("application/json; charset=utf-16", json.dumps(QUICK).encode("utf-16")),
        ("application/json; charset=iso-8859-1", json.dumps(QUICK).encode()),
        ("application/json", json.dumps({**QUICK, "x": "é"}, ensure_ascii=False).encode("latin-1")),
        ("application/json", b"\xff\xfe"),
    ],
    ids=["utf-16", "utf-16-le", "utf-32", "charset utf-16", "charset latin-1", "latin-1", "bom"],
)
async def test_a_json_body_not_in_utf8_is_415(user: User, content_type: str, body: bytes) -> None:
    """13.7: a UTF-16 body could hide brackets from the depth check (U+0122 holds a `"`)."""
    r = await user.client.post(JOBS, content=body, headers={"Content-Type": content_type})
    assert r.status_code == 415 and shaped(r)["code"] == "UNSUPPORTED_ENCODING", r.text


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", 'application/json; charset="UTF-8"']
)
async def test_utf8_said_in_any_spelling_is_accepted(user: User, content_type: str) -> None:
    body = json.dumps({**QUICK, "payload": {"source": "clip-é.mp4"}}, ensure_ascii=False)
    r = await user.client.post(JOBS, content=body.encode(), headers={"Content-Type": content_type})
    assert r.status_code == 202, r.text


async def test_a_batch_the_database_refuses_stores_its_other_jobs(app: FastAPI, user: User) -> None:
    """13.2: a value MariaDB refuses fails its own submit only, never its batch's others
    (the batch is retried job by job), and is a data error (422), not an outage (503)."""
    from jobline.dialects import refused_data
    from jobline.jobs.models import JobRow
    from jobline.jobs.service import Caller, JobService, Submission

    service: JobService = app.state.service
    assert service.batcher is not None
    caller = Caller(id=user.id, is_superuser=False)
    # Past the API's guard (it refuses NaN at parse): what the database itself refuses.
    bad = [Submission("video.render", {"at": [float("nan")]}) for _ in range(3)]
    good = [Submission("video.render", {"n": i}) for i in range(27)]
    mixed = [good[i] for i in range(9)] + [bad[0]] + good[9:18] + [bad[1]] + good[18:] + [bad[2]]
    split_before = service.batcher.split
    outcomes = await asyncio.gather(
        *(service.submit(caller, s) for s in mixed), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    stored = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(refused) == 3 and all(refused_data(e) for e in refused), refused
    assert len(stored) == 27 and all(created for _, created in stored)
    assert service.batcher.split > split_before, "a batch was refused, then split"
    ids = [view.id for view, _ in stored]
    assert await JobRow.filter(id__in=ids).count() == 27
    # Cleanup: a worker of an earlier module may have run (and failed) some already.
    from jobline.errors import JobFinished

    for view, _ in stored:
        with contextlib.suppress(JobFinished):
            await service.cancel(caller, view.id)


async def test_an_integer_too_long_to_read_is_a_clean_400(user: User) -> None:
    """Python refuses to read an int of over 4300 digits (a guard of its own): FastAPI's
    400, in the one shape; a long one it can read is stored as it is."""
    huge = b'{"type": "video.render", "payload": {"x": 1' + b"0" * 5000 + b"}}"
    r = await user.client.post(JOBS, content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and shaped(r)["code"] == "BAD_REQUEST", r.text
    long = b'{"type": "video.render", "payload": {"x": 1' + b"0" * 400 + b"}}"
    r = await user.client.post(JOBS, content=long, headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert r.json()["payload"]["x"] == 10**400
    await user.client.post(f"{JOBS}/{r.json()['id']}/cancel")
