"""Per-tenant request limits, shared by every API replica through Redis.

Fixed one-minute windows, counted in Redis under ``rl:<bucket>:<window>``. Far from the
limit, a replica counts hits in memory and adds them to Redis in one pipelined round trip
when the last sync is ``SYNC_SECONDS`` old or a bucket has ``exact_below(limit)`` unsynced
hits (the hit that finds it so does it), so a read pays no Redis round trip of its own.
Near the limit (``exact_below`` hits or fewer left by what this replica knows) every
hit goes to Redis at once, with this replica's unsynced hits, and is judged by the
shared count Redis returns: the ``429`` comes at the same hit as a per-request check
would give it.

Contract and races:

- A tenant can exceed its limit by what other replicas admitted since this replica's last
  sync: no more than ``exact_below(limit)`` hits each, nor more than ``SYNC_SECONDS`` of
  their traffic. With one replica the limit is exact.
- A refused hit still counts (it reached Redis), as with a plain ``INCR``.
- A process that dies loses its unsynced hits (at most ``SYNC_SECONDS`` of them): the limit
  is then lax by that much for the rest of the window, never stricter.
- Fails open: when Redis is unreachable requests pass and a warning is logged, because
  refusing all traffic over a broken limiter would turn a cache outage into an API outage.
  Unsynced hits stay counted here and are added when Redis answers again.

One ``Limiter`` per Redis client (a weak mapping, so a test's throwaway client takes its
limiter with it); all of it runs on the event loop, so no lock is needed.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from rayplane.common.errors import RateLimited
from rayplane.logs import get_logger

log = get_logger("rayplane.api.ratelimit")

#: Longest time unsynced hits stay in one replica's memory.
SYNC_SECONDS = 0.1
WINDOW_SECONDS = 60
#: Redis keeps a window's counter this long after its last write.
KEY_TTL_SECONDS = 2 * WINDOW_SECONDS

# INCRBY, and EXPIRE only when the window's key was just made (the result equals the increment).
_ADD = (
    "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) "
    "if n == tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[2]) end return n"
)


def exact_below(limit: int) -> int:
    """Hits left at which every hit is checked in Redis: a tenth of the limit, at least 1."""
    return max(1, limit // 10)


@dataclass
class _Window:
    known: int = 0  # the shared count Redis last returned (this replica's synced hits included)
    pending: int = 0  # hits admitted here and not yet added in Redis


@dataclass
class Limiter:
    redis: Redis
    windows: dict[str, _Window] = field(default_factory=dict)
    synced_at: float = 0.0
    syncing: bool = False
    script: AsyncScript | None = None

    def _add_script(self) -> AsyncScript:
        # ``AsyncScript`` loads the script again by itself after a Redis restart.
        if self.script is None:
            self.script = self.redis.register_script(_ADD)
        return self.script

    async def hit(self, bucket: str, limit: int, scope: str) -> None:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        key = f"rl:{bucket}:{window}"
        state = self.windows.get(key)
        if state is None:
            state = self.windows[key] = _Window()
        if limit - state.known - state.pending <= exact_below(limit):
            count = await self._add_now(key, state)
            if count is not None and count > limit:
                retry_after = max(1, int(WINDOW_SECONDS - now % WINDOW_SECONDS))
                raise RateLimited(
                    f"more than {limit} requests in a minute for {scope}; retry after {retry_after}s",
                    retry_after=retry_after,
                )
            return
        state.pending += 1
        due = state.pending >= exact_below(limit) or time.monotonic() - self.synced_at >= SYNC_SECONDS
        if due and not self.syncing:
            await self.sync(window)

    async def _add_now(self, key: str, state: _Window) -> int | None:
        """Adds this hit and the window's unsynced ones in Redis; the shared count, or None if down."""
        adding = state.pending + 1
        state.pending += 1
        try:
            count = int(await self._add_script()(keys=[key], args=[adding, KEY_TTL_SECONDS]))
        except (RedisError, OSError) as exc:
            log.warning("rate_limiter_unavailable", error=type(exc).__name__)
            return None
        state.pending -= adding
        state.known = count
        return count

    async def sync(self, window: int) -> None:
        """Adds every window's unsynced hits in Redis in one round trip; forgets past windows."""
        self.syncing = True
        self.synced_at = time.monotonic()
        try:
            batch = [(key, state, state.pending) for key, state in self.windows.items() if state.pending]
            if batch:
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for key, _, n in batch:
                            pipe.incrby(key, n)
                            pipe.expire(key, KEY_TTL_SECONDS)
                        results = await pipe.execute()
                except (RedisError, OSError) as exc:
                    log.warning("rate_limiter_unavailable", error=type(exc).__name__)
                    return
                for (_, state, n), count in zip(batch, results[::2], strict=True):
                    state.pending -= n  # hits admitted while the pipeline ran stay pending
                    state.known = int(count)
            for key in [k for k in self.windows if int(k.rsplit(":", 1)[1]) < window]:
                if not self.windows[key].pending:
                    del self.windows[key]
        finally:
            self.syncing = False


_limiters: weakref.WeakKeyDictionary[Redis, Limiter] = weakref.WeakKeyDictionary()


def limiter_for(redis: Redis) -> Limiter:
    limiter = _limiters.get(redis)
    if limiter is None:
        limiter = _limiters[redis] = Limiter(redis)
    return limiter


async def hit(redis: Redis, bucket: str, limit_per_minute: int, *, scope: str = "this tenant") -> None:
    """Counts one request against ``bucket``; ``RateLimited`` (429) past ``limit_per_minute``."""
    if limit_per_minute <= 0:
        return
    await limiter_for(redis).hit(bucket, limit_per_minute, scope)
