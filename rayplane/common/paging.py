"""Opaque cursors over time-sortable ids.

A cursor encodes the last id of a page; the next page is ``WHERE id > :after ORDER BY id``,
which stays correct while rows are inserted or deleted between calls.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from rayplane.common.errors import InvalidInput

T = TypeVar("T")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    raw = json.dumps({"after": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The id to start after; raise ``InvalidInput`` on ``query.cursor`` when it is not ours."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidInput.on("query.cursor", "not a cursor returned by this API") from None
    # A NUL could never come from an id of ours, and Postgres text cannot hold it.
    if not isinstance(after, str) or "\x00" in after:
        raise InvalidInput.on("query.cursor", "not a cursor returned by this API")
    return after


def page_of(rows: list[T], limit: int, key: str = "id") -> Page[T]:
    """Given up to ``limit + 1`` rows, the page and the cursor to the next one."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(rows, encode_cursor(getattr(rows[-1], key)))
    return Page(rows, None)
