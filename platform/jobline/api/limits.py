"""A cap on request bodies, enforced before the body is read (pure ASGI, no per-request task)."""

from __future__ import annotations

import asyncio
import json
import re

from fastapi.responses import JSONResponse
from starlette import status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobline.api.errors import problem


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413.

    A declared Content-Length is checked before any byte is read (the server then stops at
    that length). A chunked body has no length to check: it is read up to the limit and
    refused as soon as it passes it, instead of being read whole into memory.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:
            # No body at all (a GET, an SSE stream): nothing to count.
            await self.app(scope, receive, send)
            return
        body = await self._read_capped(receive)
        if body is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, replay_body(body, receive), send)

    async def _read_capped(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None once they pass the limit (the rest is never read)."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages  # the client went away; the app sees the disconnect
            size += len(message.get("body", b""))
            if size > self.limit:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            problem("PAYLOAD_TOO_LARGE", f"the request body is over {self.limit} bytes"),
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
        )
        await response(scope, receive, send)


def replay_body(messages: list[Message], receive: Receive) -> Receive:
    """A receive() that gives back the messages already read, then the real ones."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class BodyGuard:
    """Reads a request body (already capped by BodyLimit) within a deadline, checks its depth.

    - A client that has not sent its whole body within `read_timeout` seconds gets 408: a
      slow sender costs a coroutine for that long, never an API worker for ever.
    - A JSON body (or one without a content type, which FastAPI parses as JSON) nested
      deeper than `max_depth` gets 400 JSON_TOO_DEEP before any parser recurses into it.
    The app then reads the same messages, replayed.
    """

    def __init__(self, app: ASGIApp, *, read_timeout: float, max_depth: int) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"content-length" not in headers and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        try:
            # asyncio's timeout, not anyio's fail_after: the same deadline at half the cost
            # on every request with a body (the API runs on asyncio only).
            async with asyncio.timeout(self.read_timeout):
                messages = await read_body(receive)
        except TimeoutError:
            response = JSONResponse(
                problem(
                    "REQUEST_TIMEOUT",
                    f"the request body did not arrive within {self.read_timeout:g} seconds",
                ),
                status_code=status.HTTP_408_REQUEST_TIMEOUT,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if content_type in (b"", b"application/json") or content_type.endswith(b"+json"):
            body = b"".join(m.get("body", b"") for m in messages)
            depth = json_depth(body)
            if depth > self.max_depth:
                response = JSONResponse(
                    problem(
                        "JSON_TOO_DEEP",
                        f"the JSON body is nested {depth} levels deep; the limit is "
                        f"{self.max_depth}",
                    ),
                    status_code=status.HTTP_400_BAD_REQUEST,
                )
                await response(scope, receive, send)
                return
            if _SURROGATE_ESCAPE.search(body) and not _encodable(body):
                response = JSONResponse(
                    problem(
                        "INVALID_UNICODE",
                        "the JSON body holds a lone surrogate escape (like \\ud800): text "
                        "that is not Unicode cannot be stored",
                    ),
                    status_code=status.HTTP_400_BAD_REQUEST,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, replay_body(messages, receive), send)


async def read_body(receive: Receive) -> list[Message]:
    """Every message of a request body (callers bound its size and time)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


# A \uD800-\uDFFF escape: half of a pair (fine, as most clients send emoji) or alone.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(body: bytes) -> bool:
    """False when the JSON text decodes to a string with a lone surrogate (not UTF-8-able).

    Malformed JSON counts as encodable: the route refuses it with its own 422.
    """
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    except ValueError:
        return True
    return True


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENERS = frozenset(b"[{")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes) -> int:
    """How deeply a JSON text nests arrays and objects; brackets inside strings don't count.

    Strings are cut out and the brackets kept by C-level passes; the Python loop then
    walks the brackets only (a few for an ordinary body).
    """
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        if byte in _OPENERS:
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest
