"""A cap on request bodies, enforced before the body is read (pure ASGI, no per-request task)."""

from __future__ import annotations

import asyncio
import json
import math
import re
from array import array
from collections.abc import Iterator
from itertools import accumulate, islice
from typing import Any

from fastapi.responses import JSONResponse
from starlette import status
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobline.api.errors import problem, validation_problem


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
    """Reads a request body (already capped by BodyLimit) within a deadline, and checks a JSON one.

    - A client that has not sent its whole body within `read_timeout` seconds gets 408: a
      slow sender costs a coroutine for that long, never an API worker for ever.
    - A JSON body (or one without a content type) must be UTF-8 (RFC 8259): another
      `charset`, or bytes that are not UTF-8 (a UTF-16 body), get 415. The checks below
      read bytes, and Python's parser would otherwise guess UTF-16 or UTF-32 by itself.
    - Nested deeper than `max_depth`: 400 JSON_TOO_DEEP, before any parser recurses into it.
    - NaN, Infinity or a number too large for a float (1e400): 422, naming where. Python's
      parser reads them, but they are not JSON: MariaDB refuses the row, a response
      cannot carry them back.
    - A lone surrogate escape: 400 INVALID_UNICODE.
    Every check is one linear pass (tests/unit/api/test_guards.py measures it against a
    plain parse): it runs before authentication, on anyone's body. The app then reads the
    same messages, replayed.
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
        content_type = headers.get(b"content-type", b"")
        if is_json(content_type):
            body = b"".join(m.get("body", b"") for m in messages)
            refusal = self.check_json(content_type, body)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, replay_body(messages, receive), send)

    def check_json(self, content_type: bytes, body: bytes) -> JSONResponse | None:
        """The answer refusing this JSON body, or None when it may go on to the route."""
        if not body:
            return None
        encoding = _encoding_problem(content_type, body)
        if encoding is not None:
            return JSONResponse(
                problem("UNSUPPORTED_ENCODING", encoding),
                status_code=status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
        outside = outside_strings(body)
        if bracket_depth(outside, stop_above=self.max_depth) > self.max_depth:
            return JSONResponse(
                problem(
                    "JSON_TOO_DEEP",
                    f"the JSON body is nested more than {self.max_depth} levels deep (the limit)",
                ),
                status_code=status.HTTP_400_BAD_REQUEST,
            )
        if may_be_non_finite(outside):
            found = non_finite(body)
            if found:
                return JSONResponse(
                    validation_problem(found), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
                )
        if _SURROGATE_ESCAPE.search(body) and not _encodable(body):
            return JSONResponse(
                problem(
                    "INVALID_UNICODE",
                    "the JSON body holds a lone surrogate escape (like \\ud800): text "
                    "that is not Unicode cannot be stored",
                ),
                status_code=status.HTTP_400_BAD_REQUEST,
            )
        return None


def is_json(content_type: bytes) -> bool:
    """A JSON media type, or none at all (what a client that sets nothing sends)."""
    media = content_type.split(b";")[0].strip().lower()
    return media in (b"", b"application/json") or media.endswith(b"+json")


_UTF8_NAMES = frozenset({"utf-8", "utf8"})


def _encoding_problem(content_type: bytes, body: bytes) -> str | None:
    """Why this JSON body is not UTF-8, or None when it is."""
    for param in content_type.split(b";")[1:]:
        name, _, value = param.partition(b"=")
        if name.strip().lower() == b"charset":
            charset = value.strip().strip(b'"').decode("latin-1").lower()
            if charset not in _UTF8_NAMES:
                return f"JSON bodies are UTF-8 only; this one says charset={charset}"
    # The parser's own guess from the first bytes (a BOM, or NULs of UTF-16/32).
    guessed = json.detect_encoding(body)
    if guessed not in ("utf-8", "utf-8-sig"):
        return f"JSON bodies are UTF-8 only; this one looks like {guessed.upper()}"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"JSON bodies are UTF-8 only; byte {exc.start} is not UTF-8"
    return None


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


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Openers step in (+1), closers out (-1 as a signed byte).
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
# Outside strings, what may be a number that is not finite: NaN and Infinity (valid JSON
# has no capital letter outside strings), an exponent of three digits or more, or two
# hundred digits in a row (with an exponent under 100, a float needs 210 digits to
# overflow). Only then is the body parsed to find them. The digit run is matched from its
# start only: `[0-9]{200}` alone would try again from every digit of a long run.
_BIG_EXPONENT = re.compile(rb"[eE]\+?[0-9]{3}")
_LONG_DIGITS = re.compile(rb"(?<![0-9])[0-9]{200}")
# Enough places to name in one answer; a body of a thousand NaNs gets the first few.
MAX_REPORTED = 10


def may_be_non_finite(outside: bytes) -> bool:
    """Whether a JSON text without its strings may hold a number that is not finite."""
    return (
        b"N" in outside
        or b"I" in outside
        or _BIG_EXPONENT.search(outside) is not None
        or _LONG_DIGITS.search(outside) is not None
    )


def outside_strings(body: bytes) -> bytes:
    """The JSON text with every string cut out, by linear passes in C.

    Escaped backslashes go first, then escaped quotes (a run of backslashes pairs up from
    its start, as the parser reads it): every `"` left opens or closes a string, so the
    text outside strings is every other piece between them. An unterminated string runs
    to the end. (A regex matching whole strings did that before, and retried from every
    later quote when a string did not end: quadratic, seconds for 40 KB of `\\"`.)
    """
    if b'"' not in body:
        return body
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(body.split(b'"')[::2])


def bracket_depth(outside: bytes, stop_above: int | None = None) -> int:
    """How deeply a JSON text without its strings nests arrays and objects.

    With `stop_above`, a depth past it is returned as soon as it is reached (the rest of a
    body of a hundred thousand `[` is never counted).
    """
    steps = outside.translate(_STEPS, _NOT_BRACKETS)
    depth = deepest = 0
    # C-level passes over chunks: no Python loop per byte, and an early way out.
    for start in range(0, len(steps), _CHUNK):
        levels = list(accumulate(array("b", steps[start : start + _CHUNK]), initial=depth))
        deepest = max(deepest, max(levels))
        depth = levels[-1]
        if stop_above is not None and deepest > stop_above:
            break
    return deepest


_CHUNK = 16_384


def json_depth(body: bytes) -> int:
    """How deeply a JSON text nests arrays and objects; brackets inside strings don't count."""
    return bracket_depth(outside_strings(body))


# Values looked at to name where a non-finite number is (a few ms at most).
WALK_BUDGET = 5_000
_MAY_HOLD = frozenset({dict, list, float})
_NUMBERS = frozenset({float, int, bool})


def _children(value: Any) -> Iterator[tuple[str | int, Any]]:
    """The items of a list or object worth a look, by passes in C where they can: none
    when no value can be or hold a number that is not finite, and only the culprits of a
    list or object of plain numbers."""
    if isinstance(value, dict):
        values: Any = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return _NOTHING
    kinds = set(map(type, values))
    if kinds.isdisjoint(_MAY_HOLD):
        return _NOTHING
    if kinds <= _NUMBERS:
        try:
            finite = list(map(math.isfinite, values))
        except OverflowError:
            pass  # an int too large for a float: never mind, look at each
        else:
            if all(finite):
                return _NOTHING
            keys = list(value) if isinstance(value, dict) else range(len(value))
            return _culprits(keys, list(values), finite)
    return iter(value.items()) if isinstance(value, dict) else enumerate(value)


_NOTHING: Iterator[tuple[str | int, Any]] = iter(())


def _culprits(
    keys: list[str] | range, values: list[Any], finite: list[bool]
) -> Iterator[tuple[str | int, Any]]:
    start = 0
    while False in finite[start:]:
        start = finite.index(False, start) + 1
        yield keys[start - 1], values[start - 1]


def _not_finite_in(value: Any, budget: int) -> Iterator[tuple[tuple[str | int, ...], float]]:
    """Where the parsed value holds NaN or an infinity, in order, looking at `budget`
    values at most, one by one (what an error message is worth)."""
    if _is_not_finite(value):
        yield ("body",), value
        return
    stack: list[tuple[tuple[str | int, ...], Iterator[tuple[str | int, Any]]]] = [
        (("body",), _children(value))
    ]
    while stack:
        loc, children = stack[-1]
        for key, item in children:
            budget -= 1
            if budget < 0:
                return
            if _is_not_finite(item):
                yield (*loc, key), item
            elif type(item) is dict or type(item) is list:
                stack.append(((*loc, key), _children(item)))
                break
        else:
            stack.pop()


def _is_not_finite(value: Any) -> bool:
    return type(value) is float and not math.isfinite(value)


def _finite_error(loc: tuple[str | int, ...], text: str) -> dict[str, Any]:
    return {
        "type": "finite_number",
        "loc": list(loc),
        "msg": "Input should be a finite number (not NaN, Infinity, or beyond a float's range)",
        "input": text,
    }


def _text(value: float) -> str:
    # The parser reads 1e400 as inf: it is named Infinity here.
    return "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")


def non_finite(body: bytes) -> list[dict[str, Any]]:
    """Validation errors naming the first numbers of the body that are not finite.

    Malformed JSON has none: the route refuses it with its own 422.
    """
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return []
    found = [
        _finite_error(loc, _text(item))
        for loc, item in islice(_not_finite_in(value, WALK_BUDGET), MAX_REPORTED)
    ]
    if not found:
        # Past the walk's budget: whether there is one at all, the encoder tells (in C).
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            found = [_finite_error(("body",), "NaN or Infinity")]
    return found
