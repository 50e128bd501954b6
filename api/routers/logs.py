"""``/v1/clusters/{id}/logs``: a cluster's Ray logs from the log store, during its life and
after it is deleted; and a job's log searched."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

from fastapi import Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from api.common import problems
from api.deps import Caller, Session, app_state
from api.routing import Router
from rayplane.clusters import logs, logstores
from rayplane.clusters.logs import LogListOut, LogSearchOut
from rayplane.clusters.repository import ClusterRepository
from rayplane.common.errors import NotFound
from rayplane.logstore import LogStore, open_store

router = Router(prefix="/v1/clusters/{cluster_id}", tags=["logs"])
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


async def cluster_store(request: Request, session: Session, caller: Caller, cluster_id: str) -> LogStore:
    """Where ``cluster_id``'s logs are: the customer's account for an Azure cluster, else ours."""
    return await logstores.store_for(session, caller, cluster_id, app_state(request).settings, log_store(request))


@router.get("/logs", name="logs.list", response_model=LogListOut, responses=problems(404, 422))
async def list_logs(
    cluster_id: str,
    request: Request,
    session: Session,
    caller: Caller,
    node: str | None = Query(None, max_length=63, description="Only this node's files (`head`, `<group>-<n>`)"),
    component: str | None = Query(None, max_length=63, description="Only this component's (`raylet`, `worker` …)"),
) -> LogListOut:
    """The cluster's stored log files by node and component, with their sizes."""
    store = await cluster_store(request, session, caller, cluster_id)
    files = await logs.list_files(session, caller, cluster_id, store, node=node, component=component)
    return LogListOut(cluster_id=cluster_id, items=[logs.file_out(f) for f in files])


@router.get(
    "/logs/{node}.zip",
    name="logs.zip",
    response_class=Response,
    responses={**problems(404), 200: {**ZIP, "description": "The node's stored logs, as <node>/<path>"}},
)
async def node_zip(cluster_id: str, node: str, request: Request, session: Session, caller: Caller) -> Response:
    store = await cluster_store(request, session, caller, cluster_id)
    files = await logs.list_files(session, caller, cluster_id, store, node=node)
    if not files:
        raise NotFound(f"no stored logs of node {node}")
    key = await logs.file_key(session, caller, cluster_id, node, files[0].path)
    archive = await asyncio.to_thread(logs.zip_node, store, files, key.tenant, key.cluster)

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(archive.read, 1024 * 1024):
                yield chunk
        finally:
            archive.close()

    headers = {"Content-Disposition": f'attachment; filename="{cluster_id}-{node}.zip"'}
    return StreamingResponse(body(), media_type="application/zip", headers=headers)


@router.get(
    "/logs/{node}/{path:path}",
    name="logs.read",
    response_class=PlainTextResponse,
    responses={**problems(404, 422), 200: {**TEXT, "description": "The file's bytes, or a stream with follow"}},
)
async def read_log(
    cluster_id: str,
    node: str,
    path: str,
    request: Request,
    session: Session,
    caller: Caller,
    offset: int = Query(0, ge=0, le=2**53, description="First byte"),
    length: int | None = Query(None, ge=0, le=logs.MAX_READ, description="Bytes from offset (to the end)"),
    tail: int | None = Query(None, ge=1, le=100000, description="Only the last N lines"),
    follow: bool = Query(False, description="Stream new bytes until the cluster has ended and the file is quiet"),
) -> Response:
    """A byte range (``offset``, ``length``), the last lines (``tail``), or (``follow=true``) a
    ``text/plain`` stream from ``offset`` (or after ``tail``) that ends once the file stops
    growing and the cluster no longer runs."""
    store = await cluster_store(request, session, caller, cluster_id)
    key = await logs.file_key(session, caller, cluster_id, node, path)
    if not follow:
        data = await logs.read(store, key, offset=offset, length=length, tail=tail)
        return Response(data, media_type="text/plain; charset=utf-8")
    first, start = await logs.start_of_follow(store, key, offset=offset, tail=tail)
    state = app_state(request)
    sessions = state.read_sessions or state.sessions
    tenant = caller.tenant_id
    interval = state.settings.log_ship_interval_seconds

    async def cluster_live() -> bool:
        async with sessions() as s:
            row = await ClusterRepository(s).get(tenant, cluster_id)
            return row is not None and row.state not in logs.ENDED

    async def stream() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in logs.follow(store, key, start, cluster_live, interval=interval, settle=3 * interval + 2):
            yield chunk

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")


@router.get(
    "/jobs/{job_id}/logs:search", name="logs.search_job", response_model=LogSearchOut, responses=problems(404, 422)
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
    store = await cluster_store(request, session, caller, cluster_id)
    return await logs.search_job_log(session, caller, cluster_id, job_id, store, q, limit)
