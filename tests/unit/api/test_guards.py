"""The request guards' pure parts: JSON depth, lone surrogates, filter times, redaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from jobline.api.limits import _SURROGATE_ESCAPE, _encodable, json_depth
from jobline.api.schemas import Instant
from jobline.api.security import REDACTED, redact, redact_error


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b'"[[["', 0),
        (b"{}", 1),
        (b"[[[]]]", 3),
        (b'{"a": [{"b": [1]}], "c": {}}', 4),
        (b'{"a": "]]]]]]", "b": [[["[[[["]]]}', 4),
        (b'{"a": "\\"[[[[", "b": [1]}', 2),  # an escaped quote does not end the string
        (b"[" * 1000, 1000),  # unbalanced: still measured, never parsed
    ],
)
def test_json_depth(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_json_depth_agrees_with_the_parser_on_nested_values() -> None:
    value: object = {"leaf": "x"}
    for level in range(2, 40):
        value = {"n": value, "s": "{[" * level} if level % 2 else [value, "]}"]
        assert json_depth(json.dumps(value).encode()) == level


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (b'{"a": "\\ud83c\\udfb5"}', True),  # a pair: an emoji
        (b'{"a": "\\ud800"}', False),
        (b'{"a": "x\\udc00y"}', False),
        (b'{"a": "\\\\ud800"}', True),  # an escaped backslash, then text
        (b"not json \\ud800", True),  # the route refuses it (422)
    ],
)
def test_lone_surrogates(body: bytes, ok: bool) -> None:
    assert _SURROGATE_ESCAPE.search(body)
    assert _encodable(body) is ok


INSTANT = TypeAdapter(Instant)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T13:00:00+01:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
    ],
)
def test_filter_times_are_read_as_utc(text: str, utc: datetime) -> None:
    assert INSTANT.validate_python(text) == utc


@pytest.mark.parametrize(
    "text",
    ["0.5", "1700000000", "", "yesterday", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59-05:00"],
)
def test_filter_times_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        INSTANT.validate_python(text)


def test_redaction_of_validation_errors() -> None:
    body = {"email": "a@b.c", "password": "hunter2", "nested": [{"token": "t", "ok": 1}]}
    assert redact(body) == {
        "email": "a@b.c",
        "password": REDACTED,
        "nested": [{"token": REDACTED, "ok": 1}],
    }
    by_location = redact_error({"loc": ("body", "password"), "input": "hunter2", "msg": "m"})
    assert by_location["input"] == REDACTED
    kept = redact_error({"loc": ("query", "size"), "input": "0", "msg": "m"})
    assert kept["input"] == "0"
