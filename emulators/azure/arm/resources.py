"""ARM JSON of managed clusters and agent pools: what the client sent plus what Azure adds.

ARM PUT replaces the client-settable part of a resource; read-only fields are Azure's to set.
So a stored body is built from the request (read-only fields dropped, secrets such as
``servicePrincipalProfile.secret`` and ``windowsProfile.adminPassword`` never kept) and then
given the read-only fields and defaults AKS fills in (shapes from the 2026-08-01 examples in
``tests/reference/azure/aks-examples``): ``eTag``, ``provisioningState``, ``powerState``,
``currentKubernetesVersion`` / ``currentOrchestratorVersion``, ``fqdn``, ``azurePortalFQDN``,
``maxAgentPools``, ``nodeResourceGroup``, ``networkProfile`` defaults (kubenet, CIDRs,
effective outbound IPs), identity ``principalId``/``clientId``, an OIDC ``issuerURL`` when the
issuer is enabled, ``maxPods``, ``nodeImageVersion`` and the spot defaults.

A cluster's stored body has no ``agentPoolProfiles``: they are rendered from its agent pools,
so ``GET managedCluster`` and ``GET agentPools`` always agree, as in AKS.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from emulators.azure.arm.admin import NODE_IMAGE_VERSION
from emulators.azure.arm.errors import ArmError

CLUSTER_TYPE = "Microsoft.ContainerService/managedClusters"
POOL_TYPE = "Microsoft.ContainerService/managedClusters/agentPools"
#: The Kubernetes versions this emulated region offers: minor -> patches, oldest first
#: (``az aks get-versions`` lists them; see :mod:`.lifecycle`).
KUBERNETES_VERSIONS: dict[str, list[str]] = {
    "1.32": ["1.32.6", "1.32.7"],
    "1.33": ["1.33.2", "1.33.3"],
    "1.34": ["1.34.0", "1.34.1"],
}
DEFAULT_MINOR = "1.33"
SPOT_LABEL = "kubernetes.azure.com/scalesetpriority"
SPOT_TAINT = f"{SPOT_LABEL}=spot:NoSchedule"
DEFAULT_KUBERNETES_VERSION = KUBERNETES_VERSIONS[DEFAULT_MINOR][-1]
DEFAULT_VM_SIZE = "Standard_D2s_v5"
MAX_AGENT_POOLS = 100
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://rayplane.invalid/emulators/azure/arm")

_POOL_READ_ONLY = ("eTag", "provisioningState", "currentOrchestratorVersion")
_CLUSTER_READ_ONLY = (
    "provisioningState",
    "powerState",
    "fqdn",
    "azurePortalFQDN",
    "privateFQDN",
    "currentKubernetesVersion",
    "maxAgentPools",
    "identityProfile",
    "resourceUID",
)


def as_object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (absent or malformed sections)."""
    return value if isinstance(value, dict) else {}


def new_etag() -> str:
    """A fresh opaque eTag."""
    return uuid.uuid4().hex[:16]


def stable_guid(*parts: str) -> str:
    """A GUID derived from ``parts``: the same resource gets the same ids after a restart."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(p.lower() for p in parts)))


def resolve_version(requested: Any, fallback: str) -> str:
    """The patch version a cluster or pool written with ``requested`` runs ("" or missing
    means ``fallback``). As on AKS, ``major.minor`` means that minor's latest patch, and a
    version the region does not offer is refused with 400 ``AgentPoolK8sVersionNotSupported``
    (https://learn.microsoft.com/en-us/azure/aks/supported-kubernetes-versions)."""
    text = str(requested or "").strip()
    if not text:
        return fallback
    patches = KUBERNETES_VERSIONS.get(".".join(text.split(".")[:2]), [])
    if text.count(".") == 1 and patches:
        return patches[-1]
    if text in patches:
        return text
    raise ArmError(
        400,
        "AgentPoolK8sVersionNotSupported",
        f"Version {text} is not supported in this region. Please use [az aks get-versions] command to get the "
        "supported version list in this region. For more information, please check "
        "https://aka.ms/supported-version-list",
    )


def pool_id(cluster_id: str, pool: str) -> str:
    return f"{cluster_id}/agentPools/{pool}"


def cluster_id(subscription: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.ContainerService/managedClusters/{name}"
    )


# -- agent pools ---------------------------------------------------------------------------
def pool_properties(
    sent: dict[str, Any], *, cluster_version: str, default_mode: str, node_image: str = NODE_IMAGE_VERSION
) -> dict[str, Any]:
    """The stored ``properties`` of a pool written with ``sent`` (its request ``properties``):
    AKS's defaults filled in, versions resolved against the cluster's. The caller sets
    ``eTag`` and ``provisioningState`` (both read-only, so never taken from ``sent``)."""
    props = {k: copy.deepcopy(v) for k, v in sent.items() if k not in _POOL_READ_ONLY}
    props.setdefault("type", "VirtualMachineScaleSets")
    props.setdefault("osType", "Linux")
    props.setdefault("mode", default_mode)
    if not props.get("vmSize"):
        # An empty size (what ``az aks create`` sends without --node-vm-size) lets AKS choose.
        props["vmSize"] = DEFAULT_VM_SIZE
    props.setdefault("maxPods", 110)
    props.setdefault("nodeImageVersion", node_image)
    # AKS's defaults for a Linux VMSS pool (the pool examples of the REST reference show them):
    # Ubuntu, a 128 GB managed OS disk, and a 10% surge on upgrades.
    props.setdefault("osSKU", "Ubuntu")
    props.setdefault("osDiskSizeGB", 128)
    props.setdefault("osDiskType", "Managed")
    props.setdefault("upgradeSettings", {"maxSurge": "10%"})
    props.setdefault("powerState", {"code": "Running"})
    if "count" not in props:
        props["count"] = int(props.get("minCount") or 0) if props.get("enableAutoScaling") else 1
    # ``orchestratorVersion`` keeps what was asked ("1.33" stays "1.33"), the running patch
    # is ``currentOrchestratorVersion``.
    version = resolve_version(props.get("orchestratorVersion"), cluster_version)
    props["orchestratorVersion"] = str(props.get("orchestratorVersion") or "").strip() or version
    props["currentOrchestratorVersion"] = version
    if props.get("scaleSetPriority") == "Spot":
        # AKS's spot defaults: evict by deleting the VM, pay up to the on-demand price. AKS also
        # adds its spot label and taint to the pool's own nodeLabels and nodeTaints, not only
        # to its nodes (https://learn.microsoft.com/en-us/azure/aks/spot-node-pool), so a
        # client that diffs pool properties must expect them back.
        props.setdefault("scaleSetEvictionPolicy", "Delete")
        props.setdefault("spotMaxPrice", -1)
        labels = dict(props.get("nodeLabels") or {})
        labels.setdefault(SPOT_LABEL, "spot")
        props["nodeLabels"] = labels
        taints = list(props.get("nodeTaints") or [])
        if not any(str(t).split("=", 1)[0].split(":", 1)[0] == SPOT_LABEL for t in taints):
            taints.append(SPOT_TAINT)
        props["nodeTaints"] = taints
    return props


def only_count_changed(previous: dict[str, Any], props: dict[str, Any]) -> bool:
    """Whether a pool write changes nothing but ``count``: AKS reports that as ``Scaling``."""
    ignored = {"count", "eTag", "provisioningState", "powerState"}
    before = {k: v for k, v in previous.items() if k not in ignored}
    after = {k: v for k, v in props.items() if k not in ignored}
    return before == after and previous.get("count") != props.get("count")


def pool_body(cluster_arm_id: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
    """An agent pool resource as ``GET agentPools/{name}`` returns it."""
    return {"id": pool_id(cluster_arm_id, name), "name": name, "type": POOL_TYPE, "properties": props}


def render_pool(body: dict[str, Any], live_count: int | None) -> dict[str, Any]:
    """``body`` with ``count`` from the live fleet for autoscaling pools (the autoscaler owns it)."""
    out = copy.deepcopy(body)
    if live_count is not None and out["properties"].get("enableAutoScaling"):
        out["properties"]["count"] = live_count
    return out


def profile_of(pool: dict[str, Any]) -> dict[str, Any]:
    """A pool as an entry of the cluster's ``agentPoolProfiles``: its properties plus ``name``."""
    return {"name": pool["name"], **pool["properties"]}


# -- managed clusters ----------------------------------------------------------------------
def _identity(identity: Any, arm_id: str, tenant: str) -> Any:
    if not isinstance(identity, dict):
        return identity
    out = copy.deepcopy(identity)
    kind = str(out.get("type", ""))
    if "SystemAssigned" in kind:
        out["principalId"] = stable_guid(arm_id, "principal")
        out["tenantId"] = tenant
    users = out.get("userAssignedIdentities")
    if isinstance(users, dict):
        for resource_id in list(users):
            users[resource_id] = {
                "clientId": stable_guid(resource_id, "client"),
                "principalId": stable_guid(resource_id, "principal"),
            }
    return out


def _network_profile(sent: Any, node_rg: str, subscription: str, arm_id: str) -> dict[str, Any]:
    net = copy.deepcopy(sent) if isinstance(sent, dict) else {}
    net.setdefault("networkPlugin", "kubenet")
    net.setdefault("podCidr", "10.244.0.0/16")
    net.setdefault("serviceCidr", "10.0.0.0/16")
    net.setdefault("dnsServiceIP", "10.0.0.10")
    net.setdefault("outboundType", "loadBalancer")
    net.setdefault("loadBalancerSku", "standard")
    net.setdefault("podCidrs", [net["podCidr"]])
    net.setdefault("serviceCidrs", [net["serviceCidr"]])
    net.setdefault("ipFamilies", ["IPv4"])
    if net["outboundType"] == "loadBalancer":
        lb = net.setdefault("loadBalancerProfile", {})
        public_ips = (lb.get("outboundIPs") or {}).get("publicIPs") or []
        if public_ips:
            effective = [{"id": ip["id"]} for ip in public_ips if isinstance(ip, dict) and "id" in ip]
        else:
            managed = lb.setdefault("managedOutboundIPs", {"count": 1})
            effective = [
                {
                    "id": f"/subscriptions/{subscription}/resourceGroups/{node_rg}/providers/"
                    f"Microsoft.Network/publicIPAddresses/{stable_guid(arm_id, 'outbound', str(i))}"
                }
                for i in range(int(managed.get("count") or 1))
            ]
        lb["effectiveOutboundIPs"] = effective
        lb.setdefault("allocatedOutboundPorts", 0)
        lb.setdefault("idleTimeoutInMinutes", 30)
    return net


def _managed_identity_profiles(
    props: dict[str, Any], old_props: dict[str, Any], sent: dict[str, Any], subscription: str, name: str
) -> None:
    """What AKS sets on a cluster with a managed identity: ``servicePrincipalProfile.clientId``
    ``"msi"`` unless the request named a service principal, and ``identityProfile.kubeletidentity``,
    the user-assigned identity ``<cluster>-agentpool`` in the node resource group that the
    kubelets use (a kubelet identity the client brought in ``identityProfile`` is kept). The AKS
    REST reference (managedClusters.json, ``ManagedClusterProperties.identityProfile``: "the user
    identity associated with the managed cluster, used by the kubelet") defines the field; the
    Azure CLI's ``aks update`` refuses a cluster without it."""
    sp = as_object(props.get("servicePrincipalProfile"))
    if not sp.get("clientId") or sp.get("clientId") == "msi":
        props["servicePrincipalProfile"] = {"clientId": "msi"}
    kept = as_object(as_object(old_props.get("identityProfile")).get("kubeletidentity"))
    brought = as_object(as_object(sent.get("identityProfile")).get("kubeletidentity"))
    if brought.get("resourceId"):
        kept = {k: v for k, v in brought.items() if k in ("resourceId", "clientId", "objectId")}
    if not kept.get("resourceId"):
        kept = {
            "resourceId": f"/subscriptions/{subscription}/resourcegroups/{props['nodeResourceGroup']}/providers/"
            f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool"
        }
    kept.setdefault("clientId", stable_guid(kept["resourceId"], "client"))
    kept.setdefault("objectId", stable_guid(kept["resourceId"], "principal"))
    props["identityProfile"] = {"kubeletidentity": kept}


def cluster_body(
    sent: dict[str, Any],
    previous: dict[str, Any] | None,
    *,
    subscription: str,
    resource_group: str,
    name: str,
    origin: str,
    tenant: str,
) -> dict[str, Any]:
    """The stored body of a cluster written with request body ``sent`` (no agentPoolProfiles).

    ``tenant`` (the caller's ``tid``) goes into a system-assigned identity and the OIDC issuer
    URL; ``previous`` (None on create) keeps the read-only facts that never change (fqdn).
    """
    arm_id = cluster_id(subscription, resource_group, name)
    props_in = as_object(sent.get("properties"))
    props = {k: copy.deepcopy(v) for k, v in props_in.items() if k not in (*_CLUSTER_READ_ONLY, "agentPoolProfiles")}
    location = str(sent.get("location", ""))
    region = location.lower().replace(" ", "")
    # An update that names no version keeps the one the cluster runs.
    running = str(((previous or {}).get("properties") or {}).get("currentKubernetesVersion") or "")
    version = resolve_version(props.get("kubernetesVersion"), running or DEFAULT_KUBERNETES_VERSION)
    props["kubernetesVersion"] = str(props.get("kubernetesVersion") or "").strip() or version
    props["currentKubernetesVersion"] = version
    props.setdefault("dnsPrefix", f"{name[:10]}-{resource_group[:16]}-{subscription[:6]}")
    old_props = (previous or {}).get("properties", {})
    suffix = stable_guid(arm_id, "fqdn")[:8]
    props["fqdn"] = old_props.get("fqdn") or f"{props['dnsPrefix']}-{suffix}.hcp.{region}.azmk8s.io"
    props["azurePortalFQDN"] = (
        old_props.get("azurePortalFQDN") or f"{props['dnsPrefix']}-{suffix}.portal.hcp.{region}.azmk8s.io"
    )
    props["maxAgentPools"] = MAX_AGENT_POOLS
    props.setdefault("nodeResourceGroup", f"MC_{resource_group}_{name}_{region}")
    props.setdefault("enableRBAC", True)
    props["powerState"] = {"code": "Running"}
    props["networkProfile"] = _network_profile(
        props.get("networkProfile"), props["nodeResourceGroup"], subscription, arm_id
    )
    oidc = as_object(props.get("oidcIssuerProfile"))
    oidc = {k: v for k, v in oidc.items() if k != "issuerURL"}
    oidc.setdefault("enabled", False)
    if oidc["enabled"]:
        # AKS's issuer is https://<region>.oic.prod-aks.azure.com/<tenant>/<guid>/; ours is served
        # from the emulator's origin so that a Kubernetes surface can publish its discovery document.
        oidc["issuerURL"] = f"{origin}/oidc/{tenant}/{stable_guid(arm_id, 'oidc')}/"
    props["oidcIssuerProfile"] = oidc
    sp = props.get("servicePrincipalProfile")
    if isinstance(sp, dict):
        props["servicePrincipalProfile"] = {k: v for k, v in sp.items() if k != "secret"}
    windows = props.get("windowsProfile")
    if isinstance(windows, dict):
        props["windowsProfile"] = {k: v for k, v in windows.items() if k != "adminPassword"}
    addons = props.get("addonProfiles")
    if isinstance(addons, dict):
        for addon_name, addon in addons.items():
            if isinstance(addon, dict) and addon.get("enabled"):
                # AKS gives each enabled addon a managed identity in the node resource group.
                identity_id = (
                    f"/subscriptions/{subscription}/resourceGroups/{props['nodeResourceGroup']}/providers/"
                    f"Microsoft.ManagedIdentity/userAssignedIdentities/{addon_name.lower()}-{name}"
                )
                addon.setdefault(
                    "identity",
                    {
                        "resourceId": identity_id,
                        "clientId": stable_guid(identity_id, "client"),
                        "objectId": stable_guid(identity_id, "principal"),
                    },
                )
    if isinstance(sent.get("identity"), dict):
        _managed_identity_profiles(props, old_props, props_in, subscription, name)
    if previous is not None:
        props["provisioningState"] = old_props.get("provisioningState", "Succeeded")
        if "powerState" in old_props:
            props["powerState"] = copy.deepcopy(old_props["powerState"])
    body: dict[str, Any] = {
        "id": arm_id,
        "name": name,
        "type": CLUSTER_TYPE,
        "location": location,
        "sku": copy.deepcopy(sent.get("sku") or {"name": "Base", "tier": "Free"}),
        "properties": props,
    }
    for key in ("tags", "extendedLocation", "kind"):
        if key in sent:
            body[key] = copy.deepcopy(sent[key])
    if "identity" in sent:
        body["identity"] = _identity(sent["identity"], arm_id, tenant)
    return body


def render_cluster(body: dict[str, Any], pools: list[dict[str, Any]]) -> dict[str, Any]:
    """``body`` with ``agentPoolProfiles`` rendered from its (already rendered) pools, by name."""
    out = copy.deepcopy(body)
    out["properties"]["agentPoolProfiles"] = [profile_of(p) for p in pools]
    return out
