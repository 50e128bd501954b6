"""The log store's interface and what every implementation shares.

A log file is named by a ``LogKey``: tenant, cluster, node (``head``, ``<group>-<n>``) and
its path relative to the node's Ray ``logs`` directory (``raylet.out``,
``serve/controller_1.log``). Its component (``raylet``, ``worker``, ``serve`` ...) follows
from the path, and the stored name is ``<tenant>/<cluster>/<node>/<component>/<path>``.

Files only grow, by ``append`` at an expected offset: the stored size is the shipper's
offset, so a shipper that restarts continues exactly where the store ends (no line twice,
none lost), and two writers of one file cannot interleave (``OffsetMismatch``).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

# The development account every Azurite accepts (Microsoft's documented well-known values).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# Component of a file by the start of its name, first match wins (Ray's log file names).
_COMPONENTS = (
    "job-driver",
    "python-core-driver",
    "python-core-worker",
    "worker",
    "raylet",
    "gcs_server",
    "dashboard_agent",
    "dashboard",
    "runtime_env",
    "log_monitor",
    "monitor",
    "ray_client_server",
)
_SEGMENT = re.compile(r"^[A-Za-z0-9_.@=+-]{1,200}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# How much ``search`` reads per request, and ``tail`` per step back.
SEARCH_CHUNK = 4 * 1024 * 1024
TAIL_STEP = 64 * 1024


class OffsetMismatch(Exception):
    """An append was refused: the stored file's size is not the offset the writer expected."""

    def __init__(self, actual: int) -> None:
        super().__init__(f"the stored file has {actual} bytes")
        self.actual = actual


def component_of(path: str) -> str:
    """``raylet.out`` -> ``raylet``; a file in a directory (``serve/x.log``) -> the directory."""
    if "/" in path:
        return path.split("/", 1)[0]
    for prefix in _COMPONENTS:
        if path.startswith(prefix):
            return prefix
    return "other"


def valid_node(node: str) -> bool:
    return bool(_NAME.match(node))


def valid_path(path: str) -> bool:
    """A relative path of plain segments: no ``..``, no empty or hidden-only parts."""
    parts = path.split("/")
    return 0 < len(parts) <= 4 and all(_SEGMENT.match(p) and p not in (".", "..") for p in parts)


@dataclass(frozen=True)
class LogKey:
    tenant: str
    cluster: str
    node: str
    path: str

    def __post_init__(self) -> None:
        if not (valid_node(self.node) and valid_path(self.path)):
            raise ValueError(f"not a log file name: {self.node}/{self.path}")

    @property
    def component(self) -> str:
        return component_of(self.path)

    @property
    def name(self) -> str:
        """The stored name: ``<tenant>/<cluster>/<node>/<component>/<path>``."""
        return f"{self.tenant}/{self.cluster}/{self.node}/{self.component}/{self.path}"


@dataclass(frozen=True)
class LogFile:
    node: str
    component: str
    path: str
    size: int
    modified: datetime | None

    @property
    def rel(self) -> str:
        """The name under the cluster's prefix, the order listings follow (the stores' own)."""
        return f"{self.node}/{self.component}/{self.path}"


@dataclass(frozen=True)
class SearchHit:
    line: int  # 1-based
    text: str


def parse_name(prefix: str, name: str) -> tuple[str, str, str] | None:
    """(node, component, path) of a stored name under ``<tenant>/<cluster>/``, else None."""
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("/", 2)
    if len(parts) != 3:
        return None
    node, component, path = parts
    return (node, component, path) if component == component_of(path) else None


class LogStore(abc.ABC):
    """Append-only log files, listed per cluster, read by range. Implementations are safe to
    use from several threads; every method is blocking (adapters run them off their loop)."""

    @abc.abstractmethod
    def size(self, key: LogKey) -> int:
        """The stored size in bytes; 0 when the file does not exist."""

    @abc.abstractmethod
    def append(self, key: LogKey, data: bytes, *, offset: int) -> int:
        """Append ``data`` if the file now has exactly ``offset`` bytes (a missing file has 0 and
        is created); return the new size. ``OffsetMismatch`` otherwise, nothing written."""

    @abc.abstractmethod
    def files(
        self, tenant: str, cluster: str, *, node: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[LogFile]:
        """The cluster's files (only ``node``'s when given) in the order of their relative names
        (``LogFile.rel``: ``<node>/<component>/<path>``, compared as strings), only those named
        after ``after``, at most ``limit`` of them."""

    @abc.abstractmethod
    def read(self, key: LogKey, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes ``[offset, offset + length)`` (to the end when ``length`` is None), cut at the
        end of the file; empty past it. ``FileNotFoundError`` when the file does not exist."""

    @abc.abstractmethod
    def purge(self, older_than: datetime, *, tenant: str | None = None, skip: frozenset[str] = frozenset()) -> int:
        """Delete the files last written before ``older_than``: of ``tenant`` only when given,
        else of every tenant not in ``skip``; how many."""

    def exists(self, key: LogKey) -> bool:
        return any(f.path == key.path for f in self.files(key.tenant, key.cluster, node=key.node))

    def tail(self, key: LogKey, lines: int) -> bytes:
        """The last ``lines`` lines (a final line without a newline counts as one); reads
        backwards in steps, never the whole file."""
        size = self.size(key)
        if size == 0 or lines <= 0:
            self.read(key, 0, 0)  # FileNotFoundError for a missing file
            return b""
        start, data = size, b""
        while start > 0 and data.count(b"\n") <= lines:
            step = min(TAIL_STEP, start)
            start -= step
            data = self.read(key, start, step) + data
        ends = data.endswith(b"\n")
        kept = (data[:-1] if ends else data).split(b"\n")[-lines:]
        return b"\n".join(kept) + (b"\n" if ends else b"")

    def search(self, key: LogKey, needle: str, *, limit: int = 1000) -> list[SearchHit]:
        """Lines containing ``needle`` (case-sensitive), with their 1-based numbers; at most
        ``limit``. Reads the file in chunks, never whole into memory."""
        hits: list[SearchHit] = []
        wanted = needle.encode()
        for number, line in enumerate(self._lines(key), start=1):
            if wanted in line:
                hits.append(SearchHit(number, line.decode(errors="replace")))
                if len(hits) >= limit:
                    break
        return hits

    def _lines(self, key: LogKey) -> Iterator[bytes]:
        offset, rest = 0, b""
        size = self.size(key)
        self.read(key, 0, 0)
        while offset < size:
            chunk = self.read(key, offset, SEARCH_CHUNK)
            if not chunk:
                break
            offset += len(chunk)
            *whole, rest = (rest + chunk).split(b"\n")
            yield from whole
        if rest:
            yield rest


def azurite_connection_string(port: int, host: str = "127.0.0.1") -> str:
    """The connection string of an Azurite blob service with the well-known dev account."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};"
    )


def open_store(url: str, container: str) -> LogStore:
    """A store from ``RAYPLANE_LOG_STORE_URL``: an Azure Storage connection string (one with
    ``BlobEndpoint=`` or ``AccountName=``), or a directory (``file:///path`` or a plain path)."""
    if "BlobEndpoint=" in url or "AccountName=" in url:
        from rayplane.logstore.blob import BlobLogStore

        return BlobLogStore(url, container)
    from rayplane.logstore.directory import DirectoryLogStore

    path = url.removeprefix("file://")
    return DirectoryLogStore(path, container)
