"""Item 4 of issue 11: authentication before a body is read, body limits (413), label bounds.

The bodies here are async generators that count what the app pulled from them: the ASGI
transport hands a chunk to the app only when the app asks for it, so "pulled" is exactly
what the server read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.state import AppState
from tests.api.test_conventions import assert_problem
from tests.conftest import suite_settings
from tests.support.factories import Factory

CHUNK = 64 * 1024


class Body:
    """``chunks`` chunks of 64 KiB, counting how many the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b" " * CHUNK


@pytest.fixture
async def small(state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 256 KiB JSON limit and a 512 KiB package limit."""
    settings = suite_settings(
        state.settings.database_url or "",
        state.settings.redis_url or "",
        max_body_bytes=256 * 1024,
        max_package_bytes=512 * 1024,
    )
    app = create_app(settings, state=dataclasses.replace(state, settings=settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


JSON = {"Content-Type": "application/json"}


async def test_an_unauthenticated_body_is_never_read(small: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer rpk_nope"}):
        body = Body(160)  # 10 MiB, chunked
        r = await small.post("/v1/clusters", headers={**JSON, **headers}, content=body)
        assert_problem(r, 401)
        assert body.pulled == 0


async def test_a_declared_length_over_the_limit_is_refused_unread(small: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    body = Body(8)  # 512 KiB
    r = await small.post(
        "/v1/clusters", headers={**actor.headers, **JSON, "Content-Length": str(8 * CHUNK)}, content=body
    )
    problem = assert_problem(r, 413)
    assert "256 KiB" in str(problem["detail"])
    assert body.pulled == 0


async def test_a_chunked_body_is_cut_where_it_crosses_the_limit(small: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    body = Body(160)  # 10 MiB
    r = await small.post("/v1/clusters", headers={**actor.headers, **JSON}, content=body)
    assert_problem(r, 413)
    assert body.pulled == 256 * 1024 // CHUNK + 1  # the chunk that crossed it, and no more


async def test_the_package_route_has_its_own_limit_and_streams(small: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    zip_headers = {**actor.headers, "Content-Type": "application/zip"}
    # Over the JSON limit but under the package one: not a 413 (404: no such cluster).
    r = await small.post("/v1/clusters/cls_none/packages", headers=zip_headers, content=Body(6))
    assert_problem(r, 404)
    cut = Body(160)
    cluster = await small.post("/v1/clusters", headers=actor.headers, json={"name": "pkg"})
    assert cluster.status_code == 202, cluster.text
    r = await small.post(f"/v1/clusters/{cluster.json()['id']}/packages", headers=zip_headers, content=cut)
    assert "512 KiB" in str(assert_problem(r, 413)["detail"])
    assert cut.pulled == 512 * 1024 // CHUNK + 1


async def test_a_body_within_the_limit_is_served(small: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    r = await small.post("/v1/api-keys", headers=actor.headers, json={"name": "n" * 100, "role": "viewer"})
    assert r.status_code == 201, r.text


LONG = "v" * 64


def fields(problem: dict[str, object]) -> list[str]:
    errors = problem["errors"]
    assert isinstance(errors, list)
    return [e["field"] for e in errors]


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"team": LONG}, "body.labels.team"),
        ({"n" * 64: "x"}, "body.labels.nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn.[key]"),
        ({"a" * 254 + "/team": "x"}, f"body.labels.{'a' * 254}/team.[key]"),
        ({"Bad_Prefix/team": "x"}, "body.labels.Bad_Prefix/team.[key]"),
        ({"team": "-dash"}, "body.labels.team"),
        ({"": "x"}, "body.labels..[key]"),
        ({f"k{i}": "v" for i in range(33)}, "body.labels"),
    ],
)
async def test_labels_are_bounded_as_kubernetes_bounds_them(
    client: httpx.AsyncClient, factory: Factory, labels: dict[str, str], field: str
) -> None:
    actor = await factory.actor()
    created = await client.post("/v1/clusters", headers=actor.headers, json={"name": "lbl", "labels": labels})
    assert field in fields(assert_problem(created, 422))
    ok = await client.post("/v1/clusters", headers=actor.headers, json={"name": "lbl"})
    assert ok.status_code == 202, ok.text
    patched = await client.patch(f"/v1/clusters/{ok.json()['id']}", headers=actor.headers, json={"labels": labels})
    assert field in fields(assert_problem(patched, 422))


async def test_kubernetes_shaped_labels_are_accepted(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    labels = {"team": "ml", "example.com/owner": "a.b_c-d", "empty": "", "app.kubernetes.io/name": "x" * 63}
    r = await client.post("/v1/clusters", headers=actor.headers, json={"name": "ok", "labels": labels})
    assert r.status_code == 202, r.text
    assert r.json()["labels"] == labels
