"""Prefixed, time-sortable resource ids (``ten_01J…``).

The body is 48 bits of milliseconds followed by 80 random bits, Crockford base32, so ids
sort by creation time. Cursor pagination relies on that: ``ORDER BY id`` is a stable,
creation-ordered scan over the primary key index.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as ``key_01hx…``: 26 characters after the prefix and underscore."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode((millis << 80) | rand, 26)}"


def has_prefix(value: str, prefix: str) -> bool:
    """Whether ``value`` looks like an id of the given kind (cheap shape check only)."""
    body = value[len(prefix) + 1 :]
    return value.startswith(prefix + "_") and len(body) == 26 and all(c in _ALPHABET for c in body)
