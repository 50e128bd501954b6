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
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rayplane.providers.azure.kube import Kube

GROUP_VERSION = "azmonitoring.coreos.com/v1"
CRD = "podmonitors.azmonitoring.coreos.com"
PORT = "metrics"
# Where the CRD is missing: look again after this long (the addon may be enabled later).
MISSING_SECONDS = 600.0
_missing: dict[str, float] = {}


def pod_monitor(namespace: str, cluster: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "PodMonitor",
        "metadata": {"name": f"{cluster}-ray", "namespace": namespace, "labels": {"rayplane.io/managed": "true"}},
        "spec": {
            "labelLimit": 63,
            "labelNameLengthLimit": 511,
            "labelValueLengthLimit": 1023,
            "selector": {"matchLabels": {"ray.io/cluster": cluster}},
            "podTargetLabels": ["ray.io/node-type", "ray.io/group", "ray.io/cluster"],
            "podMetricsEndpoints": [{"port": PORT, "path": "/metrics", "interval": "30s"}],
        },
    }


def monitors(kube: Kube | None, namespace: str, cluster: str) -> list[dict[str, Any]]:
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
    return [pod_monitor(namespace, cluster)]
