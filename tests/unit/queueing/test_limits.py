"""Worker-side bounds: cut messages, unstorable results."""

from __future__ import annotations

from typing import Any

import pytest

from jobline.queueing.limits import clip, depth, storable_result


@pytest.mark.parametrize("limit", [1, 10, 40, 100, 999])
def test_clip_keeps_within_the_limit(limit: int) -> None:
    cut = clip("x" * 1000, limit)
    assert cut is not None and len(cut) <= limit


@pytest.mark.parametrize("limit", [40, 100, 999])
def test_clip_says_how_much_went(limit: int) -> None:
    cut = clip("x" * 1000, limit)
    assert cut is not None
    kept = cut.index("...")
    assert cut[:kept] == "x" * kept
    assert cut.endswith(f"[cut: {1000 - kept} more characters]")


def test_clip_leaves_short_text_and_none_alone() -> None:
    assert clip("short", 10) == "short"
    assert clip(None, 10) is None


def nested_list(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_depth_is_iterative() -> None:
    assert depth(nested_list(100_000)) == 100_000
    assert depth({"a": [1, {"b": (2,)}]}) == 4
    assert depth("text") == 0


def test_storable_result() -> None:
    assert storable_result({"a": 1}, max_bytes=100, max_depth=5) == (None, {"a": 1})
    problem, value = storable_result(nested_list(6), max_bytes=100, max_depth=5)
    assert problem is not None and problem[0] == "RESULT_TOO_DEEP" and value is None
    problem, value = storable_result({"a": "x" * 200}, max_bytes=100, max_depth=5)
    assert problem is not None and problem[0] == "RESULT_TOO_LARGE" and value is None
    # Too deep for the JSON conversion itself: measured first, never converted.
    problem, _ = storable_result(nested_list(50_000), max_bytes=100, max_depth=30)
    assert problem is not None and problem[0] == "RESULT_TOO_DEEP"
