"""SSE streams on a real server: replay then live with no gap or duplicate, errors before
the stream, resources freed on disconnect, the per-user stream, several API processes."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobline.config import Settings
from tests.integration.stream_helpers import (
    STREAM_TIMEOUT,
    Frame,
    events_of,
    feed_stats,
    live_superuser,
    live_user,
    read_stream,
    wait_subscribers,
)
from tests.support import (
    FINAL,
    PASSWORD,
    RABBIT_API,
    WAIT_SECONDS,
    Proc,
    User,
    _rabbit_parts,
    start_server,
)

pytestmark = pytest.mark.integration

# A job that emits progress for about three seconds (progress is coalesced to 50 ms in tests).
FOLLOWERS = 20
# `at` is stored to the microsecond; allow a millisecond when comparing with an interval.
CLOCK_SLACK = 0.001
LONG_TRANSCODE = {"source": "long.wav", "chunks": 150, "step_seconds": 0.02}


def job_path(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}/stream"


def assert_replays(frames: list[Frame], history: list[dict[str, Any]], after: int = 0) -> None:
    """The stream carried exactly the stored events after `after`, in order, SSE id = seq."""
    events = events_of(frames)
    assert [int(f.id) for f in events] == list(range(after + 1, len(history) + 1))
    assert [f.data for f in events] == history[after:]
    assert [f.event for f in events] == [e["type"] for e in history[after:]]


@pytest.fixture(scope="module")
async def alice(live_server: str) -> AsyncIterator[User]:
    user = await live_user(live_server)
    yield user
    await user.client.aclose()


@pytest.fixture(scope="module")
async def bob(live_server: str) -> AsyncIterator[User]:
    user = await live_user(live_server)
    yield user
    await user.client.aclose()


@pytest.fixture
async def fresh(live_server: str) -> AsyncIterator[User]:
    """A user of its own: a per-user stream carries every job of its user, earlier tests' too."""
    user = await live_user(live_server)
    yield user
    await user.client.aclose()


@pytest.fixture(scope="module")
async def admin(live_server: str, stack_env: dict[str, str]) -> AsyncIterator[User]:
    user = await live_superuser(live_server, stack_env)
    yield user
    await user.client.aclose()


@pytest.fixture(scope="module")
def second_server(migrated: Settings, stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    """Another API process on the same database and broker, with a fast ping, that lets
    one user hold FOLLOWERS streams."""
    env = {
        **stack_env,
        "JOBLINE_SSE_PING_SECONDS": "0.3",
        "JOBLINE_MAX_STREAMS_PER_USER": str(FOLLOWERS),
    }
    proc, base = start_server(env, logdir)
    yield base
    proc.stop()


@pytest.fixture(scope="module")
def polling_server(migrated: Settings, stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    """An API process that ignores the broker's notices: its feed only polls the database."""
    proc, base = start_server({**stack_env, "JOBLINE_FEED_NOTIFICATIONS": "false"}, logdir)
    yield base
    proc.stop()


@pytest.fixture(scope="module")
def lingering_server(
    migrated: Settings, stack_env: dict[str, str], logdir: Path
) -> Iterator[tuple[str, int]]:
    """An API process that stops consuming notices half a second after its last follower."""
    env = {**stack_env, "JOBLINE_FEED_NOTICES_LINGER_SECONDS": "0.5"}
    proc, base = start_server(env, logdir)
    yield base, proc.popen.pid
    proc.stop()


def notice_queues(stack_env: dict[str, str], pid: int) -> list[str]:
    """The notice queues of the API process `pid` on the run's vhost."""
    _, auth, _ = _rabbit_parts(stack_env["JOBLINE_BROKER_URL"])
    vhost = stack_env["JOBLINE_BROKER_URL"].rsplit("/", 1)[1]
    r = httpx.get(f"{RABBIT_API}/queues/{vhost}", auth=auth, timeout=10)
    assert r.status_code == 200, r.text
    mine = f"jobline.events.{socket.gethostname()}.{pid}."
    return [q["name"] for q in r.json() if q["name"].startswith(mine)]


async def wait_notice_queues(stack_env: dict[str, str], pid: int, count: int) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while len(notice_queues(stack_env, pid)) != count:
        assert asyncio.get_running_loop().time() < deadline, notice_queues(stack_env, pid)
        await asyncio.sleep(0.1)


async def test_an_api_process_takes_notices_only_while_someone_follows(
    alice: User,
    admin: User,
    lingering_server: tuple[str, int],
    stack_env: dict[str, str],
    workers: dict[str, Proc],
) -> None:
    base, pid = lingering_server
    await wait_notice_queues(stack_env, pid, 0)  # nobody follows: no queue, no notices
    other = httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {alice.token}"}, timeout=STREAM_TIMEOUT
    )
    stats_auth = {"Authorization": f"Bearer {admin.token}"}
    async with other:
        for source in ("first.wav", "after-idle.wav"):
            before = (await other.get("/api/v1/stream/stats", headers=stats_auth)).json()
            job = await alice.submit("music.transcode", {"source": source, "chunks": 30})
            frames, closed = await read_stream(other, job_path(job["id"]))
            assert closed
            assert_replays(frames, await alice.events(job["id"]))
            after = (await other.get("/api/v1/stream/stats", headers=stats_auth)).json()
            assert after["notices"] > before["notices"], "it consumed while followed"
            # The last follower left: the queue goes once the linger is over.
            await wait_notice_queues(stack_env, pid, 0)


async def test_a_follower_gets_every_event_in_order_then_the_stream_closes(
    alice: User, workers: dict[str, Proc]
) -> None:
    job = await alice.submit("music.transcode", {"source": "a.wav", "chunks": 20})
    frames, closed = await read_stream(alice.client, job_path(job["id"]))
    assert closed, "the stream ends after the terminal event"
    assert frames[0].retry is not None and frames[0].data is None, "a retry: hint comes first"
    history = await alice.events(job["id"])
    assert_replays(frames, history)
    assert frames[-1].event == "succeeded"
    assert [f.event for f in events_of(frames)][:3] == ["submitted", "queued", "started"]
    assert "progress" in {f.event for f in frames}


async def test_a_follower_resuming_after_event_k_gets_exactly_the_rest(
    alice: User, workers: dict[str, Proc]
) -> None:
    job = await alice.submit("music.transcode", {"source": "b.wav", "chunks": 30})
    k = 4
    first, closed = await read_stream(
        alice.client, job_path(job["id"]), stop=lambda fs: len(events_of(fs)) >= k
    )
    assert not closed
    assert [int(f.id) for f in events_of(first)] == list(range(1, k + 1))
    rest, closed = await read_stream(alice.client, job_path(job["id"]), last_event_id=k)
    assert closed
    history = await alice.events(job["id"])
    assert_replays(rest, history, after=k)
    assert [f.data for f in events_of(first) + events_of(rest)] == history


async def test_twenty_followers_joining_at_random_moments_see_no_gap_and_no_duplicate(
    alice: User, second_server: str, workers: dict[str, Proc]
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    job = await alice.submit("music.transcode", LONG_TRANSCODE)
    # One user's twenty streams on one process: the server allows that many (FOLLOWERS).
    client = httpx.AsyncClient(
        base_url=second_server,
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=STREAM_TIMEOUT,
    )

    async def follower(n: int) -> tuple[int, list[Frame]]:
        await asyncio.sleep(rng.uniform(0, 3.0))
        after = 0
        if n % 2:  # half resume from a random event that already exists
            r = await client.get(f"/api/v1/jobs/{job['id']}")
            after = rng.randint(0, r.json()["last_seq"])
        frames, closed = await read_stream(client, job_path(job["id"]), last_event_id=after or None)
        assert closed
        return after, frames

    async with client:
        results = await asyncio.gather(*(follower(n) for n in range(FOLLOWERS)))
    history = await alice.events(job["id"])
    assert history[-1]["type"] == "succeeded"
    assert sum(e["type"] == "progress" for e in history) > 20, "progress flowed during the joins"
    for after, frames in results:
        try:
            assert_replays(frames, history, after)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}: the follower resuming after {after}") from exc


async def test_errors_come_before_the_stream_starts(
    alice: User, bob: User, live_server: str, workers: dict[str, Proc]
) -> None:
    job = await alice.submit("music.fingerprint", {"source": "c.wav"})
    async with httpx.AsyncClient(base_url=live_server, timeout=STREAM_TIMEOUT) as anon:
        for path in (job_path(job["id"]), "/api/v1/stream"):
            r = await anon.get(path)
            assert r.status_code == 401, (path, r.text)
    for client, job_id in ((alice.client, str(uuid.uuid4())), (bob.client, job["id"])):
        r = await client.get(job_path(job_id))
        assert r.status_code == 404, r.text
        assert r.json()["detail"]["code"] == "JOB_NOT_FOUND"
    for bad in (b"abc", b"-1", b"1.5", b"1e3", b"99999999999999999999", "٣".encode()):
        for path in (job_path(job["id"]), "/api/v1/stream"):
            r = await alice.client.get(path, headers={b"Last-Event-ID": bad})
            assert r.status_code == 400, (bad, path, r.text)
            assert r.json()["detail"]["code"] == "INVALID_LAST_EVENT_ID"


async def test_a_finished_job_seen_to_its_end_answers_204(
    alice: User, workers: dict[str, Proc]
) -> None:
    job = await alice.wait_final(
        (await alice.submit("music.fingerprint", {"source": "d.wav"}))["id"]
    )
    r = await alice.client.get(job_path(job["id"]), headers={"Last-Event-ID": str(job["last_seq"])})
    assert r.status_code == 204
    frames, closed = await read_stream(
        alice.client, job_path(job["id"]), last_event_id=job["last_seq"] - 1
    )
    assert closed
    assert [(f.id, f.event) for f in events_of(frames)] == [(str(job["last_seq"]), "succeeded")]


async def test_a_failing_job_stream_ends_with_failed(alice: User, workers: dict[str, Proc]) -> None:
    job = await alice.submit("music.validate_master", {"source": "e.mp3"})
    frames, closed = await read_stream(alice.client, job_path(job["id"]))
    assert closed
    assert frames[-1].event == "failed"
    assert frames[-1].data is not None and frames[-1].data["data"]["error"]["type"]
    assert_replays(frames, await alice.events(job["id"]))


async def test_cookie_auth_works_for_an_eventsource(
    alice: User, live_server: str, workers: dict[str, Proc]
) -> None:
    job = await alice.submit("music.fingerprint", {"source": "f.wav"})
    async with httpx.AsyncClient(base_url=live_server, timeout=STREAM_TIMEOUT) as browser:
        r = await browser.post(
            "/api/v1/auth/cookie/login", data={"username": alice.email, "password": PASSWORD}
        )
        assert r.status_code == 204, r.text
        assert "authorization" not in browser.headers
        frames, closed = await read_stream(browser, job_path(job["id"]))
    assert closed
    assert_replays(frames, await alice.events(job["id"]))


async def test_disconnected_followers_leave_no_subscription_behind(
    alice: User, admin: User, workers: dict[str, Proc]
) -> None:
    await wait_subscribers(admin, 0)
    job = await alice.submit("music.transcode", LONG_TRANSCODE)
    tasks: list[asyncio.Task[Any]] = []
    subscribed = asyncio.Semaphore(0)

    async def hold(path: str, client: httpx.AsyncClient) -> None:
        def first_frame_after_subscribing(frames: list[Frame]) -> bool:
            # The first event of a job stream, or the id-only frame of a user stream,
            # is sent after the subscription exists (the retry hint before it).
            if len(frames) == 2:
                subscribed.release()
            return False

        await read_stream(client, path, stop=first_frame_after_subscribing)

    for _ in range(5):
        tasks.append(asyncio.create_task(hold(job_path(job["id"]), alice.client)))
    tasks.append(asyncio.create_task(hold("/api/v1/stream", alice.client)))
    tasks.append(asyncio.create_task(hold("/api/v1/stream", admin.client)))
    for _ in tasks:
        await asyncio.wait_for(subscribed.acquire(), 30)
    stats = await feed_stats(admin)
    assert stats["subscribers"] == 7
    assert stats["job_subscribers"] == 5 and stats["user_subscribers"] == 2
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await wait_subscribers(admin, 0)
    await alice.wait_final(job["id"])


async def test_the_user_stream_carries_all_my_jobs_and_only_mine(
    fresh: User, bob: User, admin: User, workers: dict[str, Proc]
) -> None:
    alice = fresh
    mine: set[str] = set()
    theirs: set[str] = set()
    live = {"alice": asyncio.Event(), "admin": asyncio.Event()}

    def follow_until_ended(who: str, jobs: set[str], count: int) -> Any:
        def stop(frames: list[Frame]) -> bool:
            if len(frames) == 2:  # the id-only frame: subscribed
                live[who].set()
            ended = {f.data["job_id"] for f in events_of(frames) if f.event in FINAL and f.data}
            return len(jobs) == count and jobs <= ended

        return stop

    following = asyncio.gather(
        read_stream(alice.client, "/api/v1/stream", stop=follow_until_ended("alice", mine, 2)),
        read_stream(admin.client, "/api/v1/stream", stop=follow_until_ended("admin", theirs, 3)),
    )
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in live.values())), 30)
    for source in ("g.wav", "h.wav"):
        mine.add((await alice.submit("music.transcode", {"source": source, "chunks": 5}))["id"])
    theirs.update(mine)
    theirs.add((await bob.submit("music.fingerprint", {"source": "i.wav"}))["id"])
    (alice_frames, _), (admin_frames, _) = await asyncio.wait_for(following, 60)

    start = alice_frames[1]
    assert start.data is None and int(start.id) >= 0, "an id-only frame marks where it started"
    got = events_of(alice_frames)
    assert {f.data["job_id"] for f in got if f.data} == mine, "only the caller's jobs"
    ids = [int(f.id) for f in got]
    assert ids == sorted(set(ids)) and ids[0] > int(start.id), "ids increase, no duplicate"
    for job_id in mine:
        history = await alice.events(job_id)
        assert [f.data for f in got if f.data and f.data["job_id"] == job_id] == history
    admin_jobs = {f.data["job_id"] for f in events_of(admin_frames) if f.data}
    assert theirs <= admin_jobs, "a superuser sees every user's jobs"


async def test_the_user_stream_resumes_from_its_last_id(
    fresh: User, workers: dict[str, Proc]
) -> None:
    alice = fresh
    first, _ = await read_stream(alice.client, "/api/v1/stream", stop=lambda fs: len(fs) >= 2)
    start_id = int(first[1].id)
    # Nobody is listening while these run: the resumed stream replays them.
    one = await alice.submit("music.fingerprint", {"source": "j.wav"})
    await alice.wait_final(one["id"])
    k = 3
    part1, _ = await read_stream(
        alice.client,
        "/api/v1/stream",
        last_event_id=start_id,
        stop=lambda fs: len(events_of(fs)) >= k,
    )
    two = await alice.submit("music.fingerprint", {"source": "k.wav"})
    await alice.wait_final(two["id"])

    def both_done(frames: list[Frame]) -> bool:
        return {two["id"]} <= {
            f.data["job_id"] for f in events_of(frames) if f.event in FINAL and f.data
        }

    part2, _ = await read_stream(
        alice.client, "/api/v1/stream", last_event_id=int(part1[-1].id), stop=both_done
    )
    got = [(f.data["job_id"], f.data["seq"]) for f in events_of(part1) + events_of(part2) if f.data]
    expected = [(e["job_id"], e["seq"]) for j in (one, two) for e in await alice.events(j["id"])]
    assert got == expected
    ids = [int(f.id) for f in events_of(part1) + events_of(part2)]
    assert ids == sorted(set(ids)) and ids[0] > start_id


async def test_two_api_processes_both_stream_a_job_live(
    alice: User, admin: User, second_server: str, workers: dict[str, Proc]
) -> None:
    other = httpx.AsyncClient(
        base_url=second_server,
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=STREAM_TIMEOUT,
    )
    async with other:
        r = await other.get(
            "/api/v1/stream/stats", headers={"Authorization": f"Bearer {admin.token}"}
        )
        before = r.json()
        assert before["mode"] == "notices"
        job = await alice.submit("music.transcode", {"source": "l.wav", "chunks": 40})
        (here, closed_here), (there, closed_there) = await asyncio.gather(
            read_stream(alice.client, job_path(job["id"])),
            read_stream(other, job_path(job["id"])),
        )
        assert closed_here and closed_there
        history = await alice.events(job["id"])
        assert_replays(here, history)
        assert_replays(there, history)
        r = await other.get(
            "/api/v1/stream/stats", headers={"Authorization": f"Bearer {admin.token}"}
        )
        after = r.json()
    # The workers' notices reached the second process too (each has its own queue, from
    # its first follower on: every event after `started` came as a notice).
    assert after["notices"] - before["notices"] >= len(history) - 3


async def test_pings_keep_a_quiet_stream_alive(
    alice: User, second_server: str, workers: dict[str, Proc]
) -> None:
    job = await alice.submit("music.fingerprint", {"source": "m.wav"}, delay_seconds=3)
    raw = b""
    async with (
        httpx.AsyncClient(
            base_url=second_server,
            headers={"Authorization": f"Bearer {alice.token}"},
            timeout=STREAM_TIMEOUT,
        ) as other,
        other.stream("GET", job_path(job["id"])) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_bytes():
            raw += chunk
            if b": ping" in raw:
                break
    assert raw.startswith(b"retry: ")
    assert b"id: 1\nevent: submitted\ndata: {" in raw
    assert b"\n: ping" in raw


async def test_a_server_without_notices_still_streams_everything(
    alice: User, polling_server: str, workers: dict[str, Proc]
) -> None:
    async with httpx.AsyncClient(
        base_url=polling_server,
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=STREAM_TIMEOUT,
    ) as client:
        job = await alice.submit("music.transcode", {"source": "n.wav", "chunks": 40})
        frames, closed = await read_stream(client, job_path(job["id"]))
    assert closed
    assert_replays(frames, await alice.events(job["id"]))


async def test_a_chatty_job_is_coalesced_and_keeps_its_final_progress(
    alice: User, settings: Settings, workers: dict[str, Proc]
) -> None:
    calls = 20_000
    job = await alice.submit("music.chatty", {"calls": calls, "seconds": 1.5})
    frames, closed = await read_stream(alice.client, job_path(job["id"]))
    assert closed
    history = await alice.events(job["id"])
    assert_replays(frames, history)
    progress = [e for e in history if e["type"] == "progress"]
    assert 1 < len(progress) < calls / 100, len(progress)
    assert history[-1]["type"] == "succeeded"
    assert history[-2]["type"] == "progress", "the final progress precedes the terminal event"
    assert history[-2]["data"] == {"progress": 100, "message": f"call {calls}/{calls}"}
    values = [e["data"]["progress"] for e in progress]
    assert values == sorted(values), "latest wins: progress never goes back"
    # Writes are at least the interval apart, except the final one written at the end.
    interval = settings.progress_min_interval_ms / 1000
    times = [_at(e) for e in progress[:-1]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= interval - CLOCK_SLACK for gap in gaps), gaps


def _at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"]).timestamp()
