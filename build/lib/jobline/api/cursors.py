"""Opaque, signed page cursors: a cursor only works for the user and listing it was made for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from jobline.errors import InvalidCursor

SIGNATURE_BYTES = 12


class CursorCodec:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"jobline-cursor:" + secret.encode()).digest()

    def encode(self, scope: str, values: list[Any]) -> str:
        body = json.dumps(values, separators=(",", ":")).encode()
        return _b64(body) + "." + _b64(self._sign(scope, body))

    def decode(self, scope: str, cursor: str) -> list[Any]:
        """The values of a cursor made for `scope`, or InvalidCursor."""
        try:
            body_part, sig_part = cursor.split(".")
            body = _unb64(body_part)
            sig = _unb64(sig_part)
        except (ValueError, UnicodeError):
            raise InvalidCursor("the cursor is malformed") from None
        if not hmac.compare_digest(sig, self._sign(scope, body)):
            raise InvalidCursor("the cursor was not issued for this listing")
        try:
            values = json.loads(body)
        except ValueError:
            raise InvalidCursor("the cursor is malformed") from None
        if not isinstance(values, list):
            raise InvalidCursor("the cursor is malformed")
        return values

    def decode_int(self, scope: str, cursor: str) -> int:
        """The one integer (a keyset position) of a cursor made for `scope`, or InvalidCursor."""
        values = self.decode(scope, cursor)
        if not (len(values) == 1 and isinstance(values[0], int)):
            raise InvalidCursor("the cursor is malformed")
        return values[0]

    def _sign(self, scope: str, body: bytes) -> bytes:
        return hmac.new(self._key, scope.encode() + b"\0" + body, hashlib.sha256).digest()[
            :SIGNATURE_BYTES
        ]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or len(text) > 4096:
        raise ValueError("bad length")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
