"""A job goes in over HTTP, runs on a real worker, and every transition is an event."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from tortoise.backends.mysql import client as mysql_client

from tests.support import Proc, User, assert_history, types_of

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("type", "payload", "result_key"),
    [
        ("music.transcode", {"source": "song.wav", "chunks": 5}, "output"),
        ("music.fingerprint", {"source": "song.wav"}, "fingerprint"),
        ("video.thumbnail", {"source": "clip.mp4", "at_seconds": [1, 2, 3]}, "frames"),
    ],
)
async def test_each_domain_runs_a_job_to_succeeded_with_its_history(
    user: User, workers: dict[str, Proc], type: str, payload: dict[str, Any], result_key: str
) -> None:
    submitted = await user.submit(type, payload)
    # Answered at commit: `pending`, or further if the batch was published meanwhile.
    assert submitted["state"] in ("pending", "queued", "running", "succeeded")
    job = await user.wait_final(submitted["id"])
    assert job["state"] == "succeeded", job
    assert result_key in job["result"]
    assert job["progress"] == 100
    assert job["finished_at"] and job["started_at"]

    events = await user.events(job["id"])
    assert_history(events, job)
    names = types_of(events)
    assert names[:3] == ["submitted", "queued", "started"]
    assert names[-1] == "succeeded"
    progress = names[3:-1]
    assert progress and set(progress) == {"progress"}
    assert events[-2]["data"]["progress"] == 100, "the last progress before the end is kept"
    assert events[-1]["data"]["result"] == job["result"]
    assert all(e["attempt"] == 1 for e in events)


async def test_a_job_failing_on_bad_input_ends_failed_with_its_error(
    user: User, workers: dict[str, Proc]
) -> None:
    submitted = await user.submit("music.validate_master", {"source": "song.mp3"})
    job = await user.wait_final(submitted["id"])
    assert job["state"] == "failed"
    assert job["error"]["type"] == "UnsupportedMaster"
    assert "not a lossless master" in job["error"]["message"]
    events = await user.events(job["id"])
    assert_history(events, job)
    assert types_of(events)[-1] == "failed"
    assert events[-1]["data"]["error"] == job["error"]
    assert "retrying" not in types_of(events)


async def test_a_transient_error_retries_with_a_new_attempt_then_succeeds(
    user: User, workers: dict[str, Proc]
) -> None:
    submitted = await user.submit("video.publish", {"source": "clip.mp4", "flaky_attempts": 2})
    job = await user.wait_final(submitted["id"])
    assert job["state"] == "succeeded", job
    assert job["attempt"] == 3
    assert job["result"]["attempts"] == 3
    events = await user.events(job["id"])
    assert_history(events, job)
    retrying = [e for e in events if e["type"] == "retrying"]
    assert [e["attempt"] for e in retrying] == [1, 2]
    assert all(e["data"]["error"]["type"] == "TransientError" for e in retrying)
    assert [e["attempt"] for e in events if e["type"] == "started"] == [1, 2, 3]
    assert types_of(events)[-1] == "succeeded" and events[-1]["attempt"] == 3


async def test_retries_stop_at_max_retries(user: User, workers: dict[str, Proc]) -> None:
    # video.publish allows 4 retries: 5 attempts, all timing out.
    submitted = await user.submit("video.publish", {"source": "clip.mp4", "flaky_attempts": 10})
    job = await user.wait_final(submitted["id"], within=90)
    assert job["state"] == "failed"
    assert job["attempt"] == 5
    events = await user.events(job["id"])
    assert len([e for e in events if e["type"] == "retrying"]) == 4
    assert job["error"]["type"] == "TransientError"


async def test_send_task_job_runs_on_a_worker_the_api_never_imported(
    user: User, workers: dict[str, Proc]
) -> None:
    submitted = await user.submit("video.render", {"project": "trailer", "frames": 30})
    job = await user.wait_final(submitted["id"])
    assert job["state"] == "succeeded", job
    assert job["result"] == {"output": "trailer.mp4", "frames": 30}
    # This process serves the API in the tests; the render code must never have been loaded here.
    assert "tasks.video_render" not in sys.modules
    assert (
        "tasks.video_render" in workers["video"].output()
        or "video.render" in workers["video"].output()
    )


async def test_a_bad_payload_for_a_send_task_type_fails_on_the_worker(
    user: User, workers: dict[str, Proc]
) -> None:
    submitted = await user.submit("video.render", {"frames": "many"})
    job = await user.wait_final(submitted["id"])
    assert job["state"] == "failed"
    assert job["error"]["code"] == "INVALID_PAYLOAD"


def test_mysql_driver_is_aiomysql() -> None:
    # The driver tortoise imported, under a name its module keeps to itself.
    assert vars(mysql_client)["mysql"].__name__ == "aiomysql"
    with pytest.raises(ImportError):
        __import__("asyncmy")
