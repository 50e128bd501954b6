"""Reading a cluster's stored Ray logs: tenant-isolated use cases over the log store.

Logs outlive the cluster: every use case finds the cluster row with the caller's tenant
(a deleted cluster's row stays), so another tenant's cluster, or a file outside the caller's
cluster, answers 404 exactly as a missing one. The store is blocking; every call runs in a
thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import IO

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.clusters.repository import ClusterRepository
from rayplane.clusters.service import get_cluster, job_target
from rayplane.clusters.values import ClusterKind, State
from rayplane.common.errors import InvalidInput, NotFound
from rayplane.common.paging import Page, decode_cursor, page_of
from rayplane.common.principal import Principal
from rayplane.jobs import service as jobs
from rayplane.logstore import LogFile, LogKey, LogStore, SearchHit
from rayplane.logstore.base import valid_node, valid_path
from rayplane.providers.services import version_cluster_id

# States after which a cluster writes no more logs (a follower stops once files are quiet).
ENDED = frozenset({State.DELETED, State.STOPPED, State.FAILED})
# Most bytes one range read answers, and the largest zip of a node's logs.
MAX_READ = 16 * 1024 * 1024
MAX_ZIP = 512 * 1024 * 1024


class LogFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node: str
    component: str
    path: str
    size: int
    modified: str | None = None


class LogListOut(BaseModel):
    cluster_id: str = Field(description="The cluster whose files these are: for a service, its version's (`<id>-v<n>`)")
    version: int | None = Field(default=None, description="For a service: the version listed")
    items: list[LogFileOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= to get the next page; null on the last page")


class SearchHitOut(BaseModel):
    line: int
    text: str


class LogSearchOut(BaseModel):
    node: str
    path: str
    query: str
    hits: list[SearchHitOut]
    truncated: bool


@dataclass(frozen=True)
class LogSource:
    """Whose logs a request reads: a cluster's, or one version's of a service. Each version of
    a service is a cluster of its own and its files are stored under that cluster's name
    (``version_cluster_id``); ``owner`` is the id the caller named."""

    tenant: str
    owner: str
    stored: str
    kind: ClusterKind = ClusterKind.CLUSTER
    version: int | None = None
    cloud_id: str | None = None

    def key(self, node: str, path: str) -> LogKey:
        """A file of this source; 404 for a name no shipper could have stored."""
        if not (valid_node(node) and valid_path(path)):
            raise NotFound(f"log file {node}/{path} not found")
        return LogKey(self.tenant, self.stored, node, path)


async def source(
    session: AsyncSession,
    principal: Principal,
    owner_id: str,
    *,
    kind: ClusterKind = ClusterKind.CLUSTER,
    version: int | None = None,
) -> LogSource:
    """The caller's cluster (or service, with ``kind``) as a log source; 404 for another
    tenant's or the other kind. A service's ``version`` defaults to the one serving traffic
    (else the newest); a version it never had is 404, and a cluster has no versions (422)."""
    row = await get_cluster(session, principal, owner_id, kind=kind)
    if kind is ClusterKind.CLUSTER:
        if version is not None:
            raise InvalidInput.on("query.version", "only a service has versions")
        return LogSource(row.tenant_id, row.id, row.id, cloud_id=row.cloud_id)
    assert row.service is not None, "a service row has a ServiceSpec"
    newest = row.service.version
    progress = (row.observed or {}).get("service") or {}
    wanted = version if version is not None else int(progress.get("active_version") or newest)
    if not 1 <= wanted <= newest:
        raise NotFound(f"service {owner_id} has no version {wanted} (its versions are 1 to {newest})")
    return LogSource(row.tenant_id, row.id, version_cluster_id(row.id, wanted), kind, wanted, row.cloud_id)


async def still_writing(session: AsyncSession, src: LogSource) -> bool:
    """Whether the source's nodes may still write: its cluster runs (not ended); for a
    service's version, also that the version still serves or rolls out (a rollout retires the
    old one while the service goes on running)."""
    row = await ClusterRepository(session).get(src.tenant, src.owner, kind=src.kind)
    if row is None or row.state in ENDED:
        return False
    if src.version is None:
        return True
    progress = (row.observed or {}).get("service") or {}
    return src.version in (progress.get("active_version"), progress.get("pending_version"))


def file_out(f: LogFile) -> LogFileOut:
    return LogFileOut(
        node=f.node,
        component=f.component,
        path=f.path,
        size=f.size,
        modified=f.modified.isoformat() if f.modified else None,
    )


async def list_files(
    src: LogSource,
    store: LogStore,
    *,
    node: str | None = None,
    component: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[LogFile]:
    """The source's stored files in name order (node, component, path), optionally of one node
    and/or component, ``limit`` at a time from ``cursor`` (all of them without a limit)."""
    after = decode_cursor(cursor)
    if node is not None and not valid_node(node):
        return Page([], None)  # no file can be stored under such a name
    if component is None:
        files = await asyncio.to_thread(store.files, src.tenant, src.stored, node=node, after=after, limit=_more(limit))
    else:
        # The component is the name's second part: listed by node (and name), filtered here.
        found = await asyncio.to_thread(store.files, src.tenant, src.stored, node=node, after=after)
        files = [f for f in found if f.component == component][: _more(limit)]
    return page_of(files, limit, key="rel") if limit is not None else Page(files, None)


def _more(limit: int | None) -> int | None:
    return None if limit is None else limit + 1  # one more than the page: is there a next one?


async def read(store: LogStore, key: LogKey, *, offset: int, length: int | None, tail: int | None) -> bytes:
    """A range (``length`` capped at MAX_READ) or the last ``tail`` lines; 404 if missing."""
    if tail is not None and (offset or length is not None):
        raise InvalidInput.on("query.tail", "tail cannot be combined with offset or length")
    try:
        if tail is not None:
            return await asyncio.to_thread(store.tail, key, tail)
        wanted = MAX_READ if length is None else min(length, MAX_READ)
        return await asyncio.to_thread(store.read, key, offset, wanted)
    except FileNotFoundError:
        raise NotFound(f"log file {key.node}/{key.path} not found") from None


async def start_of_follow(store: LogStore, key: LogKey, *, offset: int, tail: int | None) -> tuple[bytes, int]:
    """What a follower is sent first (the last ``tail`` lines, else nothing) and the offset
    it continues from; 404 when the file is not stored."""
    size = await asyncio.to_thread(store.size, key)
    if size == 0 and not await asyncio.to_thread(store.exists, key):
        raise NotFound(f"log file {key.node}/{key.path} not found")
    if tail is not None:
        return await asyncio.to_thread(store.tail, key, tail), size
    return b"", min(offset, size)


async def follow(
    store: LogStore,
    key: LogKey,
    offset: int,
    cluster_live: Callable[[], Awaitable[bool]],
    *,
    interval: float = 1.0,
    settle: float = 5.0,
) -> AsyncIterator[bytes]:
    """Bytes from ``offset`` as they are stored, until the file has not grown for ``settle``
    seconds while the cluster is no longer running (its shippers' last pass is in by then)."""
    quiet_since: float | None = None
    while True:
        size = await asyncio.to_thread(store.size, key)
        if size > offset:
            data = await asyncio.to_thread(store.read, key, offset, min(size - offset, MAX_READ))
            offset += len(data)
            quiet_since = None
            yield data
            continue
        now = time.monotonic()
        quiet_since = quiet_since or now
        if now - quiet_since >= settle and not await cluster_live():
            return
        await asyncio.sleep(interval)


async def search_job_log(
    session: AsyncSession, principal: Principal, cluster_id: str, job_id: str, store: LogStore, query: str, limit: int
) -> LogSearchOut:
    """Lines of the job's driver log (``job-driver-<submission id>.log`` on the head) that
    contain ``query``; 404 when the job, or its stored log, does not exist."""
    target = await job_target(session, principal, cluster_id)
    job = await jobs.get_job(session, principal, target, job_id)
    key = LogKey(target.tenant_id, target.cluster_id, "head", f"job-driver-{job.submission_id}.log")
    try:
        hits: list[SearchHit] = await asyncio.to_thread(store.search, key, query, limit=limit + 1)
    except FileNotFoundError:
        raise NotFound(f"the log of job {job_id} is not stored") from None
    return LogSearchOut(
        node=key.node,
        path=key.path,
        query=query,
        hits=[SearchHitOut(line=h.line, text=h.text) for h in hits[:limit]],
        truncated=len(hits) > limit,
    )


def zip_node(store: LogStore, files: list[LogFile], tenant: str, cluster: str) -> IO[bytes]:
    """A zip of these files (``<node>/<path>``), spooled to disk past 8 MiB; at most MAX_ZIP
    bytes of logs (later files are left out, named in ``TRUNCATED.txt``)."""
    out: IO[bytes] = SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - returned open
    total, left_out = 0, []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            if total + f.size > MAX_ZIP:
                left_out.append(f.path)
                continue
            key = LogKey(tenant, cluster, f.node, f.path)
            with archive.open(f"{f.node}/{f.path}", "w", force_zip64=True) as member:
                offset = 0
                while offset < f.size:
                    chunk = store.read(key, offset, min(MAX_READ, f.size - offset))
                    if not chunk:
                        break
                    member.write(chunk)
                    offset += len(chunk)
            total += f.size
        if left_out:
            archive.writestr("TRUNCATED.txt", "left out (over the size limit):\n" + "\n".join(left_out) + "\n")
    out.seek(0)
    return out
