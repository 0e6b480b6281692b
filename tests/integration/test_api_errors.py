"""Bad input gets a clear error with a code, and never a 500."""

from __future__ import annotations

import json
import uuid
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
    """FastAPI's standard 422 body, with an error at `loc`."""
    assert r.status_code == 422, r.text
    errors: list[dict[str, Any]] = r.json()["detail"]
    assert isinstance(errors, list) and errors
    if loc:
        assert any(tuple(e["loc"]) == loc for e in errors), errors
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


@pytest.mark.parametrize(
    "raw", [b'{"type": "music.transcode", ', b"{'type': 1}", b"\xff\xfe", b"nul"]
)
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
