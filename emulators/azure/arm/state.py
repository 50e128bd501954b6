"""Where ARM resources live: documents in the emulator's store, keyed by lower-cased ARM id.

Kinds (all JSON documents in ``DIR/state.db``, so everything survives a restart):

* ``arm.cluster`` -- key :func:`emulators.azure.fleet.cluster_key`; ``{"subscription",
  "resourceGroup", "name", "body", "operation"}``. ``body`` is the ARM JSON without
  ``agentPoolProfiles``; ``operation`` the id of the LRO in progress on it, or None.
* ``arm.pool`` -- key ``<cluster key>/agentpools/<pool>``; ``{"cluster", "name", "body",
  "operation"}``.
* ``arm.op`` -- key operation id; see :mod:`emulators.azure.arm.operations`.
* ``arm.op.active`` -- key operation id, ``{"due": seconds}``: the operations still InProgress,
  so settling them does not scan finished ones.
* ``arm.kubecreds`` -- key ``<cluster key>#<role>``, ``{"token"}``; and ``kube.token`` -- key
  the token, ``{"cluster", "role"}``, which the Kubernetes surface reads to authenticate.

ARM ids are case-insensitive, so keys are lower-cased while bodies keep the caller's casing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulators.azure.fleet import cluster_key
from emulators.azure.store import DocumentStore

CLUSTER = "arm.cluster"
POOL = "arm.pool"
OP = "arm.op"
ACTIVE = "arm.op.active"
KUBECREDS = "arm.kubecreds"
KUBE_TOKEN = "kube.token"


def pool_key(cluster: str, pool: str) -> str:
    return f"{cluster}/agentpools/{pool.lower()}"


def resource_group_prefix(subscription: str, resource_group: str) -> str:
    """Key prefix of every cluster in a resource group."""
    return (
        f"/subscriptions/{subscription}/resourcegroups/{resource_group}"
        "/providers/microsoft.containerservice/managedclusters/"
    ).lower()


def subscription_prefix(subscription: str) -> str:
    return f"/subscriptions/{subscription}/resourcegroups/".lower()


@dataclass
class ClusterDoc:
    key: str
    subscription: str
    resource_group: str
    name: str
    body: dict[str, Any]
    operation: str | None = None

    @property
    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body["properties"]
        return props

    @property
    def location(self) -> str:
        return str(self.body.get("location", ""))


@dataclass
class PoolDoc:
    key: str
    cluster: str
    name: str
    body: dict[str, Any]
    operation: str | None = None

    @property
    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = self.body["properties"]
        return props


class ArmStore:
    """Typed get/put/delete/scan of the documents above."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    # clusters
    def cluster(self, subscription: str, resource_group: str, name: str) -> ClusterDoc | None:
        return self.cluster_by_key(cluster_key(subscription, resource_group, name))

    def cluster_by_key(self, key: str) -> ClusterDoc | None:
        doc = self.store.get(CLUSTER, key)
        if doc is None:
            return None
        return ClusterDoc(key, doc["subscription"], doc["resourceGroup"], doc["name"], doc["body"], doc["operation"])

    def save_cluster(self, doc: ClusterDoc) -> None:
        body = {
            "subscription": doc.subscription,
            "resourceGroup": doc.resource_group,
            "name": doc.name,
            "body": doc.body,
            "operation": doc.operation,
        }
        self.store.put(CLUSTER, doc.key, body)

    def clusters(self, prefix: str) -> list[ClusterDoc]:
        found = []
        for key, doc in self.store.scan(CLUSTER, prefix):
            found.append(
                ClusterDoc(key, doc["subscription"], doc["resourceGroup"], doc["name"], doc["body"], doc["operation"])
            )
        return found

    def delete_cluster(self, key: str) -> None:
        self.store.delete(CLUSTER, key)

    # pools
    def pool(self, cluster: str, name: str) -> PoolDoc | None:
        key = pool_key(cluster, name)
        doc = self.store.get(POOL, key)
        return None if doc is None else PoolDoc(key, doc["cluster"], doc["name"], doc["body"], doc["operation"])

    def pools(self, cluster: str) -> list[PoolDoc]:
        return [
            PoolDoc(key, doc["cluster"], doc["name"], doc["body"], doc["operation"])
            for key, doc in self.store.scan(POOL, f"{cluster}/agentpools/")
        ]

    def pools_in_subscription(self, subscription: str) -> list[PoolDoc]:
        return [
            PoolDoc(key, doc["cluster"], doc["name"], doc["body"], doc["operation"])
            for key, doc in self.store.scan(POOL, subscription_prefix(subscription))
        ]

    def save_pool(self, doc: PoolDoc) -> None:
        body = {"cluster": doc.cluster, "name": doc.name, "body": doc.body, "operation": doc.operation}
        self.store.put(POOL, doc.key, body)

    def delete_pool(self, key: str) -> None:
        self.store.delete(POOL, key)

    # operations
    def operation(self, op_id: str) -> dict[str, Any] | None:
        return self.store.get(OP, op_id)

    def save_operation(self, op: dict[str, Any]) -> None:
        self.store.put(OP, op["name"], op)
        if op["status"] == "InProgress":
            self.store.put(ACTIVE, op["name"], {"due": op["due"]})
        else:
            self.store.delete(ACTIVE, op["name"])

    def active_operations(self) -> list[tuple[str, float]]:
        return [(key, float(doc["due"])) for key, doc in self.store.scan(ACTIVE)]

    # everything
    def wipe(self) -> list[str]:
        """Delete every ARM document (and kube tokens); the keys of the clusters that existed."""
        clusters = [key for key, _ in self.store.scan(CLUSTER)]
        for kind in (CLUSTER, POOL, OP, ACTIVE, KUBECREDS, KUBE_TOKEN):
            for key, _ in list(self.store.scan(kind)):
                self.store.delete(kind, key)
        return clusters
