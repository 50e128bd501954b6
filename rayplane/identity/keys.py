"""API key format and hashing.

A key reads ``rpk_<prefix>_<secret>``: the 12-character prefix is public and indexed, the
40-character secret is shown once. Only ``HMAC-SHA256(server secret, whole key)`` is stored,
so a database dump alone cannot be turned back into working keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
PREFIX_LEN = 12
SECRET_LEN = 40
SCHEME = "rpk"
_SHAPE = re.compile(rf"{SCHEME}_([{_ALPHABET}]{{{PREFIX_LEN}}})_[{_ALPHABET}]{{{SECRET_LEN}}}")


def _random(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def generate() -> tuple[str, str]:
    """A new ``(prefix, whole_key)`` pair."""
    prefix = _random(PREFIX_LEN)
    return prefix, f"{SCHEME}_{prefix}_{_random(SECRET_LEN)}"


def parse_prefix(raw: str) -> str | None:
    """The prefix of something shaped like a Rayplane key, else ``None`` (cheap, no I/O)."""
    # One compiled match: every authenticated request parses its key.
    shaped = _SHAPE.fullmatch(raw)
    return shaped.group(1) if shaped else None


def digest(hashing_key: bytes, raw: str) -> str:
    return hmac.new(hashing_key, raw.encode(), hashlib.sha256).hexdigest()


def matches(hashing_key: bytes, raw: str, stored: str) -> bool:
    return hmac.compare_digest(digest(hashing_key, raw), stored)
