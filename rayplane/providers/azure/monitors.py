"""Ray's metrics on AKS: a ``PodMonitor`` per cluster for Azure Monitor managed Prometheus.

The managed Prometheus addon reads PodMonitors of the group ``azmonitoring.coreos.com/v1``, not
the Prometheus Operator's ``monitoring.coreos.com/v1`` (Microsoft's "Customize collection using
CRDs" page: the same schema, another group, so the two never pick up each other's objects), and
installs that CRD when ``azureMonitorProfile.metrics.enabled`` is set on the cluster. So the
PodMonitor is written only where the CRD exists; elsewhere nothing scrapes it and applying it
would fail. One monitor selects every pod of the cluster (``ray.io/cluster``) and scrapes the
``metrics`` port each Ray container exposes (8080, Ray's metrics export port), labelled by node
type and group. The label limits are the values Microsoft's template asks for, so no series is
dropped in processing.

A service's RayService has RayClusters that KubeRay names itself (``<name>-<random>``, a new one
per version), so ``ray.io/cluster`` cannot select them ahead of time: its pod templates carry
Rayplane's own label ``rayplane.io/cluster-id`` (:func:`with_cluster_label`, the value the
RayCluster's own metadata carries) and its monitor selects on that, every version's pods alike.

These PodMonitors feed the customer's Azure Monitor workspace (their Grafana, their alerts);
Rayplane's own charts come from its scrape through the pod proxy (:mod:`.scrape_targets`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayplane.providers.azure.kube import Kube

GROUP_VERSION = "azmonitoring.coreos.com/v1"
CRD = "podmonitors.azmonitoring.coreos.com"
PORT = "metrics"
CLUSTER_ID_LABEL = "rayplane.io/cluster-id"
# Where the CRD is missing: look again after this long (the addon may be enabled later).
MISSING_SECONDS = 600.0
_missing: dict[str, float] = {}


def cluster_label(cluster_id: str) -> dict[str, str]:
    """``{CLUSTER_ID_LABEL: <id as a label value>}``, as ``manifests.ray_cluster`` labels a RayCluster."""
    return {CLUSTER_ID_LABEL: cluster_id.lower().replace("_", "-")}


def with_cluster_label(service: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a RayService manifest whose head and worker pod templates carry ``labels``."""
    out = copy.deepcopy(service)
    spec = out["spec"]["rayClusterConfig"]
    for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
        meta = group["template"].setdefault("metadata", {})
        meta["labels"] = {**meta.get("labels", {}), **labels}
    return out


def labelled(service: Mapping[str, Any]) -> bool:
    """Whether a RayService manifest's head pod template carries ``CLUSTER_ID_LABEL``."""
    head = service["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    return CLUSTER_ID_LABEL in ((head.get("metadata") or {}).get("labels") or {})


def without_cluster_label(service: dict[str, Any]) -> dict[str, Any]:
    """A copy of a RayService manifest with ``CLUSTER_ID_LABEL`` off every pod template (what a
    version applied before the label keeps: see ``AzureServiceRunner.ensure``)."""
    out = copy.deepcopy(service)
    spec = out["spec"]["rayClusterConfig"]
    for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]:
        labels = (group["template"].get("metadata") or {}).get("labels")
        if labels:
            labels.pop(CLUSTER_ID_LABEL, None)
    return out


def pod_monitor(namespace: str, cluster: str, match_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The PodMonitor ``<cluster>-ray``; it selects ``ray.io/cluster: <cluster>`` unless told
    which labels to match (a service's ``cluster_label``)."""
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PodMonitor",
        "metadata": {"name": f"{cluster}-ray", "namespace": namespace, "labels": {"rayplane.io/managed": "true"}},
        "spec": {
            "labelLimit": 63,
            "labelNameLengthLimit": 511,
            "labelValueLengthLimit": 1023,
            "selector": {"matchLabels": dict(match_labels or {"ray.io/cluster": cluster})},
            "podTargetLabels": ["ray.io/node-type", "ray.io/group", "ray.io/cluster"],
            "podMetricsEndpoints": [{"port": PORT, "path": "/metrics", "interval": "30s"}],
        },
    }


def monitors(
    kube: Kube | None, namespace: str, cluster: str, match_labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The cluster's PodMonitor where managed Prometheus reads it, else none (the CRD's absence
    is remembered for ``MISSING_SECONDS`` per API server, so a pass costs no extra call)."""
    if kube is None:
        return []
    seen = _missing.get(kube.server)
    if seen is not None and time.monotonic() - seen < MISSING_SECONDS:
        return []
    if kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD) is None:
        _missing[kube.server] = time.monotonic()
        return []
    _missing.pop(kube.server, None)
    return [pod_monitor(namespace, cluster, match_labels)]
