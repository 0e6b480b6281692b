"""Generated API tests: schemathesis against the live OpenAPI schema of a real server.

A real uvicorn server on MariaDB + RabbitMQ, a logged-in user's bearer token, every
operation, in every phase (the schema's examples, coverage of boundary values, random
fuzzing, and stateful sequences that follow the schema's links: submit -> get -> events ->
cancel -> retry). Every response must be a documented status with a body conforming to
its documented schema, and none may be a 5xx.

The suite's size (`SCHEMATHESIS_MAX_EXAMPLES`, default below) keeps it well under five
minutes on two cores; a larger run by hand:

    JOBLINE_SCHEMATHESIS_MAX_EXAMPLES=500 .venv/bin/pytest tests/integration/test_schemathesis.py -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from jobline.config import Settings
from tests.support import JOBLINE, PASSWORD, REPO, Proc, add_vhost, drop_vhost, start_server

pytestmark = pytest.mark.integration

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
MAX_EXAMPLES = int(os.environ.get("JOBLINE_SCHEMATHESIS_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("JOBLINE_SCHEMATHESIS_SEED", "20261128"))
# The stream routes answer text/event-stream that never ends by itself: their body has no
# JSON schema to conform to, but their status codes and 5xx are still checked.
STREAMS = r"^/api/v1/(jobs/\{job_id\}/)?stream$"
RUN_TIMEOUT_SECONDS = 600
SECRET = "schemathesis-secret-" + "s" * 40
# Checks left out, each for a reason:
# - positive_data_acceptance: a request valid by the document may still be refused by
#   contract: a repeated Idempotency-Key with another body is 409 (hypothesis reuses its
#   minimal key "0" constantly), a user's 10 000th unfinished job is 429.
EXCLUDED_CHECKS = ["positive_data_acceptance"]


@pytest.fixture(scope="module")
def server(
    migrated: Settings, stack_env: dict[str, str], logdir: Path
) -> Iterator[tuple[Proc, str]]:
    """A server of its own: schemathesis makes many users and jobs, and fails many logins.

    Its jobs go to a vhost no worker consumes.

    Its own secret keeps its failed logins in counters of their own (accounts/throttle.py
    keys them with the secret), away from the other tests' logins from 127.0.0.1.
    """
    with private_vhost(stack_env["JOBLINE_BROKER_URL"]) as broker:
        env = {**stack_env, "JOBLINE_SECRET_KEY": SECRET, "JOBLINE_BROKER_URL": broker}
        proc, base = start_server(env, logdir)
        yield proc, base
        proc.stop()


@contextmanager
def private_vhost(broker_url: str) -> Iterator[str]:
    """A vhost of its own: the jobs schemathesis submits (a chatty job of 600 seconds,
    a transcode of hours) wait there, out of reach of the run's workers."""
    fuzz = f"{broker_url.rsplit('/', 1)[1]}_fuzz"
    url = add_vhost(broker_url, fuzz)
    try:
        yield url
    finally:
        drop_vhost(broker_url, fuzz)


@pytest.fixture(scope="module")
def token(server: tuple[Proc, str]) -> str:
    """A logged-in user's bearer token."""
    _, base = server
    email = "fuzz-user@example.com"
    with httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code in (201, 400), r.text
        r = c.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token


def run_schemathesis(base: str, token: str, report: Path, *extra: str) -> tuple[int, str]:
    args = [
        SCHEMATHESIS,
        "run",
        f"{base}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(EXCLUDED_CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        *extra,
    ]
    done = subprocess.run(
        args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return done.returncode, done.stdout + done.stderr


def summary(report: Path) -> dict[str, Any]:
    """Operations and cases from the ndjson event stream."""
    operations: set[str] = set()
    cases = 0
    for line in report.read_text().splitlines():
        event = json.loads(line)
        for kind, body in event.items():
            if kind == "ScenarioFinished":
                recorder = body.get("recorder") or {}
                label = recorder.get("label")
                if label:
                    operations.add(label)
                cases += len(recorder.get("cases") or {})
    return {"operations": sorted(operations), "cases": cases}


def test_no_5xx_and_every_response_as_documented(
    server: tuple[Proc, str], token: str, tmp_path: Path, logdir: Path
) -> None:
    """Every operation but the two streams, all phases, every check (see EXCLUDED_CHECKS)."""
    proc, base = server
    report = tmp_path / "events.ndjson"
    code, output = run_schemathesis(base, token, report, "--exclude-path-regex", STREAMS)
    # The whole output is kept beside the server logs; the summary goes to the test log.
    (logdir / "schemathesis.txt").write_text(output)
    counts = summary(report)
    print(output[output.find("Coverage") - 10 :][:1500])
    print(f"schemathesis: {len(counts['operations'])} operations, {counts['cases']} cases")
    assert code == 0, output[-20000:]
    assert len(counts["operations"]) >= 20, counts
    assert "Traceback" not in proc.output(), proc.output()[-5000:]


SUPERUSER_ONLY = r"^/api/v1/(audit|stream/stats|users/\{id\})$"


@pytest.fixture(scope="module")
def superuser_token(server: tuple[Proc, str], stack_env: dict[str, str]) -> str:
    """A superuser made by `jobline users create --superuser`, logged in."""
    _, base = server
    email = "fuzz-admin@example.com"
    env = {**os.environ, **stack_env, "JOBLINE_SECRET_KEY": SECRET}
    done = subprocess.run(
        [JOBLINE, "users", "create", email, "--superuser"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # An address of its own: the fuzzing before may have used up 127.0.0.1's login failures.
    r = httpx.post(
        f"{base}/api/v1/auth/jwt/login",
        data={"username": email, "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def test_the_superuser_routes_as_a_superuser(
    server: tuple[Proc, str], superuser_token: str, tmp_path: Path, logdir: Path
) -> None:
    """The routes a user gets 403 from, with a superuser's token (no stateful phase: it
    would follow links to delete or deactivate the accounts it is using)."""
    proc, base = server
    report = tmp_path / "events.ndjson"
    code, output = run_schemathesis(
        base,
        superuser_token,
        report,
        "--include-path-regex",
        SUPERUSER_ONLY,
        "--phases",
        "examples,coverage,fuzzing",
    )
    (logdir / "schemathesis-superuser.txt").write_text(output)
    counts = summary(report)
    print(
        f"schemathesis (superuser): {len(counts['operations'])} operations, {counts['cases']} cases"
    )
    assert code == 0, output[-20000:]
    assert len(counts["operations"]) == 5, counts
    assert "Traceback" not in proc.output(), proc.output()[-5000:]


def documented(schema: Any, method: str, path: str) -> set[int]:
    responses = schema.raw_schema["paths"][path][method.lower()]["responses"]
    return {int(code) for code in responses}


def fuzz_stream(
    strategy: Any, base: str, auth: dict[str, str], allowed: set[int], statuses: Counter[int]
) -> None:
    """Send MAX_EXAMPLES generated requests; read each answer's status and headers only."""

    @given(strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=base, headers=auth)
        headers = {
            k: v for k, v in kwargs["headers"].items() if isinstance(v, str) and "\0" not in v
        }
        try:
            request = httpx.Request(
                kwargs["method"], kwargs["url"], headers=headers, params=kwargs["params"]
            )
        except (httpx.InvalidURL, UnicodeEncodeError):
            return  # not sendable over HTTP at all: nothing reaches the server
        with httpx.Client(timeout=30) as client:
            response = client.send(request, stream=True)
            try:
                statuses[response.status_code] += 1
                curl = case.as_curl_command(base_url=base)
                assert response.status_code < 500, curl
                assert response.status_code in allowed, (response.status_code, curl)
                if response.status_code == 200:
                    assert response.headers["content-type"].startswith("text/event-stream")
            finally:
                response.close()

    send()


def test_the_streams_never_5xx_and_answer_documented_statuses(
    server: tuple[Proc, str], token: str
) -> None:
    """The SSE routes, fuzzed by schemathesis' generators; each stream is closed at its headers.

    Their body never ends by itself (it follows live events), so the CLI run above cannot
    read them; here each generated request is sent, its status and content type are
    checked against the document, and the connection is dropped.
    """
    proc, base = server
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json").include(path_regex=STREAMS)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as c:
        job = c.post(
            "/api/v1/jobs", json={"type": "video.thumbnail", "payload": {"source": "s.mp4"}}
        )
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
    seen: dict[str, Counter[int]] = {}
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()
        allowed = documented(schema, operation.method, operation.path)
        statuses = seen.setdefault(operation.label, Counter())
        pinned = {"job_id": job_id} if "{job_id}" in operation.path else None
        strategies = [
            operation.as_strategy(mode, path_parameters=params)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            for params in ([None] if pinned is None else [None, pinned])
        ]
        # One mix: a negative variant may not exist for every part (it is filtered out).
        fuzz_stream(st.one_of(strategies), base, auth, allowed, statuses)
    print({label: dict(counter) for label, counter in seen.items()})
    assert len(seen) == 2, seen
    assert all(sum(c.values()) > 0 for c in seen.values()), seen
    assert "Traceback" not in proc.output(), proc.output()[-5000:]
