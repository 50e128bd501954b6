"""The Azure side of a cluster's durable logs, for :class:`~.provider.AzureProvider`: the cloud's
log sink (:mod:`.logsink`) and the cluster's workload identity (:mod:`.workload`), made before
the RayCluster whose shipper sidecars use them, and the identity removed on teardown.

**State.** The sink is confirmed once per cloud and region in this process (the cloud handle
caches it; a restarted worker confirms it again with GETs only). What a cluster got is recorded
in its persisted provider state under ``logs`` (account, container, blob URL, identity name and
client id), which is what the read side (:func:`read_target`) and the teardown use, so a
cluster deleted after a deployment change is still cleaned up with the names it was made with.

A cloud whose config says ``"durable_logs": false`` gets none of this (and its clusters no
sidecar): for subscriptions where Rayplane may not create role assignments. A cloud whose config
names ``log_storage_account_id`` uses that account (the tenant's) instead of one Rayplane makes;
if its lifecycle rule cannot be written the pass goes on and the cluster gets a warning event
(once per worker process and cloud, when the sink is confirmed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rayplane.providers.azure import manifests
from rayplane.providers.azure.logsink import LogSink, Storage
from rayplane.providers.azure.monitors import cluster_label, monitors, with_cluster_label
from rayplane.providers.azure.shipper import objects, with_service_shipper, with_shipper
from rayplane.providers.azure.workload import ShipperIdentity, WorkloadIdentities
from rayplane.providers.base import ClusterTarget, ProviderEvent, TerminalError

if TYPE_CHECKING:
    from rayplane.providers.azure.provider import CloudHandle
    from rayplane.settings import Settings


@dataclass(frozen=True)
class ClusterLogs:
    """What one cluster's pods need to ship logs, and where they land."""

    sink: LogSink
    identity: ShipperIdentity
    tenant: str
    cluster: str

    def as_state(self) -> dict[str, str]:
        return {
            "account": self.sink.account,
            "container": self.sink.container,
            "blob_url": self.sink.blob_url,
            "account_id": self.sink.account_id,
            "identity": self.identity.name,
            "client_id": self.identity.client_id,
            "tenant_id": self.identity.tenant_id,
        }


def enabled(config: dict[str, Any]) -> bool:
    return config.get("durable_logs", True) is not False


def _clients(settings: Settings, h: CloudHandle, config: dict[str, Any]) -> tuple[Storage, WorkloadIdentities]:
    if h.storage is None or h.identities is None:
        ca = str(settings.ca_bundle) if settings.ca_bundle else None
        credential = h.aks.client._config.credential  # the AKS calls' own credential
        h.storage = Storage(credential, config["subscription_id"], arm_url=settings.azure_arm_url, ca_bundle=ca)
        h.identities = WorkloadIdentities(
            credential, config["subscription_id"], arm_url=settings.azure_arm_url, ca_bundle=ca
        )
    return h.storage, h.identities


def _issuer(h: CloudHandle) -> str:
    found = h.aks.get_cluster(h.resource_group, h.cluster) or {}
    oidc = (found.get("properties") or {}).get("oidcIssuerProfile") or {}
    url = oidc.get("issuerURL") or oidc.get("issuer_url")
    if not url:
        raise TerminalError(
            f"AKS cluster {h.cluster} has no OIDC issuer, so its pods cannot use workload identity to write "
            f"logs: run `az aks update -g {h.resource_group} -n {h.cluster} --enable-oidc-issuer "
            "--enable-workload-identity`, or turn durable_logs off on the cloud",
            code="OidcIssuerDisabled",
        )
    return str(url)


def ensure(
    settings: Settings, h: CloudHandle, target: ClusterTarget, namespace: str, state: dict[str, Any]
) -> ClusterLogs | None:
    """The cluster's sink and identity, made as needed; None while the storage account is being
    created (the caller applies nothing this pass). Records ``state["logs"]``."""
    config = target.cloud_config
    storage, identities = _clients(settings, h, config)
    retention = target.log_retention_days or settings.log_retention_days
    if h.log_sink is None or h.log_sink[1] != retention:
        named = config.get("log_storage_account_id")
        if named:
            sink, warning = storage.ensure_named(named, retention)
            if warning:
                # The provider's per-call events (``provider._EVENTS``), recorded on the cluster.
                state.setdefault("_events", []).append(ProviderEvent("logs", warning, "LifecyclePolicyNotWritten"))
        else:
            made = storage.ensure(h.resource_group, config["region"], retention)
            if made is None:
                return None
            sink = made
        h.log_sink = (sink, retention, _issuer(h))
    sink, _, issuer = h.log_sink
    recorded = state.get("logs") or {}
    if recorded.get("account_id") == sink.account_id and recorded.get("issuer") == issuer:
        # Made by an earlier pass of this cluster: nothing to ask ARM again.
        identity = ShipperIdentity(recorded["identity"], recorded["client_id"], "", recorded["tenant_id"])
    else:
        identity = identities.ensure(h.resource_group, config["region"], namespace, issuer, sink.container_id)
    logs = ClusterLogs(sink, identity, target.tenant_id or "default", target.cluster_id)
    state["logs"] = {**logs.as_state(), "issuer": issuer}
    return logs


def ship(
    settings: Settings,
    h: CloudHandle,
    target: ClusterTarget,
    namespace: str,
    state: dict[str, Any],
    raycluster: dict[str, Any],
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """``raycluster`` with the shipper sidecar in every pod and the objects to apply before it
    (service account, shipper config, and the PodMonitor where managed Prometheus reads it);
    unchanged when the cloud opted out of durable logs; None while the storage account is being
    created."""
    metrics = monitors(h.kube, namespace, raycluster["metadata"]["name"])
    if not enabled(target.cloud_config):
        return raycluster, metrics
    logs = ensure(settings, h, target, namespace, state)
    if logs is None:
        return None
    return with_shipper(raycluster, settings.azure_log_shipper_image), [*objects(logs, namespace), *metrics]


def ship_service(
    settings: Settings, h: CloudHandle, target: ClusterTarget, namespace: str, state: dict[str, Any]
) -> tuple[Callable[[dict[str, Any]], dict[str, Any]], list[dict[str, Any]]] | None:
    """For a RayService: a function labelling its pod templates with the cluster's id (what
    its PodMonitor selects: KubeRay names the service's RayClusters itself) and adding the
    shipper to its ``rayClusterConfig``, and the objects to apply before it (the PodMonitor
    where managed Prometheus reads it); None while the storage account is being created."""
    label = cluster_label(target.cluster_id)
    metrics = monitors(h.kube, namespace, manifests.resource_name(target)[1], label)
    if not enabled(target.cloud_config):
        return (lambda manifest: with_cluster_label(manifest, label)), metrics
    logs = ensure(settings, h, target, namespace, state)
    if logs is None:
        return None
    image = settings.azure_log_shipper_image
    return (
        (lambda manifest: with_service_shipper(with_cluster_label(manifest, label), image)),
        [*objects(logs, namespace), *metrics],
    )


def remove(settings: Settings, h: CloudHandle, namespace: str, state: dict[str, Any]) -> None:
    """Revoke and delete the cluster's identity; the logs stay for their retention."""
    recorded = state.get("logs")
    if not recorded:
        return
    _, identities = _clients(settings, h, {"subscription_id": h.aks.client._config.subscription_id})
    scope = f"{recorded['account_id']}/blobServices/default/containers/{recorded['container']}"
    identities.remove(h.resource_group, namespace, scope if recorded.get("account_id") else None)
