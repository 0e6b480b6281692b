"""Worker-side bounds on what one job writes into its events.

A progress message and a failure's message are cut to a length (the job goes on); a
result too large or too deeply nested to store fails the job with RESULT_TOO_LARGE or
RESULT_TOO_DEEP instead of bloating `job_events` (or being refused by MariaDB, whose
JSON columns refuse documents nested 32 deep).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_jsonable_python

from jobline.config import get_settings
from jobline.jobs.events import job_error

CUT_MARK = "... [cut: {} more characters]"


def clip(text: str | None, limit: int) -> str | None:
    """The text, cut to at most `limit` characters (with a mark saying how much went)."""
    if text is None or len(text) <= limit:
        return text
    # Sized for the largest count it can show, so the cut text never passes the limit.
    room = limit - len(CUT_MARK.format(len(text)))
    if room <= 0:
        return text[:limit]  # no room for the mark
    return text[:room] + CUT_MARK.format(len(text) - room)


def depth(value: Any) -> int:
    """How deeply a JSON value nests lists and objects (iterative: any depth is safe)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def storable_result(
    result: Any, *, max_bytes: int, max_depth: int
) -> tuple[tuple[str, str] | None, Any]:
    """(None, the result as JSON values), or ((code, message), None) when it must not be stored.

    The depth is measured before the conversion to JSON values, which would recurse as
    deep as the result goes.
    """
    nesting = depth(result)
    if nesting > max_depth:
        return (
            ("RESULT_TOO_DEEP", f"the result is nested {nesting} deep; the limit is {max_depth}"),
            None,
        )
    value = to_jsonable_python(result)
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        return (("RESULT_TOO_LARGE", f"the result is {size} bytes; the limit is {max_bytes}"), None)
    return None, value


def error_of(exc: BaseException, code: str | None = None) -> dict[str, Any]:
    """The `error` object of a failed event: the exception's type and its message, cut."""
    message = clip(str(exc), get_settings().max_error_message_chars)
    return job_error(type(exc).__name__, message or "", code)
