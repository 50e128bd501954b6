"""Optimistic concurrency through ``If-Match``."""

from __future__ import annotations

from rayplane.common.errors import PreconditionFailed


def check_if_match(if_match: str | None, current_etag: str) -> None:
    """Raise ``PreconditionFailed`` unless ``If-Match`` is absent, ``*`` or names the current ETag.

    Weak validators (``W/"3"``) are compared by their opaque part, as RFC 9110 allows
    clients to echo what they received.
    """
    if if_match is None:
        return
    candidates = [c.strip() for c in if_match.split(",") if c.strip()]
    if "*" in candidates:
        return
    wanted = {c[2:] if c.startswith("W/") else c for c in candidates}
    if current_etag not in wanted:
        raise PreconditionFailed(f"the resource changed: its ETag is now {current_etag}; fetch it again and retry")
