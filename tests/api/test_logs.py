"""Structured logs carry request and tenant ids and never a credential."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from emulators.azure.server import EmulatorProcess
from rayplane.common.principal import Role
from rayplane.logs import configure_logging, get_logger, mask
from rayplane.settings import Settings
from tests.conftest import AUDIENCE
from tests.support.entra import mint
from tests.support.factories import Factory


@pytest.fixture
def settings(azure_settings: Settings) -> Settings:
    """The app checks Entra tokens here against the emulator's Entra ID."""
    return azure_settings


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []


async def test_logs_have_ids_and_no_secrets(
    client: httpx.AsyncClient, factory: Factory, emulator: EmulatorProcess, json_logs: io.StringIO
) -> None:
    import uuid

    tid = str(uuid.uuid4())
    tenant = await factory.tenant(tid=tid)
    member = await factory.member(tenant, role=Role.VIEWER)
    actor = await factory.actor(Role.OWNER, tenant=tenant)
    token = mint(emulator, tid, {"tid": tid, "oid": member.oid, "aud": AUDIENCE})

    assert (await client.get("/v1/tenant", headers=actor.headers)).status_code == 200
    assert (await client.get("/v1/tenant", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    created = await client.post("/v1/api-keys", headers=actor.headers, json={"name": "x"})
    new_key = created.json()["key"]
    # credentials that fail are not logged either
    await client.get("/v1/tenant", headers={"Authorization": f"Bearer {actor.raw_key[:-1]}z"})
    # even when code logs them by mistake, the redactor masks them
    get_logger("test").warning("oops", authorization=f"Bearer {actor.raw_key}", note=f"token {token}")

    text = json_logs.getvalue()
    assert actor.raw_key not in text
    assert actor.raw_key[:-1] not in text
    assert new_key not in text
    assert token not in text
    assert token.split(".")[1] not in text

    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [r for r in records if r.get("event") == "request"]
    assert len(requests) >= 3
    for r in requests:
        assert r["request_id"]
        assert r["level"] == "info"
    assert any(r.get("tenant_id") == tenant.id for r in requests)


def test_mask_handles_keys_and_jwts() -> None:
    key = "rpk_" + "a" * 12 + "_" + "b" * 40
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert mask(f"x {key} y {jwt_like} z") == "x [redacted] y [redacted] z"


def test_the_fast_access_line_is_what_the_processor_chain_writes(json_logs: io.StringIO) -> None:
    """``access_line`` skips structlog's processors for speed; its line must not differ from
    theirs: same keys and values (the bound request id included, keys masked), bar the time."""
    import structlog

    from rayplane.logs import ACCESS_LOGGER, access_line

    key = "rpk_abcdefghijkl_" + "0123456789abcdefghijklmnopqrstuvwxyz0123"
    cases = [
        {"method": "GET", "path": f"/v1/x/{key}", "route": "/v1/x/{id}", "status": 200, "duration_ms": 1.25},
        {"method": "POST", "path": '/v1/\u00e9"\\\x00', "route": "unmatched", "status": 404, "duration_ms": 0.0},
    ]
    for fields, tenant in zip(cases, ["ten_1", None], strict=True):
        json_logs.seek(0)
        json_logs.truncate()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id="r-1")
        try:
            get_logger(ACCESS_LOGGER).info("request", **fields, tenant_id=tenant)
            access_line(request_id="r-1", tenant_id=tenant, **fields)  # type: ignore[arg-type]
        finally:
            structlog.contextvars.clear_contextvars()
        chain, fast = (json.loads(line) for line in json_logs.getvalue().splitlines())
        assert chain.pop("timestamp").endswith("Z")
        assert fast.pop("timestamp").endswith("Z")
        assert fast == chain
        assert fast["request_id"] == "r-1"
        assert fast["logger"] == ACCESS_LOGGER
    assert chain["path"] == cases[1]["path"]


def test_a_key_in_the_path_is_masked_in_the_access_line(json_logs: io.StringIO) -> None:
    from rayplane.logs import access_line

    key = "rpk_abcdefghijkl_" + "0123456789abcdefghijklmnopqrstuvwxyz0123"
    access_line(
        request_id=key, method="GET", path=f"/v1/{key}", route="unmatched", status=401, duration_ms=1, tenant_id=None
    )
    line = json.loads(json_logs.getvalue())
    assert key not in json_logs.getvalue()
    assert line["path"] == "/v1/[redacted]"
    assert line["request_id"] == "[redacted]"


def test_the_fast_access_line_follows_the_level_and_the_console_format() -> None:
    from rayplane.logs import access_line

    def write(status: int) -> None:
        access_line(request_id="r", method="GET", path="/p", route="/p", status=status, duration_ms=1, tenant_id=None)

    stream = io.StringIO()
    try:
        configure_logging("WARNING", "json", stream=stream)
        write(200)
        assert stream.getvalue() == ""
        configure_logging("INFO", "console", stream=stream)
        write(201)
        assert "request" in stream.getvalue()
        assert "201" in stream.getvalue()
        assert not stream.getvalue().lstrip().startswith("{")
    finally:
        configure_logging("INFO", "json")
        logging.getLogger().handlers[:] = []
