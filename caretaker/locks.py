"""The one advisory-lock key function: any number of processes, one holder per key."""

from __future__ import annotations

import hashlib


def lock_key(*parts: str) -> int:
    """A PostgreSQL advisory-lock key (signed 64-bit) for a named thing, e.g. ("job", name)."""
    digest = hashlib.blake2b("|".join(("caretaker", *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
