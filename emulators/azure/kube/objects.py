"""Kubernetes objects of every emulated cluster: in memory, indexed, persisted in the DocumentStore.

Layout: ``cluster key -> resource key -> (namespace, name) -> object`` (cluster-scoped objects
use namespace ``""``). Each object is also a document of kind ``kube.object`` keyed
``cluster|resource|namespace|name``, and the global resourceVersion counter is the document
``kube.meta/resourceVersion``, so everything survives a restart.

Contracts:

* Stored objects are snapshots: :meth:`ObjectStore.get` and :meth:`ObjectStore.select` hand
  out the stored dicts themselves, which callers must not mutate; writers build a new dict
  (:func:`clone` of the old one, then change it) and :meth:`ObjectStore.put` it.
* :meth:`ObjectStore.put` stamps a new ``metadata.resourceVersion`` (one global counter, as
  etcd's revision; after a restart it resumes from the highest version a stored object
  carries or the value persisted on each delete) and notifies listeners; preconditions
  (stale resourceVersion, exists or not) are the caller's to check first. All calls happen
  on the event loop, so a check and the put that follows are atomic with respect to other
  requests. A delete also takes a new resourceVersion (the one a watcher's ``DELETED`` event
  carries); listeners run after the counter moved, in registration order.
* Deleting an object deletes its dependents (``metadata.ownerReferences``) that have no
  other live owner, recursively, as the garbage collector does in background propagation.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

from emulators.azure.store import DocumentStore

_KIND = "kube.object"
_META = "kube.meta"
_RV_KEY = "resourceVersion"
Obj = dict[str, Any]
# (resource key, namespace, name)
Ref = tuple[str, str, str]
Listener = Callable[[str, str, Obj | None, Obj | None], None]


def clone(value: Any) -> Any:
    """A deep copy of JSON data; several times faster than ``copy.deepcopy`` on big objects
    (a 1 MB CRD), which matters because every write copies."""
    return json.loads(json.dumps(value))


def now_iso(at: float | None = None) -> str:
    """RFC 3339 UTC with second precision, as ``metav1.Time`` serialises."""
    moment = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: Obj) -> dict[str, Any]:
    m: dict[str, Any] = obj.setdefault("metadata", {})
    return m


def owner_uids(obj: Obj) -> list[str]:
    return [str(r.get("uid")) for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid")]


class _Cluster:
    """One cluster's objects and indexes."""

    def __init__(self) -> None:
        self.by_type: dict[str, dict[tuple[str, str], Obj]] = {}
        self.by_uid: dict[str, Ref] = {}
        self.dependents: dict[str, set[Ref]] = {}

    def index(self, rkey: str, obj: Obj, old: Obj | None) -> None:
        m = obj["metadata"]
        ref = (rkey, m.get("namespace", ""), m["name"])
        if old is not None:
            for uid in owner_uids(old):
                self.dependents.get(uid, set()).discard(ref)
        if m.get("uid"):
            self.by_uid[m["uid"]] = ref
        for uid in owner_uids(obj):
            self.dependents.setdefault(uid, set()).add(ref)

    def unindex(self, rkey: str, obj: Obj) -> None:
        m = obj["metadata"]
        ref = (rkey, m.get("namespace", ""), m["name"])
        self.by_uid.pop(m.get("uid", ""), None)
        for uid in owner_uids(obj):
            deps = self.dependents.get(uid)
            if deps is not None:
                deps.discard(ref)
                if not deps:
                    del self.dependents[uid]


class ObjectStore:
    """Objects of every cluster; see the module docstring for the contracts."""

    def __init__(self, store: DocumentStore) -> None:
        self.docs = store
        self._clusters: dict[str, _Cluster] = {}
        self.listeners: list[Listener] = []
        counter = store.get(_META, _RV_KEY) or {}
        self._rv = int(counter.get("value", 0))
        for key, obj in store.scan(_KIND):
            cluster, rkey, _, _ = key.split("|", 3)
            c = self._cluster(cluster)
            m = obj["metadata"]
            c.by_type.setdefault(rkey, {})[(m.get("namespace", ""), m["name"])] = obj
            c.index(rkey, obj, None)
            self._rv = max(self._rv, int(m.get("resourceVersion", "0") or 0))

    # -- reads ---------------------------------------------------------------------------
    def clusters(self) -> list[str]:
        return list(self._clusters)

    def has_cluster(self, cluster: str) -> bool:
        return cluster in self._clusters

    def get(self, cluster: str, rkey: str, namespace: str, name: str) -> Obj | None:
        c = self._clusters.get(cluster)
        if c is None:
            return None
        return c.by_type.get(rkey, {}).get((namespace, name))

    def select(self, cluster: str, rkey: str, namespace: str | None = None) -> list[Obj]:
        """Objects of one type, sorted by (namespace, name); ``namespace=None`` means all."""
        c = self._clusters.get(cluster)
        if c is None:
            return []
        items = c.by_type.get(rkey, {})
        keys = sorted(k for k in items if namespace is None or k[0] == namespace)
        return [items[k] for k in keys]

    def iter_type(self, cluster: str, rkey: str) -> Iterator[Obj]:
        """Unsorted, cheaper than :meth:`select` for controllers."""
        c = self._clusters.get(cluster)
        if c is not None:
            yield from list(c.by_type.get(rkey, {}).values())

    def by_uid(self, cluster: str, uid: str) -> Obj | None:
        c = self._clusters.get(cluster)
        ref = None if c is None else c.by_uid.get(uid)
        return None if ref is None else self.get(cluster, *ref)

    def dependents(self, cluster: str, uid: str, rkey: str | None = None) -> list[Obj]:
        """Objects listing ``uid`` among their owners (optionally only of type ``rkey``)."""
        c = self._clusters.get(cluster)
        if c is None:
            return []
        out = []
        for ref in sorted(c.dependents.get(uid, ())):
            if rkey is None or ref[0] == rkey:
                obj = self.get(cluster, *ref)
                if obj is not None:
                    out.append(obj)
        return out

    @property
    def resource_version(self) -> str:
        """The latest resourceVersion handed out (a list's ``metadata.resourceVersion``)."""
        return str(self._rv)

    # -- writes --------------------------------------------------------------------------
    def put(self, cluster: str, rkey: str, obj: Obj) -> Obj:
        """Store ``obj`` (a fresh dict the caller no longer mutates) with a new resourceVersion."""
        m = obj["metadata"]
        namespace = m.get("namespace", "")
        c = self._cluster(cluster)
        old = c.by_type.setdefault(rkey, {}).get((namespace, m["name"]))
        self._rv += 1
        m["resourceVersion"] = str(self._rv)
        c.by_type[rkey][(namespace, m["name"])] = obj
        c.index(rkey, obj, old)
        # The object carries its resourceVersion, so the counter needs persisting only when
        # an object (perhaps the one holding the highest version) goes away: see delete().
        self.docs.put(_KIND, f"{cluster}|{rkey}|{namespace}|{m['name']}", obj)
        for listener in self.listeners:
            listener(cluster, rkey, old, obj)
        return obj

    def delete(self, cluster: str, rkey: str, namespace: str, name: str, *, cascade: bool = True) -> Obj | None:
        """Remove the object (and, with ``cascade``, its orphaned dependents); the removed object."""
        c = self._clusters.get(cluster)
        obj = None if c is None else c.by_type.get(rkey, {}).pop((namespace, name), None)
        if c is None or obj is None:
            return None
        c.unindex(rkey, obj)
        # A delete is a change of its own (watchers see it at this version), as in etcd.
        self._rv += 1
        self.docs.delete(_KIND, f"{cluster}|{rkey}|{namespace}|{name}")
        self.docs.put(_META, _RV_KEY, {"value": self._rv})
        for listener in self.listeners:
            listener(cluster, rkey, obj, None)
        uid = obj["metadata"].get("uid")
        if cascade and uid:
            for dep_ref in sorted(c.dependents.pop(uid, set())):
                dep = self.get(cluster, *dep_ref)
                if dep is None:
                    continue
                # The garbage collector keeps a dependent while any other owner still exists.
                if any(u != uid and u in c.by_uid for u in owner_uids(dep)):
                    continue
                self.delete(cluster, *dep_ref)
        return obj

    def drop_cluster(self, cluster: str) -> None:
        """Forget every object of ``cluster`` (its managed cluster was deleted)."""
        c = self._clusters.pop(cluster, None)
        if c is None:
            return
        for rkey, items in c.by_type.items():
            for namespace, name in items:
                self.docs.delete(_KIND, f"{cluster}|{rkey}|{namespace}|{name}")
        self.docs.put(_META, _RV_KEY, {"value": self._rv})
        for listener in self.listeners:
            listener(cluster, "", None, None)

    def _cluster(self, cluster: str) -> _Cluster:
        c = self._clusters.get(cluster)
        if c is None:
            c = self._clusters[cluster] = _Cluster()
        return c
