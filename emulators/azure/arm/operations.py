"""Long-running operations (LROs) of the ARM surface, settled lazily by the wall clock.

An operation is a document (kind ``arm.op``, key its id)::

    {"name", "subscription", "location", "kind": "cluster"|"pool", "action": "create"|"update"|"delete",
     "cluster": <cluster key>, "resource": <resource key>, "resourceId": <ARM id>,
     "status": "InProgress"|"Succeeded"|"Failed"|"Canceled", "start", "due", "startTime", "endTime",
     "error": {"code", "message"} | None, "fail": <injected error> | None}

It is ``InProgress`` until ``due`` (start + ``operation_seconds``), then ends ``Succeeded`` or,
when a fail-next rule matched at its start, ``Failed`` with that error. Nothing runs in the
background: every ARM request first calls :meth:`Operations.settle_due`, which finishes the
operations whose time has come and applies their effect (resource state, the simulated fleet,
and for a deleted cluster the ``cluster_deleted`` callbacks). Because ``due`` is wall-clock
time stored with the operation, an emulator restarted mid-operation settles it just the same.

The status document a poller reads (``Azure-AsyncOperation``) is :func:`status_document`:
``{"id", "name", "status", "startTime"[, "endTime"][, "error"]}``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from emulators.azure.arm import skus
from emulators.azure.arm.admin import AdminState
from emulators.azure.arm.kubeconfig import drop_tokens
from emulators.azure.arm.state import ArmStore, ClusterDoc, PoolDoc
from emulators.azure.fleet import Fleet, PoolSpec

log = logging.getLogger(__name__)

#: provisioningState a resource shows while an operation of each action runs on it (``stop`` and
#: ``start`` act on a cluster and all its pools, ``nodeimage`` on one pool).
TRANSIENT_STATE = {
    "create": "Creating",
    "update": "Updating",
    "scale": "Scaling",
    "delete": "Deleting",
    "stop": "Stopping",
    "start": "Starting",
    "nodeimage": "UpgradingNodeImageVersion",
}


def iso(seconds: float) -> str:
    """RFC 3339 UTC with a ``Z``, as ARM writes times."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def status_document(op: dict[str, Any]) -> dict[str, Any]:
    """What ``GET .../locations/{loc}/operations/{id}`` answers for ``op``."""
    doc: dict[str, Any] = {
        "id": f"/subscriptions/{op['subscription']}/providers/Microsoft.ContainerService/locations/"
        f"{op['location']}/operations/{op['name']}",
        "name": op["name"],
        "status": op["status"],
        "startTime": op["startTime"],
    }
    if op.get("endTime"):
        doc["endTime"] = op["endTime"]
    if op.get("error"):
        doc["error"] = {**op["error"], "details": op["error"].get("details", [])}
    return doc


def pool_spec(name: str, props: dict[str, Any], cluster: dict[str, Any] | None = None) -> PoolSpec:
    """The fleet's view of a pool with these (validated) properties, in the managed cluster
    whose stored body is ``cluster`` (for the nodes' region and resource-group labels)."""
    cluster_props = (cluster or {}).get("properties") or {}
    size = skus.get(str(props["vmSize"]))
    assert size is not None, "validated before the operation started"
    autoscale = bool(props.get("enableAutoScaling"))
    return PoolSpec(
        name=name,
        vm_size=size.name,
        vcpus=size.vcpus,
        memory_gib=size.memory_gib,
        gpus=size.gpus,
        mode=str(props.get("mode", "User")),
        spot=props.get("scaleSetPriority") == "Spot",
        autoscale=autoscale,
        count=int(props.get("count") or 0),
        min_count=int(props.get("minCount") or 0) if autoscale else 0,
        max_count=int(props.get("maxCount") or 0) if autoscale else 0,
        labels=dict(props.get("nodeLabels") or {}),
        taints=list(props.get("nodeTaints") or []),
        max_pods=int(props.get("maxPods") or 110),
        region=str((cluster or {}).get("location", "")).lower().replace(" ", ""),
        node_resource_group=str(cluster_props.get("nodeResourceGroup", "")),
        kubernetes_version=str(props.get("currentOrchestratorVersion", "")),
        node_image_version=str(props.get("nodeImageVersion", "")),
        os_sku=str(props.get("osSKU") or "Ubuntu"),
        monitoring=any(
            k.lower() == "omsagent" and isinstance(v, dict) and bool(v.get("enabled"))
            for k, v in (cluster_props.get("addonProfiles") or {}).items()
        ),
        gpu_managed=str(((props.get("gpuProfile") or {}).get("nvidia") or {}).get("managementMode", "")).lower()
        == "managed",
    )


class Operations:
    """Starts, settles and cancels operations, and applies their effects."""

    def __init__(
        self,
        docs: ArmStore,
        fleet: Fleet,
        admin: AdminState,
        cluster_deleted: list[Callable[[str], None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.docs = docs
        self.fleet = fleet
        self.admin = admin
        self.cluster_deleted = cluster_deleted
        self.clock = clock

    def start(
        self,
        *,
        kind: str,
        action: str,
        cluster: ClusterDoc,
        resource_key: str,
        resource_id: str,
        subjects: list[str],
        target: str | None = None,
    ) -> dict[str, Any]:
        """A new InProgress operation (persisted); a fail-next rule matching ``subjects`` dooms it.
        ``target`` is what a ``nodeimage`` operation upgrades the pool to."""
        now = self.clock()
        op: dict[str, Any] = {
            "name": str(uuid.uuid4()),
            "subscription": cluster.subscription,
            "location": cluster.location.lower().replace(" ", "") or "global",
            "kind": kind,
            "action": action,
            "cluster": cluster.key,
            "resource": resource_key,
            "resourceId": resource_id,
            "status": "InProgress",
            "start": now,
            "due": now + self.admin.config.operation_seconds,
            "startTime": iso(now),
            "endTime": None,
            "error": None,
            "fail": self.admin.take_failure(resource_id, *subjects),
            "target": target,
        }
        self.docs.save_operation(op)
        return op

    def settle_due(self) -> None:
        """Finish every operation whose time has come (call before serving any ARM request)."""
        now = self.clock()
        for op_id, due in sorted(self.docs.active_operations(), key=lambda item: item[1]):
            if due <= now:
                self.settle(op_id)

    def settle(self, op_id: str) -> dict[str, Any] | None:
        """The operation, finished first if it is due; None if unknown."""
        op = self.docs.operation(op_id)
        if op is not None and op["status"] == "InProgress" and op["due"] <= self.clock():
            self._finish(op)
        return op

    def cancel(self, op_id: str, by: str) -> None:
        """End an InProgress operation ``Canceled`` because operation ``by`` overrode it (a delete)."""
        op = self.docs.operation(op_id)
        if op is None or op["status"] != "InProgress":
            return
        op["status"] = "Canceled"
        op["endTime"] = iso(self.clock())
        op["error"] = {
            "code": "OperationCanceled",
            "message": f"The operation was overriden and canceled by a later operation {by}.",
        }
        self.docs.save_operation(op)

    # -- effects -------------------------------------------------------------------------
    def _finish(self, op: dict[str, Any]) -> None:
        failure = op.get("fail")
        op["status"] = "Failed" if failure else "Succeeded"
        op["endTime"] = iso(op["due"])
        op["error"] = failure
        # Persist the outcome before applying it: a crash in between leaves a finished
        # operation whose resource still shows the transient state, never the reverse.
        self.docs.save_operation(op)
        cluster = self.docs.cluster_by_key(op["cluster"])
        if cluster is None:
            return
        if op["action"] == "delete" and not failure:
            if op["kind"] == "cluster":
                self._delete_cluster(cluster)
            else:
                self._delete_pool(cluster, op)
            return
        state = "Failed" if failure else "Succeeded"
        power = {"stop": "Stopped", "start": "Running"}.get(op["action"]) if not failure else None
        if op["kind"] == "cluster" and cluster.operation == op["name"]:
            cluster.properties["provisioningState"] = state
            if not failure:
                version = str(cluster.properties.get("currentKubernetesVersion") or "")
                if version:
                    self.fleet.set_control_plane_version(cluster.key, version)
            if power:
                cluster.properties["powerState"] = {"code": power}
            cluster.operation = None
            self.docs.save_cluster(cluster)
        for pool in self.docs.pools(cluster.key):
            if pool.operation == op["name"]:
                if power:
                    pool.properties["powerState"] = {"code": power}
                if op["action"] == "nodeimage" and op.get("target") and not failure:
                    pool.properties["nodeImageVersion"] = op["target"]
                self._settle_pool(cluster, pool, state, apply=not failure, stopped=power == "Stopped")

    def _settle_pool(self, cluster: ClusterDoc, pool: PoolDoc, state: str, *, apply: bool, stopped: bool) -> None:
        """End the pool's operation; the fleet follows: a stopped cluster's VMs are deallocated
        (its pools keep their count and come back on start), as AKS's stop does."""
        pool.properties["provisioningState"] = state
        pool.operation = None
        self.docs.save_pool(pool)
        if stopped:
            self.fleet.delete_pool(cluster.key, pool.name)
        elif apply and (pool.properties.get("powerState") or {}).get("code", "Running") == "Running":
            self.fleet.upsert_pool(cluster.key, pool_spec(pool.name, pool.properties, cluster.body))

    def _delete_pool(self, cluster: ClusterDoc, op: dict[str, Any]) -> None:
        for pool in self.docs.pools(cluster.key):
            if pool.key == op["resource"]:
                self.docs.delete_pool(pool.key)
                self.fleet.delete_pool(cluster.key, pool.name)

    def _delete_cluster(self, cluster: ClusterDoc) -> None:
        for pool in self.docs.pools(cluster.key):
            self.docs.delete_pool(pool.key)
        self.docs.delete_cluster(cluster.key)
        self.forget_cluster(cluster.key)

    def forget_cluster(self, key: str) -> None:
        """Everything outside the ARM documents that a deleted cluster leaves behind."""
        self.fleet.delete_cluster(key)
        drop_tokens(self.docs.store, key)
        for callback in list(self.cluster_deleted):
            try:
                callback(key)
            except Exception:  # one surface's failure must not undo ARM's delete
                log.exception("cluster_deleted callback %r failed for %s", callback, key)
