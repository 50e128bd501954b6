"""A short-lived, in-process cache of authenticated API keys.

Contract: a hit returns the ``Principal`` a full check produced at most ``ttl`` seconds ago,
for the same keyed digest of the same raw key, and never after the key's own expiry.
Revoking a key through this process forgets it at once (``forget_key``); another API
replica may accept it for at most ``ttl`` more seconds. That window is the price of an
authenticated read without a database round trip for the credential; ``ttl = 0`` turns
the cache off. Bounded (LRU), so a flood of keys cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from rayplane.common.principal import Principal


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    cached_at: float
    key_expires_at: datetime | None


class PrincipalCache:
    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        fresh = time.monotonic() - entry.cached_at < self.ttl
        unexpired = entry.key_expires_at is None or entry.key_expires_at > datetime.now(UTC)
        if not (fresh and unexpired):
            self._entries.pop(digest, None)
            return None
        self._entries.move_to_end(digest)
        return entry.principal

    def put(self, digest: str, principal: Principal, key_expires_at: datetime | None) -> None:
        if not self.enabled:
            return
        self._entries[digest] = _Entry(principal, time.monotonic(), key_expires_at)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_key(self, key_id: str) -> None:
        for digest in [d for d, e in self._entries.items() if e.principal.api_key_id == key_id]:
            self._entries.pop(digest, None)
