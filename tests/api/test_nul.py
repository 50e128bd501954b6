"""NUL (U+0000) anywhere in a request is a 404 or 422 naming the field, never a 500; database
errors never log statement parameters."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import Request
from sqlalchemy import text

from api.app import create_app
from api.deps import Session
from api.state import AppState
from rayplane.logs import configure_logging
from tests.support.factories import Factory

PROBLEM = "application/problem+json"


def field_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    errors = response.json().get("errors") or [{"field": None}]
    return str(errors[0]["field"])


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    yield stream
    logging.getLogger().handlers[:] = []


async def test_nul_in_path_ids_is_404(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    for method, path in [
        ("GET", "/v1/api-keys/key_%00"),
        ("DELETE", "/v1/api-keys/%00"),
        ("GET", "/v1/clusters/cls_%00/jobs"),
        ("GET", "/v1/members/mem%00x"),
        ("GET", "/v1/clouds/%00"),
    ]:
        r = await client.request(method, path, headers=actor.headers)
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"].startswith(PROBLEM)


async def test_nul_in_cursors_filters_and_headers_is_422_naming_the_field(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    actor = await factory.actor()
    cursor = base64.urlsafe_b64encode(json.dumps({"after": "key_\x00"}).encode()).decode().rstrip("=")
    r = await client.get("/v1/api-keys", headers=actor.headers, params={"cursor": cursor})
    assert field_of(r, 422) == "query.cursor"
    r = await client.get("/v1/audit-log", headers=actor.headers, params={"action": "a\x00b"})
    assert field_of(r, 422) == "query.action"
    r = await client.get("/v1/clusters", headers=actor.headers, params={"label": "team=\x00"})
    assert field_of(r, 422) == "query.label"
    r = await client.get("/v1/api-keys", headers=actor.headers, params={"cursor": "\x00"})
    assert field_of(r, 422) == "query.cursor"
    r = await client.post("/v1/api-keys", headers={**actor.headers, "Idempotency-Key": "k\x00"}, json={"name": "x"})
    assert field_of(r, 422) == "header.Idempotency-Key"


async def test_nul_in_body_strings_is_422_naming_the_field(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    r = await client.post("/v1/api-keys", headers=actor.headers, json={"name": "a\x00b"})
    assert field_of(r, 422) == "body.name"
    r = await client.patch("/v1/tenant", headers=actor.headers, json={"display_name": "\x00"})
    assert field_of(r, 422) == "body.display_name"
    r = await client.post(
        "/v1/clusters",
        headers=actor.headers,
        json={
            "name": "n",
            "labels": {"team": "x\x00"},
            "head": {"vm_size": "Standard_D2s_v5"},
            "worker_groups": [],
        },
    )
    assert field_of(r, 422) == "body.labels.team"
    r = await client.post("/v1/members", headers=actor.headers, json={"oid": "\x00"})
    assert field_of(r, 422) == "body.oid"
    listed = (await client.get("/v1/api-keys", headers=actor.headers)).json()["items"]
    assert len(listed) == 1


async def test_a_database_refusal_is_422_and_its_log_has_no_parameters(
    state: AppState, factory: Factory, json_logs: io.StringIO
) -> None:
    """The last resort: a value that passed every check but that Postgres refuses."""
    actor = await factory.actor()
    secret = "s3cret-parameter-value-0b1c"
    app = create_app(state.settings, state=state)

    async def refused(request: Request, session: Session) -> None:
        await session.execute(text("SELECT CAST(:a AS text), CAST(:b AS text)"), {"a": secret, "b": "x\x00y"})

    app.add_api_route("/v1/_refused", refused, methods=["GET"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        r = await client.get("/v1/_refused", headers=actor.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert secret not in r.text
    logs = json_logs.getvalue()
    assert "database_refused_value" in logs
    assert secret not in logs


async def test_engines_hide_parameters_in_database_errors(state: AppState) -> None:
    from sqlalchemy.exc import DBAPIError

    secret = "s3cret-parameter-value-9f2e"
    async with state.sessions() as session:
        with pytest.raises(DBAPIError) as caught:
            # What the review saw: a NUL beside a secret (there, api_keys.secret_hash).
            await session.execute(text("SELECT CAST(:a AS text), CAST(:b AS text)"), {"a": secret, "b": "\x00"})
    assert "parameters hidden" in str(caught.value)
    assert secret not in str(caught.value)
