"""Several machines, played by several processes on one: two API processes and two workers
of one domain on the same MariaDB and RabbitMQ (neither can tell a process from a host).

docs/deployment.md rests on these, and on test_stream.py (two API processes stream one job
live), test_faults.py (racing relays publish each job once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from jobline.config import Settings
from tests.integration.stream_helpers import STREAM_TIMEOUT, events_of, live_user, read_stream
from tests.integration.test_exposure import stored_started
from tests.support import Proc, User, start_server, start_worker

pytestmark = pytest.mark.integration

JOBS = 16
RESUME_AFTER = 4
SECOND_NODE = "music@host-2"


@pytest.fixture(scope="module")
def second_api(migrated: Settings, stack_env: dict[str, str], logdir: Path) -> Iterator[str]:
    """Another API "host": the same settings (the same JOBLINE_SECRET_KEY above all)."""
    proc, base = start_server(stack_env, logdir)
    yield base
    proc.stop()


@pytest.fixture(scope="module")
def second_music_worker(
    workers: dict[str, Proc], stack_env: dict[str, str], logdir: Path
) -> Iterator[Proc]:
    """A second worker of the music domain, as another host would run it: on this host it
    needs a node name of its own (Celery's control queue is per name), the other host's."""
    proc = start_worker("music", stack_env, logdir, f"--name={SECOND_NODE}")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
async def alice(live_server: str) -> AsyncIterator[User]:
    user = await live_user(live_server)
    yield user
    await user.client.aclose()


async def test_a_stream_cut_on_one_api_process_resumes_on_another(
    alice: User, second_api: str, workers: dict[str, Proc]
) -> None:
    job = await alice.submit("music.transcode", {"source": "hosts.wav", "chunks": 30})
    path = f"/api/v1/jobs/{job['id']}/stream"
    first, closed = await read_stream(
        alice.client, path, stop=lambda frames: len(events_of(frames)) >= RESUME_AFTER
    )
    assert not closed
    # The proxy sends the reconnect elsewhere: the token is good there, the history too.
    other = httpx.AsyncClient(
        base_url=second_api,
        headers={"Authorization": f"Bearer {alice.token}"},
        timeout=STREAM_TIMEOUT,
    )
    async with other:
        assert (await other.get("/api/v1/users/me")).json()["email"] == alice.email
        # What a proxy needs to pass a stream through unbuffered (nginx obeys the header).
        async with other.stream("GET", path, headers={"Last-Event-ID": "1"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-accel-buffering"] == "no"
        rest, closed = await read_stream(other, path, last_event_id=RESUME_AFTER)
    assert closed
    history = await alice.events(job["id"])
    seen = events_of(first)[:RESUME_AFTER] + events_of(rest)
    assert [f.data for f in seen] == history
    assert history[-1]["type"] == "succeeded"


async def test_two_workers_of_one_domain_share_its_queue_and_run_each_job_once(
    alice: User, workers: dict[str, Proc], second_music_worker: Proc, mysql_url: str
) -> None:
    submitted = await asyncio.gather(
        *(
            alice.submit(
                "music.transcode", {"source": f"{i}.wav", "chunks": 5, "step_seconds": 0.05}
            )
            for i in range(JOBS)
        )
    )
    ids = [job["id"] for job in submitted]
    ran_by: dict[str, set[str]] = {}
    for job_id in ids:
        job = await alice.wait_final(job_id)
        assert job["state"] == "succeeded", job
        events = await alice.events(job_id)
        started = [e for e in events if e["type"] == "started"]
        assert len(started) == 1 and events[-1]["type"] == "succeeded", events
        # Which worker ran it is for operators (a user's events leave it out): the stored row.
        ran_by.setdefault(stored_started(mysql_url, job_id)["worker"], set()).add(job_id)
    assert SECOND_NODE in ran_by and len(ran_by) == 2, {k: len(v) for k, v in ran_by.items()}
