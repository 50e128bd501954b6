"""Item 10 of issue 11: nosniff everywhere, no-store on secrets, OPTIONS with the real Allow."""

from __future__ import annotations

import typing

import httpx
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api.app import ROUTERS
from api.headers import SECRET_ROUTES
from tests.api.test_conventions import assert_problem
from tests.support.factories import Factory

SECRET_FIELDS = {"key", "secret", "token", "password", "client_secret", "auth_token"}
#: Routes whose models have a secret-looking field that is not a secret (a report row's key).
NOT_SECRET = {"usage.get"}


async def test_every_answer_is_nosniff_errors_included(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    answers = [
        await client.get("/healthz"),
        await client.get("/v1/clusters", headers=actor.headers),
        await client.get("/v1/clusters"),  # 401 from the route's dependency
        await client.get("/v1/nothing-here", headers=actor.headers),  # 404 from the router
        await client.post("/v1/api-keys", headers={**actor.headers, "Content-Type": "text/plain"}, content=b"x"),  # 415
        await client.options("/v1/clusters"),
    ]
    for answer in answers:
        assert answer.headers.get("x-content-type-options") == "nosniff", (answer.request.url, answer.status_code)


async def test_a_new_api_key_is_no_store_and_other_answers_are_not(client: httpx.AsyncClient, factory: Factory) -> None:
    actor = await factory.actor()
    created = await client.post("/v1/api-keys", headers=actor.headers, json={"name": "ci", "role": "viewer"})
    assert created.status_code == 201, created.text
    assert "key" in created.json()
    assert created.headers.get("cache-control") == "no-store"
    listed = await client.get("/v1/api-keys", headers=actor.headers)
    assert listed.status_code == 200
    assert "no-store" not in listed.headers.get("cache-control", "")


def _field_names(annotation: object) -> set[str]:
    names: set[str] = set()
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            for name, info in arg.model_fields.items():
                names.add(name)
                names |= _field_names(info.annotation)
    return names


def test_every_route_that_answers_a_secret_is_no_store() -> None:
    routes = [route for module in ROUTERS for route in module.router.routes if isinstance(route, APIRoute)]
    secret_routes = {route.name for route in routes if _field_names(route.response_model) & SECRET_FIELDS}
    assert "api_keys.create" in secret_routes
    assert secret_routes - NOT_SECRET <= SECRET_ROUTES, "list these routes in api.headers.SECRET_ROUTES"


async def test_options_answers_the_paths_methods(client: httpx.AsyncClient) -> None:
    collection = await client.options("/v1/clusters")
    assert collection.status_code == 204, collection.text
    assert collection.headers["allow"] == "GET, OPTIONS, POST"
    item = await client.options("/v1/clusters/cls_anything")
    assert item.status_code == 204
    assert item.headers["allow"] == "DELETE, GET, OPTIONS, PATCH"
    assert_problem(await client.options("/v1/nothing-here"), 404)


async def test_cors_preflight_still_works(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/v1/clusters",
        headers={"Origin": "https://portal.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://portal.example.com"
    assert "POST" in preflight.headers["access-control-allow-methods"]
