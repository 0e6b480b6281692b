"""The request guards' pure parts: JSON depth, encodings, non-finite numbers, lone
surrogates, what they cost on hostile bodies, filter times, redaction."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from jobline.api.limits import (
    _SURROGATE_ESCAPE,
    BodyGuard,
    _encodable,
    _encoding_problem,
    json_depth,
    non_finite,
    outside_strings,
)
from jobline.api.schemas import Instant
from jobline.api.security import REDACTED, redact, redact_error
from jobline.app import BODY_OVERHEAD_BYTES
from jobline.config import Settings


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
        (b'{"a": "\\\\", "b": [1]}', 2),  # an escaped backslash, then the closing quote
        (b'{"a": "\\\\\\"[", "b": [1]}', 2),  # an escaped backslash, an escaped quote
        (b'{"a": "[[[' + b"\\" * 7, 1),  # unterminated, ending on a lone backslash
        (b'[{"a": "x"}, "]", ["\\"]]', 2),
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
    "value",
    [
        {"a": 'x\\"y', "b": ["\\", "\\\\", '"'], "c": {"d": '\\\\\\"[{'}},
        ['\\"' * 5, "", "", ['"]', "\\"]],
        {"k\\": {'"': [1, "\\\\\\"]}},
    ],
)
def test_outside_strings_keeps_exactly_the_structure(value: Any) -> None:
    """What is left is the JSON text with every string, key or value, cut out."""

    def skeleton(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ",".join(":" + skeleton(x) for x in v.values()) + "}"
        if isinstance(v, list):
            return "[" + ",".join(skeleton(x) for x in v) + "]"
        return "" if isinstance(v, str) else json.dumps(v)

    text = json.dumps(value, separators=(",", ":")).encode()
    assert outside_strings(text) == skeleton(value).encode()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"a": [1, NaN]}', [["body", "a", 1]]),
        (b'{"a": {"b": Infinity}, "c": -Infinity}', [["body", "a", "b"], ["body", "c"]]),
        (b'{"x": 1e400, "y": -1E+309, "z": 1.5e-400}', [["body", "x"], ["body", "y"]]),
        (b"[" + b"1" * 400 + b".0]", [["body", 0]]),
        (b"NaN", [["body"]]),
        (b'{"NaN": "Infinity", "n": 1e308}', []),  # in strings, or finite: fine
        (b'{"a": NaN', []),  # malformed: the route's own 422
    ],
)
def test_non_finite_numbers_are_named(body: bytes, where: list[list[Any]]) -> None:
    assert [e["loc"] for e in non_finite(body)] == where


def test_a_non_finite_number_past_the_walk_is_still_found() -> None:
    body = b"[" + b'{"a": 1.5},' * 30_000 + b"NaN]"
    assert [e["loc"] for e in non_finite(body)] == [["body"]]


@pytest.mark.parametrize(
    ("content_type", "body", "ok"),
    [
        (b"application/json", b'{"a": "\xc3\xa9"}', True),
        (b"application/json; charset=utf-8", b"{}", True),
        (b'application/json; charset="UTF-8"', b"{}", True),
        (b"application/json;charset=utf8", b"{}", True),
        (b"application/json", b'\xef\xbb\xbf{"a": 1}', True),  # a UTF-8 BOM
        (b"application/json; charset=utf-16", b"{}", False),
        (b"application/json; charset=latin-1", b"{}", False),
        (b"application/json", '{"a": "\u0122"}'.encode("utf-16"), False),
        (b"application/json", '{"a": "x"}'.encode("utf-16-le"), False),
        (b"application/json", '{"a": "x"}'.encode("utf-32"), False),
        (b"application/json", b'{"a": "\xe9"}', False),  # latin-1
        (b"", b'{"a": "\xff"}', False),
    ],
)
def test_json_bodies_are_utf8_only(content_type: bytes, body: bytes, ok: bool) -> None:
    assert (_encoding_problem(content_type, body) is None) is ok


CAP = Settings().max_payload_bytes + BODY_OVERHEAD_BYTES


def _fill(head: bytes, unit: bytes, tail: bytes = b"") -> bytes:
    """head + unit repeated to fill the body cap + tail."""
    return head + unit * ((CAP - len(head) - len(tail)) // len(unit)) + tail


# Bodies at the cap built to make a scanner slow: unterminated strings of escapes (what
# made the regex before quadratic), runs of backslashes, many tiny strings, all quotes,
# brackets, non-finite numbers where the walk must look far, long digit runs, surrogates.
HOSTILE: dict[str, tuple[bytes, int | None]] = {
    "escaped quotes, unterminated": (_fill(b'{"a":"', b'\\"'), None),
    "escaped quotes in many strings": (_fill(b"[", b'"\\"\\"\\"",', b'""]'), None),
    "a run of backslashes": (_fill(b'{"a":"', b"\\"), None),
    "backslash, quote, backslash": (_fill(b'{"a":"', b'\\\\\\"'), None),
    "many small strings": (_fill(b"[", b'"a",', b'"a"]'), None),
    "nothing but quotes": (_fill(b"", b'"'), None),
    "as deep as allowed, again and again": (_fill(b"[", b"[" * 29 + b"]" * 29 + b",", b"1]"), None),
    "open brackets": (_fill(b"", b"["), 400),
    "empty arrays": (_fill(b"[", b"[],", b"[]]"), None),
    "NaN everywhere": (_fill(b"[", b"NaN,", b"NaN]"), 422),
    "a NaN after many numbers": (_fill(b"[", b"1.5,", b"NaN]"), 422),
    "a NaN after many objects": (_fill(b"[", b'{"a":[1.5]},', b"NaN]"), 422),
    "big exponents, all finite": (_fill(b"[", b"1e100,", b"1]"), None),
    "long digit runs": (_fill(b"[", b"1" * 199 + b",", b"1]"), None),
    "lone surrogates": (_fill(b"[", b'"\\udc00",', b'""]'), 400),
    "surrogate pairs": (_fill(b"[", b'"\\ud83c\\udfb5",', b'""]'), None),
}
# A generous bound (the worst measured is about 6, on a loaded machine: a depth count in
# C over a body of nothing but brackets): what matters is that no shape is far off a parse
# (before: minutes).
RATIO = 15
ROUNDS = 9


def _best(*works: Callable[[], object]) -> list[float]:
    """The fastest of ROUNDS runs of each, the works taking turns: each sees the same load
    from anything else on the machine, and the fastest run is the least disturbed. CPU time
    of this thread, not wall time: time spent preempted on a loaded machine is not the
    guard's cost."""
    best = [float("inf")] * len(works)
    for _ in range(ROUNDS):
        for index, work in enumerate(works):
            started = time.thread_time()
            work()
            best[index] = min(best[index], time.thread_time() - started)
    return best


@pytest.fixture(scope="module")
def plain_body() -> bytes:
    """An ordinary body as large as the cap: objects, strings, numbers."""
    items: list[dict[str, Any]] = []
    body = b""
    while len(body) < CAP:
        items.extend({"name": f"item-{i}", "size": i * 1.5, "tags": ["a", "b"]} for i in range(500))
        body = json.dumps({"type": "music.transcode", "payload": {"items": items}}).encode()
    body = body[:CAP]
    cut = body.rfind(b"},") + 1
    body = body[:cut] + b"]}}"
    json.loads(body)
    return body


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


@pytest.mark.parametrize(("body", "status"), HOSTILE.values(), ids=HOSTILE.keys())
def test_the_guard_costs_no_more_than_a_few_plain_parses(
    plain_body: bytes, body: bytes, status: int | None
) -> None:
    """13.1: the checks before authentication are linear, close to a parse of the same size."""
    assert CAP - 200 <= len(body) <= CAP
    guard = BodyGuard(lambda *_: None, read_timeout=1, max_depth=Settings().max_json_depth)  # type: ignore[arg-type,return-value]
    # A body heavier to parse than an ordinary one (tens of thousands of tiny objects) is
    # parsed by the route anyway, before authentication too: that parse is the yardstick.
    own = body if _parses(body) else plain_body
    cost, plain, own_parse = _best(
        lambda: guard.check_json(b"application/json", body),
        lambda: json.loads(plain_body),
        lambda: json.loads(own),
    )
    baseline = max(plain, own_parse)
    print(f"{cost / baseline:.2f} x a plain parse ({cost * 1000:.1f} ms)")
    assert cost <= RATIO * baseline, (cost, baseline)
    # And it answers as it should: refused, or on to the route.
    refused = guard.check_json(b"application/json", body)
    assert (refused and refused.status_code) == status


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
