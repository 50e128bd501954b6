"""Watches: a change feed over :class:`ObjectStore` and the chunked event stream of ``?watch=1``.

Follows https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
and #watch-bookmarks:

* every write of the store (create, update, delete -- a delete takes a resourceVersion of its
  own, see :mod:`emulators.azure.kube.objects`) is appended to the cluster's feed with its
  resourceVersion, so a watch resumes from any version the feed still holds;
* a watch without ``resourceVersion`` (or with ``"0"``) starts with synthetic ``ADDED``
  events for every matching object, then streams changes; with a version it streams the
  changes after it. A version older than the feed holds (evicted, or from before a restart of
  the emulator) answers, as the API server's watch cache does, a ``200`` stream with one
  ``ERROR`` event whose object is a ``410 Expired`` Status (``too old resource version``);
  client-go and the Python client then list again;
* label/field selectors and the namespace are applied to both sides of a change: an object
  that stops matching is sent as ``DELETED``, one that starts matching as ``ADDED``;
* ``allowWatchBookmarks`` adds ``BOOKMARK`` events (the object's kind with only
  ``metadata.resourceVersion``) every :data:`BOOKMARK_SECONDS` and just before the
  ``timeoutSeconds`` end; ``sendInitialEvents=true`` ends the initial events with a bookmark
  annotated ``k8s.io/initial-events-end: "true"``;
* a watch ends at ``timeoutSeconds`` (1800 by default), when the client goes away, when its
  cluster is deleted, or when the server shuts down (:meth:`ChangeFeed.close`, called before
  the server waits for open connections).

Each cluster's feed keeps its last :data:`FEED_CAPACITY` changes, and all clusters together
at most :data:`FEED_TOTAL` (the oldest of all go first: a held change keeps the object's
previous version alive); a watcher that falls further behind gets the ``410`` error event.

Races: the store calls the feed's listener on the event loop, synchronously within the
write; a stream reads the feed and registers its wake-up event with no ``await`` in between,
so no change can slip between the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from emulators.azure.kube.objects import ObjectStore

Obj = dict[str, Any]
FEED_CAPACITY = 4096
FEED_TOTAL = 50_000
BOOKMARK_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class Change:
    """One write: ``old`` and ``new`` snapshots (``new`` None for a delete)."""

    rv: int
    rkey: str
    old: Obj | None
    new: Obj | None


class ChangeFeed:
    """Per-cluster ring buffers of :class:`Change`, fed by the store's listener."""

    def __init__(self, objects: ObjectStore, capacity: int = FEED_CAPACITY, total: int = FEED_TOTAL) -> None:
        self.objects = objects
        self.capacity = capacity
        self.total = total
        self._changes: dict[str, deque[Change]] = {}
        # Which cluster each held change belongs to, oldest first, so that the global bound
        # can evict the oldest change of all clusters.
        self._order: deque[str] = deque()
        # The oldest version a watch of the cluster may resume from (changes after it are held).
        self._floor: dict[str, int] = {}
        self._start = int(objects.resource_version)
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._drops: dict[str, int] = {}  # how many times each cluster was dropped
        self.closed = False
        # First, so the feed sees each write before any listener that writes in turn.
        objects.listeners.insert(0, self._on_change)

    def _on_change(self, cluster: str, rkey: str, old: Obj | None, new: Obj | None) -> None:
        if not rkey:  # the cluster was dropped: end its watches, forget its changes
            self._changes.pop(cluster, None)
            self._order = deque(c for c in self._order if c != cluster)
            self._floor[cluster] = int(self.objects.resource_version)
            self._drops[cluster] = self._drops.get(cluster, 0) + 1
            self._wake(cluster)
            return
        rv = int(new["metadata"]["resourceVersion"]) if new is not None else int(self.objects.resource_version)
        changes = self._changes.setdefault(cluster, deque())
        changes.append(Change(rv, rkey, old, new))
        self._order.append(cluster)
        if len(changes) > self.capacity:
            # (its entry in _order stays behind; evicting that one later finds a newer change
            # of the cluster or none, which only makes the global bound a little eager)
            self._floor[cluster] = changes.popleft().rv
        while len(self._order) > self.total:
            owner = self._order.popleft()
            held = self._changes.get(owner)
            if held:
                self._floor[owner] = held.popleft().rv
        self._wake(cluster)

    def _wake(self, cluster: str) -> None:
        for event in self._waiters.pop(cluster, set()):
            event.set()

    def drops(self, cluster: str) -> int:
        """A counter that moves when ``cluster`` is dropped (its watches end)."""
        return self._drops.get(cluster, 0)

    def floor(self, cluster: str) -> int:
        return self._floor.get(cluster, self._start)

    def since(self, cluster: str, rv: int) -> list[Change] | None:
        """Changes of ``cluster`` after ``rv``, oldest first; None when ``rv`` is too old."""
        if rv < self.floor(cluster):
            return None
        changes = self._changes.get(cluster)
        if not changes or changes[-1].rv <= rv:
            return []
        return [c for c in changes if c.rv > rv]

    async def wait(self, cluster: str, seconds: float) -> None:
        """Until the next change of ``cluster``, :meth:`close`, or ``seconds`` pass."""
        if self.closed or seconds <= 0:
            return
        event = asyncio.Event()
        self._waiters.setdefault(cluster, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), seconds)
        finally:
            waiting = self._waiters.get(cluster)
            if waiting is not None:
                waiting.discard(event)

    def close(self) -> None:
        """End every watch (server shutdown); later watches end at once."""
        self.closed = True
        for cluster in list(self._waiters):
            self._wake(cluster)


def expired(rv: int, floor: int) -> Obj:
    """The ``ERROR`` event of a watch from a version the feed no longer holds."""
    return {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"too old resource version: {rv} ({floor})",
            "reason": "Expired",
            "code": 410,
        },
    }


def classify(change: Change, match: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
    """The event a watcher with filter ``match`` sees for ``change`` (type, object), if any."""
    was = change.old is not None and match(change.old)
    now = change.new is not None and match(change.new)
    if now:
        assert change.new is not None
        return ("MODIFIED" if was else "ADDED"), change.new
    if was:
        assert change.old is not None
        gone = change.new if change.new is not None else change.old
        return "DELETED", {**gone, "metadata": {**gone["metadata"], "resourceVersion": str(change.rv)}}
    return None


@dataclass
class WatchSpec:
    """What one watch request asks: the type's storage key, a filter, where to start."""

    cluster: str
    rkey: str
    kind: str
    api_version: str
    match: Callable[[Obj], bool]
    resource_version: str | None
    timeout: float
    bookmarks: bool
    initial_end_bookmark: bool = False


async def object_events(
    feed: ChangeFeed, spec: WatchSpec, initial: Callable[[], list[Obj]]
) -> AsyncIterator[tuple[str, Obj]]:
    """(type, object) events of a stored type, ending as the module docstring says."""
    deadline = time.monotonic() + spec.timeout
    drops = feed.drops(spec.cluster)
    rv_text = spec.resource_version or "0"
    if rv_text == "0":
        rv = int(feed.objects.resource_version)
        for obj in initial():
            yield "ADDED", obj
        if spec.initial_end_bookmark:
            yield "BOOKMARK", _bookmark(spec, rv, initial_end=True)
    else:
        try:
            rv = int(rv_text)
        except ValueError:
            rv = -1
    next_bookmark = time.monotonic() + BOOKMARK_SECONDS
    while not feed.closed and feed.drops(spec.cluster) == drops:
        changes = feed.since(spec.cluster, rv)
        if changes is None:
            yield "ERROR", expired(rv, feed.floor(spec.cluster))["object"]
            return
        for change in changes:
            rv = change.rv
            if change.rkey != spec.rkey:
                continue
            event = classify(change, spec.match)
            if event is not None:
                yield event
        now = time.monotonic()
        if now >= deadline:
            if spec.bookmarks:
                yield "BOOKMARK", _bookmark(spec, max(rv, int(feed.objects.resource_version)))
            return
        if spec.bookmarks and now >= next_bookmark:
            next_bookmark = now + BOOKMARK_SECONDS
            yield "BOOKMARK", _bookmark(spec, max(rv, int(feed.objects.resource_version)))
        wait = min(deadline - now, next_bookmark - now) if spec.bookmarks else deadline - now
        await feed.wait(spec.cluster, max(0.0, wait))


def _bookmark(spec: WatchSpec, rv: int, *, initial_end: bool = False) -> Obj:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": spec.kind, "apiVersion": spec.api_version, "metadata": meta}


async def polled_events(
    feed: ChangeFeed, spec: WatchSpec, current: Callable[[], list[Obj]], signature: Callable[[Obj], Any]
) -> AsyncIterator[tuple[str, Obj]]:
    """Events of a type rendered from elsewhere (nodes, from the fleet): the objects are
    compared with what was last sent every second (and on any change of the cluster)."""
    deadline = time.monotonic() + spec.timeout
    seen: dict[str, tuple[Any, Obj]] = {}
    first = True
    drops = feed.drops(spec.cluster)
    while not feed.closed and feed.drops(spec.cluster) == drops:
        now_objects = {o["metadata"]["name"]: o for o in current() if spec.match(o)}
        if first and spec.resource_version not in (None, "", "0"):
            seen = {n: (signature(o), o) for n, o in now_objects.items()}
        for name, obj in sorted(now_objects.items()):
            sig = signature(obj)
            before = seen.get(name)
            if before is None or before[0] != sig:
                seen[name] = (sig, obj)
                yield ("ADDED" if before is None else "MODIFIED"), obj
        for name in sorted(set(seen) - set(now_objects)):
            yield "DELETED", seen.pop(name)[1]
        if first and spec.initial_end_bookmark:
            yield "BOOKMARK", _bookmark(spec, int(feed.objects.resource_version), initial_end=True)
        first = False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            if spec.bookmarks:
                yield "BOOKMARK", _bookmark(spec, int(feed.objects.resource_version))
            return
        await feed.wait(spec.cluster, min(1.0, remaining))
