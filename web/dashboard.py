"""Every cluster's Ray dashboard through Rayplane: ``/clusters/{id}/dashboard/…``.

Why here (``web/``) and not under ``api/``: it is a browser path with a session, a sign-in
redirect and a CSP of its own, like the console's pages; API keys are accepted too, checked
by the API's own ``api.authguard.authenticate`` (the same limiter and cache as ``/v1``), so
scripts reach the same dashboard without a second credential scheme.

Contract:
- Who: the console's session, or ``Authorization: Bearer <API key or Entra token>``, of a
  member of the cluster's tenant. Reading (GET, HEAD, OPTIONS, websockets) needs a viewer;
  anything else a member (the Ray token lets the dashboard do everything, so a viewer's
  proxy must not write). A write on the session's strength must come from this site
  (``SameSite=Lax`` and the ``Origin`` check stand in for the CSRF token the dashboard
  does not send). Another tenant's cluster, or none: 404. No credential: a browser
  (GET without ``Authorization``) goes to sign-in and comes back, anything else gets 401.
- Where: the cluster's ``dashboard_url`` as the reconciler last saw it (local: the head's
  dashboard port; Azure: the AKS API server's service proxy), with the headers and TLS
  trust that ``rayplane.jobs.access.JobsAccess`` gives the Jobs API calls: the proxy's own
  bearer token and CA on Azure, and the cluster's Ray token (``X-Ray-Authorization``) on
  every cloud. The caller's ``Authorization`` and Rayplane's session cookie are never sent.
- How: method, query and body are forwarded as they come; bodies stream both ways (httpx
  async streaming); hop-by-hop headers are dropped; a redirect that points at the upstream
  is rewritten to this path; websockets are relayed frame by frame. A path with a ``.`` or
  ``..`` segment is refused (404) before anything is sent: through a service proxy it could
  otherwise leave the dashboard for the API server itself.
- Answers carry a CSP of their own: the dashboard's bundle needs inline styles (and a
  bootstrap script), so it is looser than the console's, but still this origin only and
  ``frame-ancestors 'none'``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from fastapi import APIRouter, Request, WebSocket
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from api import authguard
from api.deps import Session, app_state, jobs_access
from rayplane.clusters import service
from rayplane.common.errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated
from rayplane.common.principal import Principal, Role
from rayplane.jobs.target import JobTarget
from rayplane.logs import get_logger
from web.forms import visitor
from web.render import _status, error_page
from web.security import CSP
from web.sessions import cookie_name

log = get_logger("rayplane.web")
router = APIRouter(include_in_schema=False)

READS = frozenset({"GET", "HEAD", "OPTIONS"})
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Never sent upstream: the caller's own credentials, and what httpx sets itself.
NOT_FORWARDED = HOP_BY_HOP | {"authorization", "host", "content-length", "cookie", "x-ray-authorization"}
# Upstream headers replaced by ours.
NOT_RETURNED = HOP_BY_HOP | {"content-security-policy", "x-frame-options", "strict-transport-security"}
DASHBOARD_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class Upstream:
    """Where a cluster's dashboard is and how to be let in (the headers include its Ray token)."""

    base: str
    headers: dict[str, str]
    verify: str | bool

    def url(self, path: str) -> str:
        return self.base.rstrip("/") + "/" + path


def _prefix(cluster_id: str) -> str:
    return f"/clusters/{cluster_id}/dashboard/"


def _safe_path(path: str) -> str:
    """``path`` re-quoted segment by segment; ``NotFound`` for ``.``/``..`` or a backslash."""
    segments = path.split("/")
    if any(s in (".", "..") or "\\" in s for s in segments):
        raise NotFound("no such dashboard page")
    return "/".join(quote(s, safe="!$&'()*+,;=:@~-._") for s in segments)


async def _principal(request: Request, db: AsyncSession) -> Principal | None:
    """The caller: an API key or Entra token when ``Authorization`` is sent (its failure is
    the API's 401/403), else the console's session (``None`` when there is none)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        client = request.client.host if request.client else None
        principal = await authguard.authenticate(app_state(request), db, authorization, client)
        request.state.principal = principal
        return principal
    who = await visitor(request, db)
    if who.principal is not None and request.method not in READS:
        _same_origin(request)
    if who.user is not None and who.principal is None:
        raise Forbidden(who.no_tenant or "you are not a member of a Rayplane tenant")
    return who.principal


def _same_origin(request: Request) -> None:
    """A write on the session's strength must come from this site. The dashboard's requests
    carry no CSRF token, so this stands in for one: ``SameSite=Lax`` already keeps the
    session cookie off cross-site POSTs, and a browser's ``Origin`` (sent on every
    cross-origin or non-GET fetch) must name this host."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("a change through the dashboard must come from this site")


async def _upstream(request: Request, db: AsyncSession, principal: Principal, cluster_id: str, method: str) -> Upstream:
    if method not in READS:
        principal.require(Role.MEMBER)
    target: JobTarget = await service.job_target(db, principal, cluster_id)  # 404 for another tenant's
    if not target.accepts_jobs or not target.dashboard_url:
        raise Conflict(f"cluster {target.name!r} is {target.state}; its dashboard is there while it runs")
    headers, verify = await jobs_access(request).auth_for(target)
    return Upstream(target.dashboard_url, headers, verify)


def _request_headers(request: Request | WebSocket, upstream: Upstream) -> dict[str, str]:
    listed = {h.strip().lower() for h in request.headers.get("connection", "").split(",")}
    out = {k: v for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED and k.lower() not in listed}
    cookies = _cookies_without_ours(request)
    if cookies:
        out["cookie"] = cookies
    return {**out, **upstream.headers}


def _cookies_without_ours(request: Request | WebSocket) -> str:
    """The request's cookies but Rayplane's session (the dashboard may set its own)."""
    ours = {cookie_name(True), cookie_name(False)}
    return "; ".join(f"{k}={v}" for k, v in request.cookies.items() if k not in ours)


def _location(value: str, upstream: Upstream, cluster_id: str) -> str:
    """A redirect into the upstream, as a path under the proxy; any other left alone."""
    base = urlsplit(upstream.base)
    base_path = base.path.rstrip("/")
    target = urlsplit(value)
    if target.scheme and (target.scheme, target.netloc) != (base.scheme, base.netloc):
        return value  # elsewhere entirely
    if not target.scheme and not value.startswith("/"):
        return value  # relative: the browser resolves it under the proxied path already
    path = target.path
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :]
    rest = (
        path.lstrip("/")
        + (f"?{target.query}" if target.query else "")
        + (f"#{target.fragment}" if target.fragment else "")
    )
    return _prefix(cluster_id) + rest


def _response_headers(answer: httpx.Response, upstream: Upstream, cluster_id: str) -> dict[str, str]:
    listed = {h.strip().lower() for h in answer.headers.get("connection", "").split(",")}
    out: list[tuple[str, str]] = []
    for key, value in answer.headers.multi_items():
        low = key.lower()
        if low in NOT_RETURNED or low in listed:
            continue
        out.append((low, _location(value, upstream, cluster_id) if low == "location" else value))
    headers = dict(out)  # set-cookie repeats are kept below
    headers["content-security-policy"] = DASHBOARD_CSP
    headers["x-frame-options"] = "DENY"
    headers["referrer-policy"] = "same-origin"
    return headers


@router.get("/clusters/{cluster_id}/dashboard", name="web.dashboard_root")
async def dashboard_root(cluster_id: str, request: Request) -> Response:
    """The dashboard's relative URLs resolve only under the slash form."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(_prefix(cluster_id) + query, status_code=308)


@router.api_route(
    "/clusters/{cluster_id}/dashboard/{path:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    name="web.dashboard",
)
async def proxy(cluster_id: str, path: str, request: Request, db: Session) -> Response:
    """A browser's page load that is refused (no such cluster, not running, no access) gets
    the console's HTML error page; every other refusal is the API's problem+json (and a
    refused write is audited as the API audits one)."""
    try:
        return await _forward(cluster_id, path, request, db)
    except DomainError as exc:
        if request.method not in ("GET", "HEAD") or "authorization" in request.headers:
            raise
        response = error_page(request, _status(exc), exc.detail)
        response.headers["Content-Security-Policy"] = CSP
        return response


async def _forward(cluster_id: str, path: str, request: Request, db: AsyncSession) -> Response:
    principal = await _principal(request, db)
    if principal is None:
        if request.method in ("GET", "HEAD"):
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/auth/sign-in?next={quote(here, safe='/')}", status_code=303)
        raise Unauthenticated("sign in, or send an API key as Authorization: Bearer <key>")
    upstream = await _upstream(request, db, principal, cluster_id, request.method)
    url = upstream.url(_safe_path(path)) + (f"?{request.url.query}" if request.url.query else "")
    client = httpx.AsyncClient(verify=upstream.verify, timeout=TIMEOUT, follow_redirects=False)
    has_body = request.method not in READS or "content-length" in request.headers
    outgoing = client.build_request(
        request.method,
        url,
        headers=_request_headers(request, upstream),
        content=request.stream() if has_body else None,
    )
    try:
        answer = await client.send(outgoing, stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        log.warning("dashboard_unreachable", cluster_id=cluster_id, error=type(exc).__name__)
        return Response("The cluster's dashboard did not answer; try again in a moment.", status_code=502)
    headers = _response_headers(answer, upstream, cluster_id)
    response = StreamingResponse(
        _body(answer), status_code=answer.status_code, headers=headers, background=BackgroundTask(client.aclose)
    )
    for cookie in answer.headers.get_list("set-cookie")[1:]:
        response.headers.append("set-cookie", cookie)
    return response


async def _body(answer: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream's bytes as they come (still compressed, as its headers say)."""
    try:
        async for chunk in answer.aiter_raw():
            yield chunk
    finally:
        await answer.aclose()


def _ssl(verify: str | bool) -> ssl.SSLContext | None:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else ssl.create_default_context()


@router.websocket("/clusters/{cluster_id}/dashboard/{path:path}")
async def proxy_socket(websocket: WebSocket, cluster_id: str, path: str) -> None:
    """A websocket to the dashboard (a job's log tail, say), relayed frame by frame."""
    # The session and key checks take a Request: one over the handshake's scope (its state
    # dict is the websocket's own), read-only, as the handshake is an HTTP GET.
    request = Request({**websocket.scope, "type": "http", "method": "GET"})
    try:
        async with app_state(request).sessions() as db:
            principal = await _principal(request, db)
            if principal is None:
                raise Unauthenticated("sign in, or send an API key as Authorization: Bearer <key>")
            if "authorization" not in request.headers:
                _same_origin(request)  # no other site's page may open a socket on the session
            upstream = await _upstream(request, db, principal, cluster_id, "GET")
    except DomainError as exc:
        await websocket.close(code=1008, reason=exc.detail[:120])
        return
    base = upstream.url(_safe_path(path)).replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    url = base + (f"?{websocket.url.query}" if websocket.url.query else "")
    headers = _request_headers(websocket, upstream)
    for key in ("sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"):
        headers.pop(key, None)
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    try:
        upstream_ws = await ws_connect(
            url,
            additional_headers=headers,
            subprotocols=protocols or None,  # type: ignore[arg-type]
            ssl=_ssl(upstream.verify) if url.startswith("wss://") else None,
            open_timeout=10,
        )
    except (InvalidStatus, InvalidHandshake, OSError, TimeoutError) as exc:
        log.warning("dashboard_socket_refused", cluster_id=cluster_id, error=str(exc)[:200])
        await websocket.close(code=1011, reason="the cluster's dashboard refused the connection")
        return
    async with upstream_ws:
        await websocket.accept(subprotocol=upstream_ws.subprotocol)
        await _relay(websocket, upstream_ws)


async def _relay(client: WebSocket, upstream: Any) -> None:
    """Both directions until either side closes; the other is then closed too."""

    async def down() -> None:
        async for message in upstream:
            if isinstance(message, bytes):
                await client.send_bytes(message)
            else:
                await client.send_text(message)

    async def up() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, ConnectionClosed | WebSocketDisconnect):
                log.warning("dashboard_socket_failed", error=type(exc).__name__)
    finally:
        await upstream.close()
        with contextlib.suppress(RuntimeError):  # already closed by the browser
            await client.close()
