"""A Python client for the jobline HTTP API (httpx, httpx-sse).

    with Client.login("http://127.0.0.1:8000", "me@example.com", "secret") as jobs:
        job = jobs.submit("music.transcode", {"source": "song.wav"})
        for event in jobs.follow(job["id"]):
            print(event["seq"], event["type"], event["data"])

`follow` resumes by itself after a dropped connection, sending the last id it received
as Last-Event-ID, so it yields every event exactly once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

# Standard library only (tests/unit/test_client_imports.py): no server package comes along.
from jobline.jobs.states import FINAL_EVENTS

API = "/api/v1"
DEFAULT_TIMEOUT_SECONDS = 30.0
# Longer than the server's ping interval (JOBLINE_SSE_PING_SECONDS, 15 s by default):
# this long without a byte, even a ping, means the connection is dead.
DEFAULT_STREAM_READ_TIMEOUT_SECONDS = 60.0
DEFAULT_RECONNECT_SECONDS = 1.0
DEFAULT_MAX_RECONNECTS = 10
PAGE_SIZE = 100  # the API's largest page


class ClientError(Exception):
    """The API refused a request; `code` is its error code (e.g. JOB_NOT_FOUND).

    `errors` holds what a 422 names field by field (`loc`, `msg`, `type`), else nothing.
    """

    def __init__(
        self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []


class Client:
    """A synchronous client of one jobline API, authenticated by a bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        stream_read_timeout: float = DEFAULT_STREAM_READ_TIMEOUT_SECONDS,
        reconnect_seconds: float = DEFAULT_RECONNECT_SECONDS,
        max_reconnects: int = DEFAULT_MAX_RECONNECTS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self.stream_timeout = httpx.Timeout(timeout, read=stream_read_timeout)
        self.reconnect_seconds = reconnect_seconds
        self.max_reconnects = max_reconnects

    @property
    def base_url(self) -> str:
        """The API's URL this client talks to."""
        return str(self.http.base_url).rstrip("/")

    @classmethod
    def login(cls, base_url: str, email: str, password: str, **options: Any) -> Client:
        """A client holding a fresh token for this account (POST /auth/jwt/login)."""
        client = cls(base_url, **options)
        try:
            r = client.http.post(
                f"{API}/auth/jwt/login", data={"username": email, "password": password}
            )
            _check(r)
        except BaseException:
            client.close()
            raise
        client.http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        return client

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def submit(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: int = 0,
        delay_seconds: float | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Submit a job; returns the Job (the first one for a repeated Idempotency-Key)."""
        body: dict[str, Any] = {"type": type, "payload": payload or {}, "priority": priority}
        if delay_seconds is not None:
            body["delay_seconds"] = delay_seconds
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        r = self.http.post(f"{API}/jobs", json=body, headers=headers)
        _check(r)
        job: dict[str, Any] = r.json()
        return job

    def get(self, job_id: str) -> dict[str, Any]:
        """The job."""
        r = self.http.get(f"{API}/jobs/{job_id}")
        _check(r)
        job: dict[str, Any] = r.json()
        return job

    def events(
        self, job_id: str, after_seq: int = 0, page_size: int = PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """The job's stored events after `after_seq`, oldest first, walking every page."""
        params: dict[str, Any] = {"after_seq": after_seq, "size": page_size}
        while True:
            r = self.http.get(f"{API}/jobs/{job_id}/events", params=params)
            _check(r)
            page = r.json()
            yield from page["items"]
            if not page["next_page"]:
                return
            params = {"cursor": page["next_page"], "size": page_size}

    def follow(self, job_id: str, last_event_id: int | None = None) -> Iterator[dict[str, Any]]:
        """The job's events after `last_event_id` (all without), live, until the terminal one.

        A dropped connection is resumed with the last id received; after
        `max_reconnects` failures in a row the error is raised.
        """
        for _, event in self._sse(f"{API}/jobs/{job_id}/stream", last_event_id):
            yield event

    def stream(self, last_event_id: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
        """The events of all your jobs (all jobs for a superuser), live, with their ids.

        Yields (id, event); the id is the event's global row id, which `last_event_id`
        resumes after. Never ends by itself.
        """
        for sse_id, event in self._sse(f"{API}/stream", last_event_id):
            if event:
                yield sse_id, event

    def _sse(self, path: str, last: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
        """(id, event) of a stream, resumed after drops; an id-only frame gives an empty event.

        Ends when the server closes the stream after a terminal event, or answers 204.
        """
        failures = 0
        delay = self.reconnect_seconds
        while True:
            headers = {"Last-Event-ID": str(last)} if last is not None else {}
            last_type: str | None = None
            received = False
            try:
                with connect_sse(
                    self.http, "GET", path, headers=headers, timeout=self.stream_timeout
                ) as source:
                    response = source.response
                    if response.status_code == httpx.codes.NO_CONTENT:
                        return
                    if response.status_code >= httpx.codes.BAD_REQUEST:
                        response.read()
                        _check(response)
                    for sse in source.iter_sse():
                        if sse.retry is not None:
                            delay = sse.retry / 1000
                        if not sse.id:
                            continue
                        event: dict[str, Any] = json.loads(sse.data) if sse.data else {}
                        last, last_type, received = int(sse.id), event.get("type"), True
                        failures = 0
                        yield last, event
            except (httpx.TransportError, SSEError, ClientError) as exc:
                if isinstance(exc, ClientError) and exc.status < httpx.codes.INTERNAL_SERVER_ERROR:
                    raise
                failures += 1
                if failures > self.max_reconnects:
                    raise
            else:
                if last_type in FINAL_EVENTS:
                    return
                if not received:
                    failures += 1
                    if failures > self.max_reconnects:
                        raise ClientError(0, "STREAM_CLOSED", "the stream keeps closing")
            time.sleep(delay)


def _check(response: httpx.Response) -> None:
    if response.is_success:
        return
    code, message = "HTTP_ERROR", response.reason_phrase
    errors: list[dict[str, Any]] = []
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, dict):
        code, message = detail.get("code", code), detail.get("message", message)
        errors = [e for e in detail.get("errors") or [] if isinstance(e, dict)]
    elif isinstance(detail, str):
        code, message = detail, detail
    elif isinstance(detail, list):
        code, message = "VALIDATION_ERROR", "; ".join(str(d.get("msg")) for d in detail)
        errors = [d for d in detail if isinstance(d, dict)]
    raise ClientError(response.status_code, code, message, errors)
