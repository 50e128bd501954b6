"""The AKS api-versions this surface serves, and the shape of its answers at each.

:data:`API_VERSIONS` is every stable ``Microsoft.ContainerService`` (aks) api-version from
2025-10-01 to 2026-08-01: the folders ``aks/stable/<version>`` of the public
azure-rest-api-specs repository (2025-10-01, 2026-01-01 through 2026-08-01; there is no
2025-11-01 or 2025-12-01). azure-mgmt-containerservice 41.6.0, which azure-cli 2.91 ships,
sends 2026-06-01; 41.8.0 (Rayplane's) sends 2026-08-01.

Every request is answered in the shape of its api-version: a field the version does not have
(:data:`CLUSTER_FIELDS_SINCE`, :data:`POOL_FIELDS_SINCE`) is left out of the answer, though kept
in the stored resource, as ARM keeps what a newer client wrote when an older one reads it.
Fields older versions had and newer ones dropped would be the other half of this; between
2025-10-01 and 2026-08-01 there are none.
"""

from __future__ import annotations

from typing import Any

API_VERSIONS = (
    "2025-10-01",
    "2026-01-01",
    "2026-02-01",
    "2026-03-01",
    "2026-04-01",
    "2026-05-01",
    "2026-06-01",
    "2026-07-01",
    "2026-08-01",
)
LATEST = API_VERSIONS[-1]

#: Fields of a managed cluster's JSON that a version before the one named does not have, with
#: the version that added them. Made by comparing the models of azure-mgmt-containerservice
#: 40.2.0 (2025-10-01), 41.0.0, 41.1.0, 41.2.0, 41.3.0, 41.5.0, 41.6.0, 41.7.0 and 41.8.0
#: (2026-08-01), each generated from that api-version's specification; ``[]`` marks a list's
#: items. No field of 2025-10-01 was removed by 2026-08-01, so an older version only loses fields.
CLUSTER_FIELDS_SINCE: dict[str, str] = {
    "properties.agentPoolProfiles[].artifactStreamingProfile": "2026-03-01",
    "properties.agentPoolProfiles[].gpuProfile.nvidia": "2026-08-01",
    "properties.agentPoolProfiles[].networkProfile.dranet": "2026-06-01",
    "properties.agentPoolProfiles[].virtualMachinesProfile.scale.autoscale": "2026-05-01",
    "properties.azureMonitorProfile.appMonitoring": "2026-02-01",
    "properties.azureMonitorProfile.appMonitoring.openTelemetryLogsAndTraces": "2026-06-01",
    "properties.azureMonitorProfile.appMonitoring.openTelemetryMetrics": "2026-06-01",
    "properties.azureMonitorProfile.containerInsights": "2026-06-01",
    "properties.azureMonitorProfile.metrics.controlPlane": "2026-04-01",
    "properties.enableFIPS": "2026-07-01",
    "properties.hostedSystemProfile": "2026-02-01",
    "properties.httpProxyConfig.enabled": "2026-01-01",
    "properties.ingressProfile.gatewayAPI": "2026-02-01",
    "properties.ingressProfile.webAppRouting.gatewayAPIImplementations": "2026-02-01",
    "properties.networkProfile.advancedNetworking.performance": "2026-01-01",
    "properties.networkProfile.advancedNetworking.security.transitEncryption": "2026-01-01",
    "properties.networkProfile.natGatewayProfile.managedOutboundIPProfile.countIPv6": "2026-06-01",
    "properties.networkProfile.natGatewayProfile.outboundIPPrefixes": "2026-06-01",
    "properties.networkProfile.natGatewayProfile.outboundIPs": "2026-06-01",
    "properties.networkProfile.natGatewayProfile.sku": "2026-06-01",
    "properties.schedulerProfile": "2026-05-01",
    "properties.securityProfile.defender.securityGating": "2026-05-01",
    "properties.securityProfile.kubernetesResourceObjectEncryptionProfile": "2026-07-01",
    "properties.serviceMeshProfile.istio.components.proxyRedirectionMechanism": "2026-01-01",
}
#: The same for an agent pool's JSON.
POOL_FIELDS_SINCE: dict[str, str] = {
    "properties.artifactStreamingProfile": "2026-03-01",
    "properties.gpuProfile.nvidia": "2026-08-01",
    "properties.networkProfile.dranet": "2026-06-01",
    "properties.virtualMachinesProfile.scale.autoscale": "2026-05-01",
    "systemData": "2026-01-01",
}


def _drop(node: Any, parts: list[str]) -> None:
    """Remove the field at ``parts`` (``name[]`` descends into every item of a list)."""
    if not parts or not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    name = head.removesuffix("[]")
    if not rest:
        node.pop(name, None)
        return
    child = node.get(name)
    if head.endswith("[]"):
        for item in child if isinstance(child, list) else []:
            _drop(item, rest)
    else:
        _drop(child, rest)


def _shape(body: dict[str, Any], version: str, since: dict[str, str]) -> dict[str, Any]:
    for path, added in since.items():
        if added > version:
            _drop(body, path.split("."))
    return body


def shape_cluster(body: dict[str, Any], version: str) -> dict[str, Any]:
    """``body`` (a rendered cluster, changed in place) as api-version ``version`` shows it."""
    return _shape(body, version, CLUSTER_FIELDS_SINCE)


def shape_pool(body: dict[str, Any], version: str) -> dict[str, Any]:
    """``body`` (a rendered agent pool, changed in place) as api-version ``version`` shows it."""
    return _shape(body, version, POOL_FIELDS_SINCE)
