"""One spelling per email address: what is stored, looked up and counted.

An address is stored and compared normalized: NFKC (fullwidth letters become ASCII, a
letter and its combining accent become the one precomposed letter), then case-folded.
The column is compared exactly (binary collation on MariaDB, migration 5), so `böb@` and
`bob@` are two addresses, while `BOB@` in fullwidth letters and `bob@` are one account: a lookalike cannot
register a second account, and a login finds only the account whose address it names.
"""

from __future__ import annotations

import unicodedata


def normalize_email(email: str) -> str:
    """The stored form of an address (surrounding blanks dropped)."""
    # NFKC again after case folding: folding can produce sequences NFKC composes.
    folded = unicodedata.normalize("NFKC", email.strip()).casefold()
    return unicodedata.normalize("NFKC", folded)
