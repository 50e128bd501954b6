"""API conventions that hold on every endpoint (DESIGN.md section 4)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from redis.asyncio import Redis

from api.app import create_app
from api.state import AppState
from rayplane.common.principal import Role
from tests.support.factories import Factory

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status", "detail"} <= set(body)
    assert "Traceback" not in response.text
    assert response.headers.get("x-request-id")
    return dict(body)


async def test_request_id_is_generated_and_echoed(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) >= 16
    echoed = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    # A hostile id (header injection, huge) is replaced, not reflected.
    replaced = await client.get("/healthz", headers={"X-Request-ID": "x" * 500})
    assert replaced.headers["x-request-id"] != "x" * 500


async def test_unknown_path_and_method_are_problems(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    body = assert_problem(await client.get("/v1/nothing-here", headers=actor.headers), 404)
    assert body["instance"] == "/v1/nothing-here"
    assert_problem(await client.put("/v1/tenant", headers=actor.headers, json={}), 405)


async def test_non_json_body_is_415_and_creates_nothing(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    before = (await client.get("/v1/api-keys", headers=actor.headers)).json()["items"]
    r = await client.post("/v1/api-keys", headers={**actor.headers, "Content-Type": "text/plain"}, content=b"name=x")
    assert_problem(r, 415)
    after = (await client.get("/v1/api-keys", headers=actor.headers)).json()["items"]
    assert after == before


async def test_validation_error_names_each_field_and_creates_nothing(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    actor = await factory.actor()
    r = await client.post("/v1/api-keys", headers=actor.headers, json={"name": "", "role": "emperor"})
    body = assert_problem(r, 422)
    fields = {e["field"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"body.name", "body.role"}
    keys = (await client.get("/v1/api-keys", headers=actor.headers)).json()["items"]
    assert [k["id"] for k in keys] == [actor.key.id]


async def test_unexpected_error_is_a_500_problem_without_trace(state: AppState) -> None:
    app = create_app(state.settings, state=state)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/boom")
    body = assert_problem(r, 500)
    assert "secret internals" not in r.text
    assert r.headers["x-request-id"] in str(body["detail"])


async def test_cursor_pagination_is_stable_and_complete(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    created = [actor.key.id]
    for i in range(6):
        r = await client.post("/v1/api-keys", headers=actor.headers, json={"name": f"k{i}", "role": "viewer"})
        created.append(r.json()["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/api-keys", headers=actor.headers, params=params)).json()
        seen += [k["id"] for k in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(created)
    assert pages == 3
    bad = await client.get("/v1/api-keys", headers=actor.headers, params={"cursor": "garbage!"})
    assert assert_problem(bad, 422)["errors"] == [
        {"field": "query.cursor", "message": "not a cursor returned by this API"}
    ]
    too_big = await client.get("/v1/api-keys", headers=actor.headers, params={"limit": 10_000})
    assert assert_problem(too_big, 422)["errors"][0]["field"] == "query.limit"  # type: ignore[index]


async def test_idempotent_create_replays_first_answer(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    key = str(uuid.uuid4())
    headers = {**actor.headers, "Idempotency-Key": key}
    first = await client.post("/v1/api-keys", headers=headers, json={"name": "ci", "role": "member"})
    second = await client.post("/v1/api-keys", headers=headers, json={"name": "ci", "role": "member"})
    assert first.status_code == second.status_code == 201
    # The whole key is answered once; a replay says it omitted it (see test_idempotency.py).
    assert second.json() == {**first.json(), "key": None, "secret_omitted": True}
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    listed = (await client.get("/v1/api-keys", headers=actor.headers)).json()["items"]
    assert sum(1 for k in listed if k["name"] == "ci") == 1

    other = await client.post("/v1/api-keys", headers=headers, json={"name": "different", "role": "member"})
    body = assert_problem(other, 422)
    assert body["errors"][0]["field"] == "header.Idempotency-Key"  # type: ignore[index]
    listed = (await client.get("/v1/api-keys", headers=actor.headers)).json()["items"]
    assert not any(k["name"] == "different" for k in listed)


async def test_idempotency_keys_are_per_tenant(client: httpx.AsyncClient, factory: Factory) -> None:
    a, b = await factory.actor(), await factory.actor()
    key = str(uuid.uuid4())
    ra = await client.post("/v1/api-keys", headers={**a.headers, "Idempotency-Key": key}, json={"name": "x"})
    rb = await client.post("/v1/api-keys", headers={**b.headers, "Idempotency-Key": key}, json={"name": "x"})
    assert ra.status_code == rb.status_code == 201
    assert ra.json()["id"] != rb.json()["id"]


async def test_if_match_rejects_stale_versions(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    got = await client.get("/v1/tenant", headers=actor.headers)
    etag = got.headers["etag"]
    ok = await client.patch("/v1/tenant", headers={**actor.headers, "If-Match": etag}, json={"display_name": "First"})
    assert ok.status_code == 200
    assert ok.headers["etag"] != etag
    stale = await client.patch(
        "/v1/tenant", headers={**actor.headers, "If-Match": etag}, json={"display_name": "Second"}
    )
    assert_problem(stale, 412)
    now = (await client.get("/v1/tenant", headers=actor.headers)).json()
    assert now["display_name"] == "First"
    fresh = await client.patch(
        "/v1/tenant", headers={**actor.headers, "If-Match": ok.headers["etag"]}, json={"display_name": "Second"}
    )
    assert fresh.status_code == 200
    assert fresh.json()["display_name"] == "Second"


async def test_if_match_on_delete(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    created = await client.post("/v1/api-keys", headers=actor.headers, json={"name": "tmp"})
    key_id = created.json()["id"]
    assert_problem(await client.delete(f"/v1/api-keys/{key_id}", headers={**actor.headers, "If-Match": '"999"'}), 412)
    assert (await client.get(f"/v1/api-keys/{key_id}", headers=actor.headers)).json()["revoked_at"] is None
    ok = await client.delete(f"/v1/api-keys/{key_id}", headers={**actor.headers, "If-Match": created.headers["etag"]})
    assert ok.status_code == 200
    assert ok.json()["revoked_at"] is not None


async def test_cors_preflight_for_portal_origin(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/v1/tenant",
        headers={
            "Origin": "https://portal.example.com",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "Authorization, If-Match",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://portal.example.com"
    other = await client.options(
        "/v1/tenant", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    await client.get(f"/v1/api-keys/{actor.key.id}", headers=actor.headers)
    text = (await client.get("/metrics")).text
    assert 'rayplane_http_requests_total{method="GET",route="/v1/api-keys/{key_id}",status="200"}' in text
    assert "rayplane_http_request_duration_seconds_bucket" in text
    assert "process_resident_memory_bytes" in text
    assert actor.key.id not in text  # route templates, not raw paths: bounded label values


async def test_readyz_reports_ready_and_unready(client: httpx.AsyncClient, state: AppState) -> None:
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    broken = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    app = create_app(state.settings, state=AppState(**{**state.__dict__, "redis": broken}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/readyz")
    body = assert_problem(r, 503)
    assert "broker" in str(body["detail"])
    await broken.aclose()


async def test_rate_limit_answers_429_with_retry_after(state: AppState, factory: Factory) -> None:
    actor = await factory.actor(Role.VIEWER)
    limited = AppState(**{**state.__dict__, "settings": state.settings.model_copy(update={"rate_limit_per_minute": 3})})
    app = create_app(limited.settings, state=limited)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        statuses = [(await c.get("/v1/tenant", headers=actor.headers)).status_code for _ in range(5)]
        last = await c.get("/v1/tenant", headers=actor.headers)
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    assert_problem(last, 429)
    assert 1 <= int(last.headers["retry-after"]) <= 60


@pytest.mark.parametrize("path", ["/v1/tenant", "/v1/members", "/v1/api-keys", "/v1/audit-log"])
async def test_every_endpoint_requires_credentials(client: httpx.AsyncClient, path: str) -> None:
    body = assert_problem(await client.get(path), 401)
    assert "Authorization" in str(body["detail"])
