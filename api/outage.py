"""503 problem+json with ``Retry-After`` when the database or the broker is down.

Contract: an exception that means "a backing service cannot be reached or dropped the
connection" becomes ``503`` with ``Retry-After: RETRY_AFTER_SECONDS``, never a 500, on every
route (and in ``api.limits``, which answers through the same handlers). What counts:

- the database: SQLAlchemy's ``OperationalError`` (refused or dropped connections, server
  shutdown, cancelled statements), ``InterfaceError`` (a closed connection),
  ``TimeoutError`` (the pool had no connection to give) and ``DisconnectionError``;
- Redis and the Celery broker: redis-py's ``ConnectionError`` and ``TimeoutError``, and
  kombu's ``OperationalError``; plain ``ConnectionError`` and ``TimeoutError`` from sockets.

Redis-backed features that may fail open already do (rate limits, nudges); this is for what
cannot. Other database errors (constraint violations, bad input) keep their own handling.
``Unavailable`` (a cluster's Ray head, a cloud API) gets the same ``Retry-After``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa

from api.problems import problem
from rayplane.common.errors import Unavailable
from rayplane.logs import get_logger

log = get_logger("rayplane.api.outage")

RETRY_AFTER_SECONDS = 5

OUTAGES: tuple[type[Exception], ...] = (
    sa.OperationalError,
    sa.InterfaceError,
    sa.TimeoutError,
    sa.DisconnectionError,
    RedisConnectionError,
    RedisTimeoutError,
    BrokerError,
    ConnectionError,
    TimeoutError,
)

#: What ``Retry-After`` says on every 503.
RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _which(exc: Exception) -> str:
    if isinstance(exc, sa.SQLAlchemyError):
        return "the database"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | BrokerError):
        return "the message broker"
    return "a backing service"


async def _outage(request: Request, exc: Exception) -> JSONResponse:
    what = _which(exc)
    log.warning("backing_service_unavailable", path=request.url.path, service=what, error=type(exc).__name__)
    return problem(
        503,
        f"{what} is unavailable right now; retry in {RETRY_AFTER_SECONDS} seconds",
        instance=request.url.path,
        headers=RETRY_AFTER,
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unavailable)
    return problem(503, exc.detail, instance=request.url.path, headers=RETRY_AFTER)


def install(app: FastAPI) -> None:
    """Register after ``api.problems.install``: these are more specific than its handlers."""
    for cls in OUTAGES:
        app.add_exception_handler(cls, _outage)
    app.add_exception_handler(Unavailable, _unavailable)
