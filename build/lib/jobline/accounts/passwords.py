"""Password rules checked at register, at a password change and by `jobline users create`."""

from __future__ import annotations

# A local part shorter than this says too little to look for it inside a password.
MIN_EMAIL_PART = 3


def password_problem(password: str, email: str, *, min_length: int, max_length: int) -> str | None:
    """Why this password is refused for this account, or None when it is acceptable.

    Long enough, bounded (hashing a megabyte costs real CPU), not all blanks, and not
    containing the address or its local part, in any case.
    """
    if len(password) < min_length:
        return f"the password must be at least {min_length} characters long"
    if len(password) > max_length:
        return f"the password must be at most {max_length} characters long"
    if not password.strip():
        return "the password must not be only blanks"
    folded = password.casefold()
    address = email.casefold()
    local = address.split("@", 1)[0]
    if address and address in folded:
        return "the password must not contain the email address"
    if len(local) >= MIN_EMAIL_PART and local in folded:
        return "the password must not contain the email address's name part"
    return None
