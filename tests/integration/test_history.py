"""History over HTTP: keyset pages of jobs and of events, filters, and who sees what."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from jobline.accounts.users import create_user
from jobline.jobs.events import EventType
from jobline.jobs.projection import JobView
from jobline.jobs.store import JobStore
from tests.support import PASSWORD, User

pytestmark = pytest.mark.integration

JOBS = "/api/v1/jobs"
QUICK = {"source": "clip.mp4", "at_seconds": []}
EXISTING_JOBS = 130
PAGE = 50
PROGRESS_EVENTS = 120
E = EventType
MakeUser = Callable[[], Awaitable[User]]


def store_of(app: FastAPI) -> JobStore:
    store: JobStore = app.state.service.store
    return store


async def stored_job(
    app: FastAPI, owner: uuid.UUID, type: str = "video.thumbnail", end: EventType = E.CANCELLED
) -> JobView:
    """A job written straight to the store and taken to a final state.

    Final, so that no worker or relay in the session ever moves it: these tests read history.
    """
    store = store_of(app)
    view = await store.submit(
        job_id=uuid.uuid4(),
        data={
            "type": type,
            "queue": type.split(".")[0],
            "payload": {"source": "x"},
            "priority": 0,
            "owner_id": str(owner),
        },
    )
    if end is E.CANCELLED:
        return (await store.append(view.id, E.CANCELLED, {"reason": "test"})).view
    await store.append(view.id, E.QUEUED, {})
    await store.append(view.id, E.STARTED, {})
    data = (
        {"result": {"ok": True}} if end is E.SUCCEEDED else {"error": {"type": "X", "message": "m"}}
    )
    return (await store.append(view.id, end, data)).view


def newest_first(views: list[JobView]) -> list[str]:
    return [str(v.id) for v in sorted(views, key=lambda v: (v.created_at, v.id), reverse=True)]


async def walk(
    user: User,
    path: str = JOBS,
    between: Callable[[], Awaitable[None]] | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """Every item of a listing, following next_page; `between` runs after each page."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await user.client.get(path, params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        items.extend(page["items"])
        cursor = page["next_page"]
        if not cursor:
            return items
        if between is not None:
            await between()


async def test_the_walk_sees_exactly_the_jobs_at_its_start_while_jobs_are_added(
    app: FastAPI, make_user: MakeUser
) -> None:
    user = await make_user()
    existing = [await stored_job(app, user.id) for _ in range(EXISTING_JOBS)]
    expected = newest_first(existing)
    added: list[str] = []
    one_more = asyncio.Event()
    walking = True

    async def keep_adding() -> None:
        while walking:
            job = await user.submit("video.thumbnail", QUICK)
            added.append(job["id"])
            one_more.set()
            await asyncio.sleep(0)

    async def after_each_page() -> None:
        # At least one job is added between every two pages.
        one_more.clear()
        await one_more.wait()

    adder = asyncio.create_task(keep_adding())
    try:
        items = await walk(user, size=PAGE, between=after_each_page)
    finally:
        walking = False
        await adder
    ids = [j["id"] for j in items]
    assert len(ids) == len(set(ids)), "no duplicates"
    assert ids == expected, "exactly the jobs that existed at the start, newest first"
    pages = -(-EXISTING_JOBS // PAGE)
    assert pages > 2
    assert len(added) >= pages - 1
    assert not set(added) & set(ids)
    # The added jobs are there, in front: a walk by offset would have repeated old jobs.
    r = await user.client.get(JOBS, params={"size": len(added)})
    assert [j["id"] for j in r.json()["items"]] == added[::-1]
    assert [j["id"] for j in await walk(user, size=100)] == added[::-1] + expected


async def test_filters(app: FastAPI, make_user: MakeUser) -> None:
    user = await make_user()
    a = await stored_job(app, user.id, "music.transcode", E.SUCCEEDED)
    b = await stored_job(app, user.id, "video.thumbnail", E.FAILED)
    c = await stored_job(app, user.id, "music.fingerprint", E.FAILED)
    d = await stored_job(app, user.id, "video.thumbnail", E.CANCELLED)
    e = await stored_job(app, user.id, "video.publish", E.SUCCEEDED)

    async def ids(**params: Any) -> list[str]:
        return [j["id"] for j in await walk(user, size=2, **params)]

    def iso(at: datetime) -> str:
        return at.isoformat()

    def of(*views: JobView) -> list[str]:
        return newest_first(list(views))

    assert await ids() == of(a, b, c, d, e)
    assert await ids(state="succeeded") == of(a, e)
    assert await ids(state="failed") == of(b, c)
    assert await ids(state="cancelled") == of(d)
    assert await ids(state="running") == []
    assert await ids(type="video.thumbnail") == of(b, d)
    assert await ids(type="video.nothing") == []
    assert await ids(queue="music") == of(a, c)
    assert await ids(queue="video", state="succeeded") == of(e)
    assert await ids(created_after=iso(b.created_at)) == of(c, d, e)
    assert await ids(created_before=iso(c.created_at)) == of(a, b)
    assert await ids(created_after=iso(a.created_at), created_before=iso(e.created_at)) == of(
        b, c, d
    )
    # The same instant written with another offset, or naive (taken as UTC), filters the same.
    in_tokyo = b.created_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert await ids(created_after=in_tokyo.isoformat()) == of(c, d, e)
    naive = c.created_at.replace(tzinfo=None)
    assert await ids(created_before=naive.isoformat()) == of(a, b)
    r = await user.client.get(JOBS, params={"state": "failed", "size": 1})
    assert [j["state"] for j in r.json()["items"]] == ["failed"]


async def test_events_pages_by_cursor_and_after_seq(app: FastAPI, user: User) -> None:
    store = store_of(app)
    view = await store.submit(
        job_id=uuid.uuid4(),
        data={"type": "music.transcode", "queue": "music", "payload": {}, "owner_id": str(user.id)},
    )
    await store.append(view.id, E.QUEUED, {})
    await store.append(view.id, E.STARTED, {})
    for i in range(PROGRESS_EVENTS):
        await store.append(view.id, E.PROGRESS, {"progress": i * 100 // PROGRESS_EVENTS})
    await store.append(view.id, E.SUCCEEDED, {"result": {"ok": True}})
    total = PROGRESS_EVENTS + 4
    path = f"{JOBS}/{view.id}/events"

    r = await user.client.get(path, params={"size": PAGE})
    first = r.json()
    assert [e["seq"] for e in first["items"]] == list(range(1, PAGE + 1))
    events = await walk(user, path, size=PAGE)
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    assert [e["type"] for e in events][:3] == ["submitted", "queued", "started"]
    assert events[-1]["type"] == "succeeded" and events[-1]["data"] == {"result": {"ok": True}}
    assert {e["job_id"] for e in events} == {str(view.id)}

    r = await user.client.get(path, params={"after_seq": 100})
    assert [e["seq"] for e in r.json()["items"]] == list(range(101, total + 1))
    assert r.json()["next_page"] is None
    # after_seq, then the cursor carries on from where that page stopped.
    resumed = await walk(user, path, after_seq=60, size=7)
    assert [e["seq"] for e in resumed] == list(range(61, total + 1))
    for after in (total, total + 1000):
        r = await user.client.get(path, params={"after_seq": after})
        assert r.status_code == 200 and r.json()["items"] == [] and r.json()["next_page"] is None
    job = (await user.client.get(f"{JOBS}/{view.id}")).json()
    assert job["last_seq"] == total == events[-1]["seq"]


async def login(client: httpx.AsyncClient, app: FastAPI, email: str) -> httpx.AsyncClient:
    r = await client.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://jobline.test",
        headers={"Authorization": f"Bearer {r.json()['access_token']}"},
    )


async def test_users_see_only_their_own_jobs_and_a_superuser_sees_all(
    app: FastAPI, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    alice, bob = await make_user(), await make_user()
    alices = [await alice.submit("video.thumbnail", QUICK) for _ in range(3)]
    bobs = [await bob.submit("video.thumbnail", QUICK) for _ in range(2)]
    since = min(j["created_at"] for j in alices + bobs)

    for me, mine, theirs in ((alice, alices, bobs), (bob, bobs, alices)):
        listed = {j["id"] for j in await walk(me, size=2)}
        assert listed == {j["id"] for j in mine}
        same_filter = await walk(me, size=100, type="video.thumbnail", state="queued")
        assert not {j["id"] for j in same_filter} & {j["id"] for j in theirs}
        for job in theirs:
            for path in (f"{JOBS}/{job['id']}", f"{JOBS}/{job['id']}/events"):
                r = await me.client.get(path)
                assert r.status_code == 404 and r.json()["detail"]["code"] == "JOB_NOT_FOUND"

    email = f"root-{uuid.uuid4().hex[:8]}@example.com"
    root = await create_user(email, PASSWORD, superuser=True)
    assert root.is_superuser
    async with await login(client, app, email) as admin:
        me = (await admin.get("/api/v1/users/me")).json()
        assert me["is_superuser"] is True
        seen: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            # created_after is exclusive: one microsecond earlier includes the first job.
            params: dict[str, str | int] = {"size": 100, "created_after": _just_before(since)}
            if cursor:
                params["cursor"] = cursor
            page = (await admin.get(JOBS, params=params)).json()
            seen |= {j["id"]: j for j in page["items"]}
            cursor = page["next_page"]
            if not cursor:
                break
        for job in alices + bobs:
            assert job["id"] in seen
        assert {seen[j["id"]]["owner_id"] for j in alices + bobs} == {str(alice.id), str(bob.id)}
        for job in (alices[0], bobs[0]):
            assert (await admin.get(f"{JOBS}/{job['id']}")).status_code == 200
            events = (await admin.get(f"{JOBS}/{job['id']}/events")).json()["items"]
            assert events and events[0]["type"] == "submitted"


def _just_before(iso: str) -> str:
    at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (at - timedelta(microseconds=1)).isoformat()


async def test_owners_are_named_by_their_email_for_a_superuser_s_listing(
    app: FastAPI, make_user: MakeUser
) -> None:
    """The dashboard names each job's owner (accounts.users.emails_of); an id no account
    has is left out, not an error."""
    from jobline.accounts.users import emails_of

    alice, bob = await make_user(), await make_user()
    gone = uuid.uuid4()
    assert await emails_of({alice.id, bob.id, gone}) == {alice.id: alice.email, bob.id: bob.email}
    assert await emails_of(set()) == {}
