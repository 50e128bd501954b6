"""Per-tenant request limits, shared by every API replica through Redis.

A fixed one-minute window: one ``EVALSHA`` of a script that increments the window's
counter and, on its first hit, sets its expiry (one command and one round trip, atomic,
and cheaper for the client than a two-command pipeline; measured in benchmarks/RESULTS.md).
It fails open: when Redis is unreachable requests pass and a warning is logged, because refusing
all traffic over a broken limiter would turn a cache outage into an API outage.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from rayplane.common.errors import RateLimited
from rayplane.logs import get_logger

log = get_logger("rayplane.api.ratelimit")

# INCR, and EXPIRE only when the window's key was just made (the result is what INCR returned).
_HIT = "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"
_scripts: dict[int, AsyncScript] = {}


def _script(redis: Redis) -> AsyncScript:
    """The registered script for this client (``AsyncScript`` loads it again after a Redis restart)."""
    script = _scripts.get(id(redis))
    if script is None or script.registered_client is not redis:
        script = _scripts[id(redis)] = redis.register_script(_HIT)
    return script


async def hit(redis: Redis, bucket: str, limit_per_minute: int, *, scope: str = "this tenant") -> None:
    if limit_per_minute <= 0:
        return
    now = time.time()
    window = int(now // 60)
    key = f"rl:{bucket}:{window}"
    try:
        count = await _script(redis)(keys=[key], args=[120])
    except (RedisError, OSError) as exc:
        log.warning("rate_limiter_unavailable", error=type(exc).__name__)
        return
    if int(count) > limit_per_minute:
        retry_after = max(1, int(60 - now % 60))
        raise RateLimited(
            f"more than {limit_per_minute} requests in a minute for {scope}; retry after {retry_after}s",
            retry_after=retry_after,
        )
