"""Per-tenant request limits, shared by every API replica through Redis.

A fixed one-minute window (``INCR`` + ``EXPIRE`` in one pipeline round trip). It fails
open: when Redis is unreachable requests pass and a warning is logged, because refusing
all traffic over a broken limiter would turn a cache outage into an API outage.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from rayplane.common.errors import RateLimited
from rayplane.logs import get_logger

log = get_logger("rayplane.api.ratelimit")


async def hit(redis: Redis, bucket: str, limit_per_minute: int, *, scope: str = "this tenant") -> None:
    if limit_per_minute <= 0:
        return
    now = time.time()
    window = int(now // 60)
    key = f"rl:{bucket}:{window}"
    try:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("rate_limiter_unavailable", error=type(exc).__name__)
        return
    if int(count) > limit_per_minute:
        retry_after = max(1, int(60 - now % 60))
        raise RateLimited(
            f"more than {limit_per_minute} requests in a minute for {scope}; retry after {retry_after}s",
            retry_after=retry_after,
        )
