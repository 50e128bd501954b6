"""The cluster pages and the dashboard proxy in process (no browser): the create form's errors,
roles, tenant isolation, and what the proxy sends upstream (a test upstream echoes it)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from api.state import AppState
from rayplane.clusters.models import Cluster
from rayplane.clusters.values import State
from rayplane.common import raytoken
from rayplane.common.principal import Role
from rayplane.tenants.models import Tenant
from tests.support.factories import Actor, Factory
from web.app import create_app
from web.sessions import KEY_PREFIX, _sign

FORM = {"content-type": "application/x-www-form-urlencoded"}
RAY_TOKEN = "ray-token-" + uuid.uuid4().hex


# -- a dashboard stand-in that shows what reached it ---------------------------------------------
async def _echo(request: Request) -> Response:
    body = (await request.body()).decode()
    seen = {"path": request.url.path, "query": request.url.query, "method": request.method, "body": body}
    return JSONResponse({**seen, "headers": dict(request.headers)}, headers={"set-cookie": "ray=1; Path=/"})


async def _moved(request: Request) -> Response:
    return RedirectResponse(f"{request.base_url}elsewhere?x=1", status_code=302)


async def _socket(websocket: WebSocket) -> None:
    """Says which headers reached it, then echoes every message until the client closes."""
    await websocket.accept()
    await websocket.send_json({"path": websocket.url.path, "headers": dict(websocket.headers)})
    try:
        while True:
            await websocket.send_text("echo: " + await websocket.receive_text())
    except WebSocketDisconnect:
        return


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    routes = [Route("/moved", _moved), WebSocketRoute("/ws/{path:path}", _socket)]
    app = Starlette(routes=[*routes, Route("/{path:path}", _echo, methods=["GET", "POST"])])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test upstream did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


# -- signed-in browsers without Entra: a session written as sign-in writes it ------------------------
@dataclass
class Browser:
    client: httpx.AsyncClient
    csrf: str


@pytest.fixture
async def app_client(state: AppState) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state.settings, state=state)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


async def _browser(state: AppState, redis: Redis, factory: Factory, tenant: Tenant, role: Role) -> Browser:
    oid = str(uuid.uuid4())
    await factory.member(tenant, role=role, oid=oid)
    sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    user = {"tid": tenant.entra_tenant_id, "oid": oid, "name": f"{role.value} person"}
    await redis.set(KEY_PREFIX + sid, json.dumps({"user": user, "csrf": csrf}), ex=600)
    app = create_app(state.settings, state=state)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    client.cookies.set("rayplane_session", f"{sid}.{_sign(state.hashing_key, sid)}")
    return Browser(client, csrf)


@dataclass
class Org:
    tenant: Tenant
    member: Browser
    viewer: Browser
    key: Actor


@pytest.fixture
async def org(state: AppState, redis: Redis, factory: Factory) -> AsyncIterator[Org]:
    tenant = await factory.tenant(tid=str(uuid.uuid4()))
    found = Org(
        tenant,
        await _browser(state, redis, factory, tenant, Role.MEMBER),
        await _browser(state, redis, factory, tenant, Role.VIEWER),
        await factory.actor(Role.VIEWER, tenant),
    )
    yield found
    await found.member.client.aclose()
    await found.viewer.client.aclose()


def _form(csrf: str, **fields: str) -> str:
    values = {"csrf": csrf, "name": "", "head.vm_size": "Standard_D2s_v5"} | fields
    return httpx.QueryParams(values).__str__()


async def _create(org: Org, name: str, **fields: str) -> httpx.Response:
    body = _form(org.member.csrf, name=name, **fields)
    return await org.member.client.post("/console/clusters/new", content=body, headers=FORM)


async def _created(org: Org, name: str) -> str:
    answer = await _create(org, name, **{"worker_groups.0.name": "cpu", "worker_groups.0.vm_size": "Standard_D2s_v5"})
    assert answer.status_code == 303, answer.text
    match = re.fullmatch(r"/console/clusters/(cls_\w+)", answer.headers["location"])
    assert match, answer.headers["location"]
    return match.group(1)


def _error_for(html: str, input_id: str) -> str:
    found = re.search(rf'id="{re.escape(input_id)}-error">([^<]*)<', html)
    assert found, f"no error shown for {input_id}"
    return found.group(1)


# -- the create form --------------------------------------------------------------------------------
async def test_the_form_offers_catalog_shapes_with_prices_and_an_estimate(org: Org) -> None:
    answer = await org.member.client.get("/console/clusters/new")
    assert answer.status_code == 200
    assert re.search(r"Standard_D2s_v5: 2 vCPU, 8 GiB, \$\d+\.\d{4}/h", answer.text)
    assert 'id="worker_groups-0-spot"' in answer.text
    assert 'id="worker_groups-0-fallback_to_on_demand"' in answer.text
    assert "an hour" in answer.text  # the estimate of the default values, before creating
    assert "kubernetes" not in answer.text.lower()
    assert "pod" not in answer.text.lower().split()


async def test_the_estimate_fragment_is_the_api_estimate(org: Org, client: httpx.AsyncClient) -> None:
    fields = {"worker_groups.0.name": "cpu", "worker_groups.0.vm_size": "Standard_D4s_v5"}
    fields |= {"worker_groups.0.min_nodes": "1", "worker_groups.0.max_nodes": "3"}
    answer = await org.member.client.post(
        "/console/clusters/new/estimate", content=_form(org.member.csrf, **fields), headers=FORM
    )
    assert answer.status_code == 200
    api = await client.post(
        "/v1/clusters:estimate",
        json={
            "head": {"vm_size": "Standard_D2s_v5"},
            "worker_groups": [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 3}],
        },
        headers=org.key.headers,
    )
    assert api.status_code == 200, api.text
    assert f"${api.json()['max_usd_per_hour']:.4f} an hour" in answer.text


async def test_a_shape_error_is_shown_at_its_field_and_the_form_keeps_its_values(org: Org) -> None:
    fields = {"worker_groups.0.name": "gpu", "worker_groups.0.vm_size": "Standard_D4s_v5"}
    fields |= {"worker_groups.0.min_nodes": "2", "worker_groups.0.max_nodes": "many"}
    answer = await _create(org, "Not_A_Name", **fields)
    assert answer.status_code == 422
    assert "pattern" in _error_for(answer.text, "name")
    assert "integer" in _error_for(answer.text, "worker_groups-0-max_nodes")
    assert 'value="Not_A_Name"' in answer.text
    assert 'value="many"' in answer.text
    assert 'value="gpu"' in answer.text
    assert 'aria-invalid="true" aria-describedby="name-error"' in answer.text


async def test_a_core_error_is_shown_at_its_field(org: Org) -> None:
    fields = {"worker_groups.0.name": "", "worker_groups.1.name": "cpu", "worker_groups.1.vm_size": "Standard_D2s_v5"}
    fields |= {"worker_groups.1.min_nodes": "3", "worker_groups.1.max_nodes": "1"}
    answer = await _create(org, "fine-name", **fields)
    assert answer.status_code == 422
    # The core names body.worker_groups.0 (the only named group); the form's input is group 1.
    assert "max" in _error_for(answer.text, "worker_groups-1-min_nodes")
    assert 'value="fine-name"' in answer.text


async def test_create_redirects_to_the_cluster_page(org: Org) -> None:
    cluster_id = await _created(org, "made-here")
    page = await org.member.client.get(f"/console/clusters/{cluster_id}")
    assert page.status_code == 200
    assert "Cluster made-here" in page.text
    assert f'hx-get="/console/clusters/{cluster_id}/live"' in page.text
    assert f"/console/clusters/{cluster_id}/confirm/stop" in page.text
    assert 'action="/console/clusters/' in page.text
    assert "Scale cpu" in page.text
    again = await _create(org, "made-here")
    assert again.status_code == 409
    assert "already exists" in _error_for(again.text, "name")


# -- roles and tenants --------------------------------------------------------------------------------
async def test_a_viewer_sees_no_write_controls_and_forged_posts_are_refused(org: Org) -> None:
    cluster_id = await _created(org, "viewed")
    page = await org.viewer.client.get(f"/console/clusters/{cluster_id}")
    assert page.status_code == 200
    assert "confirm/" not in page.text
    assert "/scale" not in page.text
    assert "<form" not in page.text.split("<main")[1]
    assert (await org.viewer.client.get("/console/clusters/new")).status_code == 403
    assert (await org.viewer.client.get(f"/console/clusters/{cluster_id}/confirm/stop")).status_code == 403
    forged = [
        (f"/console/clusters/{cluster_id}/confirm/stop", _form(org.viewer.csrf)),
        (f"/console/clusters/{cluster_id}/confirm/delete", _form(org.viewer.csrf)),
        (f"/console/clusters/{cluster_id}/scale", _form(org.viewer.csrf, group="cpu", min_nodes="0", max_nodes="5")),
        ("/console/clusters/new", _form(org.viewer.csrf, name="sneaky")),
    ]
    for path, body in forged:
        answer = await org.viewer.client.post(path, content=body, headers=FORM)
        assert answer.status_code == 403, (path, answer.text)
        assert answer.headers["content-type"].startswith("text/html")


async def test_confirmation_then_stop(org: Org) -> None:
    cluster_id = await _created(org, "to-stop")
    confirm = await org.member.client.get(f"/console/clusters/{cluster_id}/confirm/stop")
    assert confirm.status_code == 200
    assert "Yes, stop to-stop" in confirm.text
    done = await org.member.client.post(
        f"/console/clusters/{cluster_id}/confirm/stop", content=_form(org.member.csrf), headers=FORM
    )
    assert done.status_code == 303
    live = await org.member.client.get(f"/console/clusters/{cluster_id}/live")
    assert "<dt>Wanted</dt><dd>stopped</dd>" in live.text


async def test_a_member_scales_a_group_and_bad_counts_are_named(org: Org) -> None:
    cluster_id = await _created(org, "to-scale")
    bad = await org.member.client.post(
        f"/console/clusters/{cluster_id}/scale",
        content=_form(org.member.csrf, group="cpu", min_nodes="x", max_nodes="3"),
        headers=FORM,
    )
    assert bad.status_code == 422
    assert "min_nodes: a whole number" in bad.text
    done = await org.member.client.post(
        f"/console/clusters/{cluster_id}/scale",
        content=_form(org.member.csrf, group="cpu", min_nodes="1", max_nodes="3"),
        headers=FORM,
    )
    assert done.status_code == 303, done.text
    live = await org.member.client.get(f"/console/clusters/{cluster_id}/live")
    row = re.search(r'<tr data-group="cpu">(.*?)</tr>', live.text, re.S)
    assert row, live.text
    assert "Standard_D2s_v5" in row.group(1)
    assert "<td>1\u20133</td>" in row.group(1)  # fewest, en dash, most


async def test_another_tenants_cluster_is_the_html_404(
    org: Org, state: AppState, redis: Redis, factory: Factory
) -> None:
    cluster_id = await _created(org, "private")
    other = await _browser(state, redis, factory, await factory.tenant(tid=str(uuid.uuid4())), Role.OWNER)
    try:
        for path in (f"/console/clusters/{cluster_id}", f"/console/clusters/{cluster_id}/confirm/delete"):
            answer = await other.client.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html")
            assert "private" not in answer.text
        assert (await other.client.get("/console/clusters/cls_nothing")).status_code == 404
    finally:
        await other.client.aclose()


# -- the dashboard proxy ----------------------------------------------------------------------------------
async def _running(session: AsyncSession, state: AppState, cluster_id: str, url: str) -> None:
    """What the reconciler writes once the head answers: RUNNING, the URL, the sealed token."""
    cluster = await session.get(Cluster, cluster_id)
    assert cluster is not None
    cluster.state = State.RUNNING
    cluster.dashboard_url = url
    cluster.ray_token_sealed = raytoken.seal(state.hashing_key, RAY_TOKEN)
    await session.commit()


async def test_the_proxy_refuses_anonymous_callers_and_other_tenants(
    org: Org,
    app_client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    state: AppState,
    redis: Redis,
    upstream: str,
) -> None:
    cluster_id = await _created(org, "dash")
    await _running(session, state, cluster_id, upstream)
    anonymous = await app_client.get(f"/clusters/{cluster_id}/dashboard/")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/auth/sign-in?next=/clusters/{cluster_id}/dashboard/"
    assert (await app_client.post(f"/clusters/{cluster_id}/dashboard/api/jobs/", json={})).status_code == 401
    assert (
        await app_client.get(f"/clusters/{cluster_id}/dashboard/", headers={"Authorization": "Bearer nope"})
    ).status_code == 401
    stranger = await factory.actor(Role.OWNER)
    answer = await app_client.get(f"/clusters/{cluster_id}/dashboard/", headers=stranger.headers)
    assert answer.status_code == 404
    # A signed-in browser of another organisation gets the console's 404 page.
    other = await _browser(state, redis, factory, await factory.tenant(tid=str(uuid.uuid4())), Role.OWNER)
    try:
        page = await other.client.get(f"/clusters/{cluster_id}/dashboard/")
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "script-src 'self';" in page.headers["content-security-policy"]
    finally:
        await other.client.aclose()
    slashless = await app_client.get(f"/clusters/{cluster_id}/dashboard?a=b")
    assert slashless.status_code == 308
    assert slashless.headers["location"] == f"/clusters/{cluster_id}/dashboard/?a=b"


async def test_the_proxy_sends_the_ray_token_and_never_the_callers_credential(
    org: Org, app_client: httpx.AsyncClient, session: AsyncSession, state: AppState, upstream: str
) -> None:
    cluster_id = await _created(org, "dash-key")
    await _running(session, state, cluster_id, upstream)
    path = f"/clusters/{cluster_id}/dashboard/api/cluster_status?format=1&x=%2F"
    by_key = await app_client.get(path, headers={**org.key.headers, "Connection": "keep-alive, X-Drop", "X-Drop": "1"})
    assert by_key.status_code == 200, by_key.text
    seen = by_key.json()
    assert seen["path"] == "/api/cluster_status"
    assert seen["query"] == "format=1&x=%2F"
    assert seen["headers"]["x-ray-authorization"] == f"Bearer {RAY_TOKEN}"
    assert "authorization" not in seen["headers"]
    assert "x-drop" not in seen["headers"]
    assert "'unsafe-inline'" in by_key.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in by_key.headers["content-security-policy"]
    assert by_key.headers["set-cookie"].startswith("ray=1")

    # The console's session works too, and its cookie stays here.
    org.member.client.cookies.set("ray", "1")
    by_session = await org.member.client.post(
        f"/clusters/{cluster_id}/dashboard/api/jobs/", content=b'{"entrypoint": "echo"}'
    )
    assert by_session.status_code == 200, by_session.text
    seen = by_session.json()
    assert seen["method"] == "POST"
    assert seen["body"] == '{"entrypoint": "echo"}'
    assert seen["headers"]["cookie"] == "ray=1"
    assert seen["headers"]["x-ray-authorization"] == f"Bearer {RAY_TOKEN}"

    cross_site = await org.member.client.post(
        f"/clusters/{cluster_id}/dashboard/api/jobs/", json={}, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403

    moved = await app_client.get(f"/clusters/{cluster_id}/dashboard/moved", headers=org.key.headers)
    assert moved.status_code == 302
    assert moved.headers["location"] == f"/clusters/{cluster_id}/dashboard/elsewhere?x=1"
    # A viewer reads but does not write; a path out of the dashboard is refused.
    write = await app_client.post(f"/clusters/{cluster_id}/dashboard/api/jobs/", json={}, headers=org.key.headers)
    assert write.status_code == 403
    escape = await app_client.get(f"/clusters/{cluster_id}/dashboard/a/%2E%2E/%2E%2E/x", headers=org.key.headers)
    assert escape.status_code == 404


@pytest.fixture
async def served(state: AppState) -> AsyncIterator[str]:
    """The app on a real port, in this test's event loop (so it shares the test's database
    transaction): httpx's in-process transport has no websockets."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(state.settings, state=state), port=port, log_level="warning"))
    task = asyncio.ensure_future(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the app did not start"
        await asyncio.sleep(0.02)
    yield f"ws://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_websockets_are_relayed_with_the_ray_token_and_without_the_callers_key(
    org: Org, served: str, session: AsyncSession, state: AppState, upstream: str
) -> None:
    cluster_id = await _created(org, "dash-socket")
    await _running(session, state, cluster_id, upstream)
    url = f"{served}/clusters/{cluster_id}/dashboard/ws/tail"
    async with ws_connect(url, additional_headers=org.key.headers) as relayed:
        hello = json.loads(await relayed.recv())
        assert hello["path"] == "/ws/tail"
        assert hello["headers"]["x-ray-authorization"] == f"Bearer {RAY_TOKEN}"
        assert "authorization" not in hello["headers"]
        await relayed.send("ping")
        assert await relayed.recv() == "echo: ping"
    with pytest.raises(InvalidStatus, match="403"):
        async with ws_connect(url):
            pass
    # The console's session opens one from this site's pages, never from another site's.
    cookie = {"Cookie": f"rayplane_session={org.member.client.cookies['rayplane_session']}"}
    host = served.removeprefix("ws://")
    async with ws_connect(url, additional_headers=cookie, origin=f"http://{host}") as relayed:  # type: ignore[arg-type]
        assert json.loads(await relayed.recv())["path"] == "/ws/tail"
    with pytest.raises(InvalidStatus, match="403"):
        async with ws_connect(url, additional_headers=cookie, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
