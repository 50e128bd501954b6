"""The API fuzzed from its own OpenAPI document (schemathesis) against a live server.

Every operation of ``openapi/openapi.json`` gets a bounded number of generated requests,
valid and invalid, sent with an owner's API key to a real uvicorn process on the session's
database and Redis. Each answer must be no server error, of a status code the document
lists for the operation, of the content type it lists, and (for documented codes) of the
schema it gives. A failure names the operation and the request that broke it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from rayplane.db.engine import async_session_factory
from tests.conftest import HASHING_KEY
from tests.marketplace.support import LiveApi
from tests.support.factories import Actor, Factory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_path(ROOT / "openapi" / "openapi.json")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def live(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    workdir = tmp_path_factory.mktemp("fuzz-api")
    env = {
        "RAYPLANE_ENV": "test",
        "RAYPLANE_DATA_DIR": str(workdir),
        "RAYPLANE_DATABASE_URL": database_url,
        "RAYPLANE_REDIS_URL": redis_url,
        "RAYPLANE_SECRET_KEY": HASHING_KEY.decode(),
        # Nudges go to a queue no worker consumes: the fuzzer's clusters are never built.
        "RAYPLANE_TASK_QUEUE": f"test-fuzz-{uuid.uuid4().hex[:8]}",
        "RAYPLANE_RATE_LIMIT_PER_MINUTE": "1000000",
        "RAYPLANE_LOG_LEVEL": "WARNING",
    }
    api = LiveApi(env, workdir / "api.log").start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
async def owner(engine: AsyncEngine) -> Actor:
    async with async_session_factory(engine)() as session:
        return await Factory(session, HASHING_KEY).actor()


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case[Any], live: LiveApi, owner: Actor) -> None:
    headers = dict(owner.headers)
    if case.headers and "Authorization" in case.headers:
        headers.pop("Authorization")  # the generated header is what is being tested
    case.call_and_validate(base_url=live.url, headers=headers, checks=CHECKS)
