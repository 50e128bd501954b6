"""Where Rayplane scrapes an AKS cluster's Ray nodes for its own charts: each running Ray pod's
metrics export port through the API server's pod proxy.

Rayplane's charts of an Azure cluster come from its own bounded scrape (``rayplane.metrics``),
not from the customer's Azure Monitor workspace (which the PodMonitor of :mod:`.monitors` feeds
for their own Grafana and alerts): reading that back needs a workspace and a data collection
rule that many customers lack. The pod proxy is
``{server}/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy/metrics`` with the kubeconfig's bearer
token and the API server's CA (as ``AzureProvider.jobs_auth`` for the service proxy). The port
is a number: the API server's ``ResourceLocation`` for pods dials ``podIP:port`` as given and
does not resolve a named port, so it is read from the Ray container's ``metrics`` port.

**Cost.** The provider state holds no pod names (pods come and go with the autoscaler, and
``observe`` does not write state), so each scrape lists the cluster's pods once: one GET of
``/api/v1/namespaces/{ns}/pods`` per cluster, then one GET per running Ray pod, all through
the API server, every scrape interval.

**Which pods.** A RayCluster's by ``ray.io/cluster=<name>``; a service's (a KubeRay
RayService, whose clusters KubeRay names itself) every Ray pod of its namespace
(``ray.io/is-ray-node=yes``): the namespace is the service's alone, so the active and a
pending version's pods are both scraped during a rollout, as on the local provider. Only
Running pods with an IP: a Pending pod has nothing to answer (the proxy would refuse it).

Races: the list is a moment's view; a pod deleted after it is one unanswered GET, which the
scraper leaves out of that scrape. The scraper calls this from several threads at once: they
share the cloud's cached ``Kube`` (``AzureProvider._kube`` fetches a kubeconfig under the
handle's lock, once per cloud); a kubeconfig refreshed while another thread still uses the old
client may cost that cluster one scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rayplane.providers.base import MetricsTarget

if TYPE_CHECKING:
    from rayplane.providers.azure.kube import Kube

METRICS_PORT = 8080  # Ray's metrics export port in Rayplane's pod templates (named "metrics")
METRICS_PORT_NAME = "metrics"
HEAD_GROUP = "head"


def metrics_port(pod: Mapping[str, Any]) -> int:
    """The ``metrics`` container port of the pod's Ray container (its first), else 8080."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for port in containers[0].get("ports") or []:
        if port.get("name") == METRICS_PORT_NAME and port.get("containerPort"):
            return int(port["containerPort"])
    return METRICS_PORT


def pod_proxy_url(server: str, namespace: str, pod: str, port: int, path: str = "metrics") -> str:
    return f"{server}/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/{path}"


def selector(state: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, label selector) of the Ray pods of a cluster's or a service's state; None
    when nothing runs (never applied, stopped, suspended)."""
    namespace = state.get("namespace")
    if not namespace:
        return None
    if "versions" in state and "clusters" in state:  # a service (``services.AzureServiceRunner``)
        return None if state.get("stopped") or not state.get("cloud") else (str(namespace), "ray.io/is-ray-node=yes")
    if not state.get("applied") or state.get("suspended") or not state.get("name"):
        return None
    return str(namespace), f"ray.io/cluster={state['name']}"


def targets(
    pods: list[dict[str, Any]], namespace: str, server: str, headers: Mapping[str, str], verify: str | bool
) -> tuple[MetricsTarget, ...]:
    """One target per Running Ray pod with an IP, grouped as ``observe`` groups them."""
    found = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        if status.get("phase") != "Running" or not status.get("podIP"):
            continue
        labels = meta.get("labels") or {}
        group = HEAD_GROUP if labels.get("ray.io/node-type") == "head" else str(labels.get("ray.io/group", ""))
        url = pod_proxy_url(server, namespace, str(meta["name"]), metrics_port(pod))
        found.append(MetricsTarget(str(meta["name"]), group, url, dict(headers), verify))
    return tuple(found)


class PodMetrics:
    """``metrics_targets`` of :class:`~.provider.AzureProvider` (kept here: that module is full)."""

    def kube_for(self, cloud_config: dict[str, Any]) -> Kube:
        raise NotImplementedError  # AzureProvider's

    def metrics_targets(
        self, state: dict[str, Any], cloud_config: Mapping[str, Any] | None = None
    ) -> tuple[MetricsTarget, ...]:
        """The running Ray pods of the cluster or service, through the pod proxy (one pod list
        per call; a kubeconfig from ARM when this process has none cached). Raises the
        provider's errors when the API server cannot be reached."""
        found = selector(state)
        if found is None:
            return ()
        config = dict(state.get("cloud") or cloud_config or {})
        if not config:
            return ()
        kube = self.kube_for(config)
        namespace, labels = found
        pods = kube.pods(namespace, labels)
        return targets(pods, namespace, kube.server, {"Authorization": f"Bearer {kube.token}"}, kube.ca_file or True)
