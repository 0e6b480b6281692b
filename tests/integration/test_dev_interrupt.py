"""Ctrl-C of `jobline dev` in the middle of a long job (issue 16, 1b).

Found by a newcomer: the stop killed the worker after its grace period, and after the
restart the job stayed `running` for good (the file broker redelivers nothing). Now the
stop names the jobs it interrupted, and the next start records `worker_lost` for each and
runs it again, once, by its retry policy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.dev_helpers import login, project_dir, start_dev, wait_final
from tests.support import free_port

pytestmark = pytest.mark.integration

# 30 chunks of 0.5 s: long enough to be cut, short enough to run again whole.
LONG = {"source": "long.wav", "chunks": 30, "step_seconds": 0.5}
WAIT = 120.0


def wait_progress(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] == "running" and job["progress"] > 0:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_ctrl_c_mid_job_names_it_and_the_next_start_runs_it_again_once(tmp_path: Path) -> None:
    workdir = project_dir(tmp_path / "project")
    env = {
        "JOBLINE_API_PORT": str(free_port()),
        # The worker waits for its job when asked to stop; dev kills it after this.
        "JOBLINE_DEV_STOP_SECONDS": "3",
    }
    dev = start_dev(workdir, env)
    try:
        banner = dev.banner()
        client = login(banner.base, banner.email, banner.password)
        r = client.post("/api/v1/jobs", json={"type": "music.transcode", "payload": LONG})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        wait_progress(client, job_id)
    except BaseException:
        dev.kill()
        raise
    assert dev.interrupt() == 0
    out = dev.output()
    assert "dev: 1 job(s) interrupted; the next start runs them again" in out, out[-3000:]
    named = [line for line in out.splitlines() if job_id in line]
    assert named and "music.transcode" in named[-1] and "attempt 1" in named[-1], named

    again = start_dev(workdir, env)
    try:
        banner = again.banner()
        client = login(banner.base, banner.email, banner.password)
        job = wait_final(client, job_id, within=WAIT)
        events = client.get(f"/api/v1/jobs/{job_id}/events", params={"size": 100}).json()
    except BaseException:
        again.kill()
        raise
    assert again.interrupt() == 0
    assert job["state"] == "succeeded" and job["attempt"] == 2, job
    names = [e["type"] for e in events["items"]]
    assert names.count("worker_lost") == 1 and names.count("started") == 2, names
    assert names[-1] == "succeeded", names
    lost = next(e for e in events["items"] if e["type"] == "worker_lost")
    assert lost["attempt"] == 1 and lost["data"]["reason"] == "its worker stopped"
    assert "interrupted" not in again.output().split("dev: stopping")[-1]
