"""Signed page cursors: a cursor only decodes for the scope it was issued for."""

from __future__ import annotations

import base64

import pytest

from jobline.api.cursors import CursorCodec
from jobline.errors import InvalidCursor

SCOPE = "jobs:user-1:state=None"
VALUES = ["2026-01-02T03:04:05+00:00", "00000000-0000-4000-8000-000000000001"]


@pytest.fixture
def codec() -> CursorCodec:
    return CursorCodec("a-secret-of-some-length")


def test_round_trip(codec: CursorCodec) -> None:
    cursor = codec.encode(SCOPE, VALUES)
    assert codec.decode(SCOPE, cursor) == VALUES
    assert "user-1" not in cursor and "=" not in cursor


def test_another_scope_is_refused(codec: CursorCodec) -> None:
    cursor = codec.encode(SCOPE, VALUES)
    for scope in ("jobs:user-2:state=None", "jobs:user-1:state=queued", "events:x", ""):
        with pytest.raises(InvalidCursor, match="not issued for this listing"):
            codec.decode(scope, cursor)


def test_another_secret_is_refused(codec: CursorCodec) -> None:
    cursor = CursorCodec("another-secret").encode(SCOPE, VALUES)
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, cursor)


def test_a_tampered_body_is_refused(codec: CursorCodec) -> None:
    body, sig = codec.encode(SCOPE, VALUES).split(".")
    forged = base64.urlsafe_b64encode(b'["2099-01-01T00:00:00+00:00","x"]').rstrip(b"=").decode()
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, f"{forged}.{sig}")
    flipped = ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, f"{flipped}.{sig}")


def test_a_tampered_signature_is_refused(codec: CursorCodec) -> None:
    body, sig = codec.encode(SCOPE, VALUES).split(".")
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, f"{body}.{sig[:-2]}")
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, f"{body}.{sig[::-1]}")


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "abc", "a.b.c", "not base64!.x", "é.é", "%%%.%%%", "x" * 5000 + ".y", "\x00.\x00"],
)
def test_garbage_is_refused(codec: CursorCodec, garbage: str) -> None:
    with pytest.raises(InvalidCursor):
        codec.decode(SCOPE, garbage)


def test_a_signed_body_that_is_not_a_list_is_refused(codec: CursorCodec) -> None:
    # Only a holder of the secret could sign it, but decode still checks the shape.
    for values in ({"a": 1}, "text", 3):
        cursor = codec.encode(SCOPE, values)  # type: ignore[arg-type]
        with pytest.raises(InvalidCursor, match="malformed"):
            codec.decode(SCOPE, cursor)


def test_decode_int_gives_the_one_position(codec: CursorCodec) -> None:
    assert codec.decode_int("events:x", codec.encode("events:x", [42])) == 42


@pytest.mark.parametrize("values", [[], [1, 2], ["42"], [4.2], [None]])
def test_decode_int_refuses_anything_but_one_integer(
    codec: CursorCodec, values: list[object]
) -> None:
    with pytest.raises(InvalidCursor, match="malformed"):
        codec.decode_int("events:x", codec.encode("events:x", values))
