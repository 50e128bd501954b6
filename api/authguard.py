"""Authentication with failed attempts limited per client address and per API-key prefix.

Contract of ``authenticate``:

- A credential this process accepted within the auth cache's ttl (a hit in
  ``AppState.auth_cache``) is authenticated with no Redis round trip: good callers are never
  slowed, and never refused because others failed from their address or on their prefix.
- Otherwise one ``MGET`` reads this minute's failure counts of the client address and, for
  something shaped like an API key, of its prefix. At the limit the caller gets
  ``RateLimited`` (429, ``Retry-After`` until the window ends) and the credential is not
  checked, so guessing costs no database read.
- Only a presented credential that fails (``Unauthenticated``) counts; one pipeline (``INCR``
  and ``EXPIRE`` per counter) records it. A missing or malformed header costs nothing to
  refuse and is not counted; neither is ``Forbidden`` (a valid identity without access).
- Fixed one-minute windows shared by every API replica through Redis. Two replicas may both
  read a count just under the limit and both check a credential: the limit can be exceeded
  by the number of concurrent attempts, never by more.
- Fails open, like ``api.ratelimit``: with Redis unreachable credentials are checked as if
  no limit existed, and a warning is logged.

The client address is the ASGI ``client`` (behind a proxy, run uvicorn with
``--proxy-headers`` and ``--forwarded-allow-ips`` so that it is the caller's, not the proxy's).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from api.state import AppState
from rayplane.common.errors import RateLimited, Unauthenticated
from rayplane.common.principal import Principal
from rayplane.identity import keys
from rayplane.identity.auth import authenticate as check_credential
from rayplane.identity.auth import bearer_token
from rayplane.logs import get_logger

log = get_logger("rayplane.api.authguard")

WINDOW_SECONDS = 60


def _counters(state: AppState, token: str, client: str | None, window: int) -> list[tuple[str, int]]:
    """(Redis key, limit) of each counter this attempt is charged to; limits of 0 are off."""
    settings = state.settings
    counters: list[tuple[str, int]] = []
    if settings.auth_failures_per_minute > 0:
        counters.append((f"authfail:addr:{client or 'unknown'}:{window}", settings.auth_failures_per_minute))
    prefix = keys.parse_prefix(token)
    if prefix is not None and settings.auth_failures_per_key_per_minute > 0:
        counters.append((f"authfail:key:{prefix}:{window}", settings.auth_failures_per_key_per_minute))
    return counters


def _known_good(state: AppState, token: str) -> Principal | None:
    """The principal this process accepted for ``token`` within the cache's ttl, if any."""
    cache = state.auth_cache
    if not cache.enabled or keys.parse_prefix(token) is None:
        return None
    return cache.get(keys.digest(state.hashing_key, token))


async def _refuse_if_over(state: AppState, counters: list[tuple[str, int]], now: float) -> None:
    try:
        counts = await state.redis.mget([key for key, _ in counters])
    except (RedisError, OSError) as exc:
        log.warning("auth_limiter_unavailable", error=type(exc).__name__)
        return
    for (key, limit), count in zip(counters, counts, strict=True):
        if count is not None and int(count) >= limit:
            retry_after = max(1, int(WINDOW_SECONDS - now % WINDOW_SECONDS))
            what = "this API key" if key.startswith("authfail:key:") else "this client address"
            raise RateLimited(
                f"too many failed authentications from {what}; retry after {retry_after}s",
                retry_after=retry_after,
            )


async def _count_failure(state: AppState, counters: list[tuple[str, int]]) -> None:
    try:
        async with state.redis.pipeline(transaction=False) as pipe:
            for key, _ in counters:
                pipe.incr(key)
                pipe.expire(key, 2 * WINDOW_SECONDS)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("auth_limiter_unavailable", error=type(exc).__name__)


async def authenticate(
    state: AppState,
    session: AsyncSession | Callable[[], AsyncSession],
    authorization: str | None,
    client: str | None,
) -> Principal:
    """The caller's ``Principal``, or ``Unauthenticated`` / ``Forbidden`` / ``RateLimited``.
    ``session`` may be a function returning one, called only when the credential is checked
    in the database (not for a cache hit, so a cached read opens no session for it)."""
    token = bearer_token(authorization)  # a missing or malformed header: 401, not counted
    known = _known_good(state, token)
    if known is not None:
        return known  # the hit is the whole check: no second parse, digest or cache lookup
    now = time.time()
    counters = _counters(state, token, client, int(now // WINDOW_SECONDS))
    if counters:
        await _refuse_if_over(state, counters, now)
    try:
        db = session if isinstance(session, AsyncSession) else session()
        return await check_credential(
            db, authorization, hashing_key=state.hashing_key, validator=state.entra, cache=state.auth_cache
        )
    except Unauthenticated:
        if counters:
            await _count_failure(state, counters)
        raise
