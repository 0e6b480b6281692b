"""What a verified token proves (Credential), and whether it still holds for its user.

Shared by the two backends (accounts/backends.py, accounts/sessions.py), the request's
user (accounts/credentials.py) and the streams' watch (accounts/session_watch.py); it
imports none of them, so none of them need import another for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from jobline.accounts.models import User


@dataclass(frozen=True, slots=True)
class Credential:
    """What a request authenticated with: which backend, whose, when issued, and its id."""

    kind: Literal["bearer", "cookie"]
    subject: str
    issued_at: float
    jti: str | None


def credential_of(claims: dict[str, Any], kind: Literal["bearer", "cookie"]) -> Credential | None:
    """The credential a verified token's claims describe, or None without a subject."""
    sub = claims.get("sub")
    if not isinstance(sub, str):
        return None
    iat = claims.get("iat")
    jti = claims.get("jti")
    # A token from before iat was written (an upgrade) counts as issued at the epoch: any
    # revocation ends it.
    issued = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else 0.0
    return Credential(kind, sub, issued, jti if isinstance(jti, str) else None)


def still_valid(credential: Credential, user: User) -> bool:
    """False when the user ended their sessions after this token was issued (and kept another)."""
    after = user.sessions_valid_after
    if after is None:
        return True
    if credential.jti is not None and credential.jti == user.session_kept:
        return True
    return credential.issued_at >= after.timestamp()
