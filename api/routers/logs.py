"""``/v1/clusters/{id}/logs`` and ``/v1/services/{id}/logs``: Ray logs from the log store,
during a cluster's life and after it is deleted (a service's, per version); and a job's log
searched. Each route of a service is its cluster route's body with another ``LogSource``."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator

from fastapi import Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from api.common import problems
from api.deps import Caller, Session, app_state
from api.routing import Router
from rayplane.clusters import logs, logstores
from rayplane.clusters.logs import LogListOut, LogSearchOut, LogSource
from rayplane.clusters.values import ClusterKind
from rayplane.common.errors import NotFound
from rayplane.logstore import LogStore, open_store

router = Router(tags=["logs"])
CLUSTER = "/v1/clusters/{cluster_id}"
SERVICE = "/v1/services/{service_id}"
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
ZIP = {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}
_stores: dict[tuple[str, str], LogStore] = {}
_stores_lock = threading.Lock()


def log_store(request: Request) -> LogStore:
    """The deployment's log store (one client per process, made on first use)."""
    settings = app_state(request).settings
    where = (settings.log_store(), settings.log_container)
    with _stores_lock:
        if where not in _stores:
            _stores[where] = open_store(*where)
        return _stores[where]


async def located(request: Request, session: Session, src: LogSource) -> tuple[LogSource, LogStore]:
    """Where ``src``'s files are: the customer's own storage account for a cluster on an Azure
    cloud with durable logs (its pods' shippers write there), else the deployment's store.
    On Azure a service's pods ship under the service's id, every version together (their node
    names carry their version's cluster), so its logs are listed as one source."""
    default = log_store(request)
    store = await logstores.store_for(session, src.tenant, src.cloud_id, app_state(request).settings, default)
    if store is not default and src.version is not None:
        src = dataclasses.replace(src, stored=src.owner, version=None)
    return src, store


NodeQuery = Query(None, max_length=63, description="Only this node's files (`head`, `<group>-<n>`)")
ComponentQuery = Query(None, max_length=63, description="Only this component's (`raylet`, `worker` …)")
CursorQuery = Query(None, max_length=2048, description="From a previous page's `next_cursor`")
LimitQuery = Query(1000, ge=1, le=5000, description="Most files in the page")
VersionQuery = Query(None, ge=1, le=2**31 - 1, description="The service's version (default: the one serving)")


async def _list(
    request: Request,
    session: Session,
    src: LogSource,
    node: str | None,
    component: str | None,
    cursor: str | None,
    limit: int,
) -> LogListOut:
    src, store = await located(request, session, src)
    found = await logs.list_files(src, store, node=node, component=component, cursor=cursor, limit=limit)
    return LogListOut(
        cluster_id=src.stored,
        version=src.version,
        items=[logs.file_out(f) for f in found.items],
        next_cursor=found.next_cursor,
    )


@router.get(CLUSTER + "/logs", name="logs.list", response_model=LogListOut, responses=problems(404, 422))
async def list_logs(
    cluster_id: str,
    request: Request,
    session: Session,
    caller: Caller,
    node: str | None = NodeQuery,
    component: str | None = ComponentQuery,
    cursor: str | None = CursorQuery,
    limit: int = LimitQuery,
) -> LogListOut:
    """The cluster's stored log files by node and component, with their sizes, in name order."""
    return await _list(request, session, await logs.source(session, caller, cluster_id), node, component, cursor, limit)


@router.get(SERVICE + "/logs", name="logs.list_service", response_model=LogListOut, responses=problems(404, 422))
async def list_service_logs(
    service_id: str,
    request: Request,
    session: Session,
    caller: Caller,
    version: int | None = VersionQuery,
    node: str | None = NodeQuery,
    component: str | None = ComponentQuery,
    cursor: str | None = CursorQuery,
    limit: int = LimitQuery,
) -> LogListOut:
    """One version's stored log files (each version of a service is a cluster of its own)."""
    src = await logs.source(session, caller, service_id, kind=ClusterKind.SERVICE, version=version)
    return await _list(request, session, src, node, component, cursor, limit)


async def _zip(request: Request, session: Session, src: LogSource, node: str) -> Response:
    src, store = await located(request, session, src)
    found = await logs.list_files(src, store, node=node)
    if not found.items:
        raise NotFound(f"no stored logs of node {node}")
    archive = await asyncio.to_thread(logs.zip_node, store, found.items, src.tenant, src.stored)

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(archive.read, 1024 * 1024):
                yield chunk
        finally:
            archive.close()

    headers = {"Content-Disposition": f'attachment; filename="{src.stored}-{node}.zip"'}
    return StreamingResponse(body(), media_type="application/zip", headers=headers)


_ZIP_RESPONSES = {**problems(404), 200: {**ZIP, "description": "The node's stored logs, as <node>/<path>"}}


@router.get(CLUSTER + "/logs/{node}.zip", name="logs.zip", response_class=Response, responses=_ZIP_RESPONSES)
async def node_zip(cluster_id: str, node: str, request: Request, session: Session, caller: Caller) -> Response:
    return await _zip(request, session, await logs.source(session, caller, cluster_id), node)


@router.get(SERVICE + "/logs/{node}.zip", name="logs.zip_service", response_class=Response, responses=_ZIP_RESPONSES)
async def service_node_zip(
    service_id: str,
    node: str,
    request: Request,
    session: Session,
    caller: Caller,
    version: int | None = VersionQuery,
) -> Response:
    src = await logs.source(session, caller, service_id, kind=ClusterKind.SERVICE, version=version)
    return await _zip(request, session, src, node)


OffsetQuery = Query(0, ge=0, le=2**53, description="First byte")
LengthQuery = Query(None, ge=0, le=logs.MAX_READ, description="Bytes from offset (to the end)")
TailQuery = Query(None, ge=1, le=100000, description="Only the last N lines")
FollowQuery = Query(False, description="Stream new bytes until the cluster has ended and the file is quiet")
_READ_RESPONSES = {**problems(404, 422), 200: {**TEXT, "description": "The file's bytes, or a stream with follow"}}


async def _read(
    request: Request,
    session: Session,
    src: LogSource,
    node: str,
    path: str,
    offset: int,
    length: int | None,
    tail: int | None,
    follow: bool,
) -> Response:
    src, store = await located(request, session, src)
    key = src.key(node, path)
    if not follow:
        data = await logs.read(store, key, offset=offset, length=length, tail=tail)
        return Response(data, media_type="text/plain; charset=utf-8")
    first, start = await logs.start_of_follow(store, key, offset=offset, tail=tail)
    state = app_state(request)
    sessions = state.read_sessions or state.sessions
    interval = state.settings.log_ship_interval_seconds

    async def writing() -> bool:
        async with sessions() as s:
            return await logs.still_writing(s, src)

    async def stream() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in logs.follow(store, key, start, writing, interval=interval, settle=3 * interval + 2):
            yield chunk

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")


@router.get(
    CLUSTER + "/logs/{node}/{path:path}", name="logs.read", response_class=PlainTextResponse, responses=_READ_RESPONSES
)
async def read_log(
    cluster_id: str,
    node: str,
    path: str,
    request: Request,
    session: Session,
    caller: Caller,
    offset: int = OffsetQuery,
    length: int | None = LengthQuery,
    tail: int | None = TailQuery,
    follow: bool = FollowQuery,
) -> Response:
    """A byte range (``offset``, ``length``), the last lines (``tail``), or (``follow=true``) a
    ``text/plain`` stream from ``offset`` (or after ``tail``) that ends once the file stops
    growing and the cluster no longer runs."""
    src = await logs.source(session, caller, cluster_id)
    return await _read(request, session, src, node, path, offset, length, tail, follow)


@router.get(
    SERVICE + "/logs/{node}/{path:path}",
    name="logs.read_service",
    response_class=PlainTextResponse,
    responses=_READ_RESPONSES,
)
async def read_service_log(
    service_id: str,
    node: str,
    path: str,
    request: Request,
    session: Session,
    caller: Caller,
    version: int | None = VersionQuery,
    offset: int = OffsetQuery,
    length: int | None = LengthQuery,
    tail: int | None = TailQuery,
    follow: bool = FollowQuery,
) -> Response:
    """As for a cluster, of one version of the service; a follow ends once that version no
    longer runs (retired by a rollout, or the service stopped) and the file is quiet."""
    src = await logs.source(session, caller, service_id, kind=ClusterKind.SERVICE, version=version)
    return await _read(request, session, src, node, path, offset, length, tail, follow)


@router.get(
    CLUSTER + "/jobs/{job_id}/logs:search",
    name="logs.search_job",
    response_model=LogSearchOut,
    responses=problems(404, 422),
)
async def search_job_log(
    cluster_id: str,
    job_id: str,
    request: Request,
    session: Session,
    caller: Caller,
    q: str = Query(..., min_length=1, max_length=1000, description="The text to find (case-sensitive)"),
    limit: int = Query(1000, ge=1, le=10000, description="Most lines answered"),
) -> LogSearchOut:
    """Lines of the job's stored driver log that contain ``q``, with their numbers; works
    after the cluster is deleted."""
    return await logs.search_job_log(session, caller, cluster_id, job_id, log_store(request), q, limit)
