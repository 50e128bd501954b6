"""Per-kind defaulting and validation of built-in objects, as the API server's strategies do.

:func:`prepare_create` runs on every create of a built-in object, :func:`prepare_update` on
every replace/patch/apply; both mutate the candidate object in place and raise 422 for what
the API server rejects. Only the rules that matter to the emulated workloads are here:
namespaces get their status and name label, services a cluster IP and port defaults, pods a
``Pending`` status, deployments their defaults and the selector-matches-template check, CRDs
their name rule and ``Established`` status, secrets fold ``stringData`` into ``data``.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from emulators.azure.kube import resources as res
from emulators.azure.kube.errors import field_invalid, field_required, invalid
from emulators.azure.kube.objects import ObjectStore, now_iso
from emulators.azure.kube.selectors import match_label_selector

Obj = dict[str, Any]
SERVICE_CIDR = ipaddress.ip_network("10.0.0.0/16")
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
# 10.0.0.1 is the "kubernetes" service and 10.0.0.10 kube-dns, as on AKS.
_RESERVED = {int(SERVICE_CIDR.network_address) + 1, int(SERVICE_CIDR.network_address) + 10}


class IpAllocator:
    """Hands out service and pod IPs per cluster, never one still held by an object.

    Addresses are handed out in order through the CIDR; the set of used ones is read from the
    objects once (and again when the sequence wraps around), then kept up to date here, so an
    allocation is O(1) however many pods the cluster has.
    """

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._next: dict[tuple[str, str], int] = {}
        self._used: dict[tuple[str, str], set[int]] = {}

    def _scan(self, cluster: str, kind: str) -> set[int]:
        if kind == "service":
            values = [
                ((s.get("spec") or {}).get("clusterIP")) for s in self.objects.iter_type(cluster, res.SERVICES.key)
            ]
        else:
            values = [((p.get("status") or {}).get("podIP")) for p in self.objects.iter_type(cluster, res.PODS.key)]
        out = set(_RESERVED) if kind == "service" else set()
        for v in values:
            try:
                out.add(int(ipaddress.ip_address(str(v))))
            except ValueError:
                continue
        return out

    def allocate(self, cluster: str, kind: str) -> str:
        network = SERVICE_CIDR if kind == "service" else POD_CIDR
        base, size = int(network.network_address), network.num_addresses
        key = (cluster, kind)
        used = self._used.get(key)
        if used is None:
            used = self._used[key] = self._scan(cluster, kind)
        first = 2 if kind == "service" else 4
        start = self._next.get(key, first)
        for step in range(size - first - 1):
            offset = first + (start - first + step) % (size - first - 1)
            if offset < start and step and key in self._used and offset == first:
                # Wrapped around: forget addresses freed since the last scan.
                used = self._used[key] = self._scan(cluster, kind)
            if base + offset not in used:
                used.add(base + offset)
                self._next[key] = offset + 1
                return str(ipaddress.ip_address(base + offset))
        raise RuntimeError(f"{kind} CIDR of {cluster} is exhausted")

    def forget(self, cluster: str) -> None:
        for key in [k for k in self._used if k[0] == cluster]:
            self._used.pop(key, None)
            self._next.pop(key, None)


def _labels_of(obj: Obj) -> dict[str, str]:
    return dict(((obj.get("metadata") or {}).get("labels")) or {})


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


# -- namespaces ------------------------------------------------------------------------------
def _namespace(obj: Obj) -> None:
    m = obj["metadata"]
    m.setdefault("labels", {})["kubernetes.io/metadata.name"] = m["name"]
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = {"phase": "Active"}


# -- services --------------------------------------------------------------------------------
def _service(obj: Obj, cluster: str, ips: IpAllocator, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] == "ExternalName":
        # A DNS alias: no cluster IP, ports optional, externalName required
        # (https://kubernetes.io/docs/concepts/services-networking/service/#externalname).
        if not spec.get("externalName"):
            raise invalid("Service", "", _name(obj), [field_required("spec.externalName")])
        spec.setdefault("sessionAffinity", "None")
        obj["status"] = (old or {}).get("status") or {"loadBalancer": {}}
        return
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if old is not None and (old.get("spec") or {}).get("clusterIP"):
        # spec.clusterIP is immutable once allocated; an update that leaves it out keeps it.
        spec["clusterIP"] = old["spec"]["clusterIP"]
    elif not spec.get("clusterIP"):
        spec["clusterIP"] = ips.allocate(cluster, "service")
    spec["clusterIPs"] = [spec["clusterIP"]]
    ports = spec.get("ports") or []
    if not ports and spec["clusterIP"] != "None":
        raise invalid("Service", "", _name(obj), [field_required("spec.ports")])
    for i, port in enumerate(ports):
        if not isinstance(port, dict) or not isinstance(port.get("port"), int):
            raise invalid("Service", "", _name(obj), [field_required(f"spec.ports[{i}].port")])
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port["port"])
        if len(ports) > 1 and not port.get("name"):
            cause = field_required(f"spec.ports[{i}].name")
            raise invalid("Service", "", _name(obj), [cause])
    obj["status"] = (old or {}).get("status") or {"loadBalancer": {}}


# -- pods --------------------------------------------------------------------------------------
def _pod(obj: Obj) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise invalid("Pod", "", _name(obj), [field_required("spec.containers")])
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("serviceAccountName", "default")
    for c in spec["containers"]:
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("resources", {})
    obj["status"] = {"phase": "Pending", "qosClass": _qos(spec)}


def _qos(spec: Obj) -> str:
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in spec.get("containers") or []]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in spec.get("containers") or []]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get("cpu")
        and lim.get("memory")
        and req.get("cpu", lim["cpu"]) == lim["cpu"]
        and req.get("memory", lim["memory"]) == lim["memory"]
        for req, lim in zip(requests, limits, strict=True)
    )
    return "Guaranteed" if guaranteed else "Burstable"


# -- deployments -------------------------------------------------------------------------------
def _deployment(obj: Obj, old: Obj | None) -> None:
    spec = obj.get("spec")
    name = _name(obj)
    if not isinstance(spec, dict):
        raise invalid("Deployment", "apps", name, [field_required("spec")])
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    )
    selector = spec.get("selector")
    template = spec.get("template")
    causes = []
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        causes.append(field_required("spec.selector"))
    if not isinstance(template, dict) or not ((template.get("spec") or {}).get("containers")):
        causes.append(field_required("spec.template.spec.containers"))
    elif isinstance(selector, dict) and not match_label_selector(selector, _labels_of(template)):
        labels = _labels_of(template)
        causes.append(
            field_invalid("spec.template.metadata.labels", str(labels), "`selector` does not match template `labels`")
        )
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        causes.append(field_invalid("spec.selector", str(selector), "field is immutable"))
    if causes:
        raise invalid("Deployment", "apps", name, causes)
    obj["status"] = (old or {}).get("status") or {}


# -- CRDs ----------------------------------------------------------------------------------------
def _crd(obj: Obj) -> None:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    name = _name(obj)
    causes = []
    for field in ("group", "scope"):
        if not spec.get(field):
            causes.append(field_required(f"spec.{field}"))
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(field_required(f"spec.names.{field}"))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(field_required("spec.versions"))
    storage = [v.get("name") for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        causes.append(
            field_invalid("spec.versions", len(storage), "must have exactly one version marked as storage version")
        )
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        causes.append(field_invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if causes:
        raise invalid("CustomResourceDefinition", res.CRD_GROUP, name, causes)
    accepted = {
        "plural": names["plural"],
        "singular": names.get("singular") or str(names["kind"]).lower(),
        "kind": names["kind"],
        "listKind": names.get("listKind") or f"{names['kind']}List",
        **({"shortNames": names["shortNames"]} if names.get("shortNames") else {}),
        **({"categories": names["categories"]} if names.get("categories") else {}),
    }
    spec["names"] = {**names, "singular": accepted["singular"], "listKind": accepted["listKind"]}
    spec.setdefault("conversion", {"strategy": "None"})
    now = now_iso()
    obj["status"] = {
        "acceptedNames": accepted,
        "storedVersions": sorted({*((obj.get("status") or {}).get("storedVersions") or []), *storage}),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
    }


# -- secrets -------------------------------------------------------------------------------------
def _secret(obj: Obj) -> None:
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {}) if string_data else obj.get("data")
    for key, value in string_data.items():
        assert data is not None
        data[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")


def prepare_create(rtype: res.ResourceType, obj: Obj, cluster: str, ips: IpAllocator) -> None:
    """Defaults and checks of a new built-in object (mutates ``obj``)."""
    _prepare(rtype, obj, cluster, ips, None)


def prepare_update(rtype: res.ResourceType, old: Obj, new: Obj, cluster: str, ips: IpAllocator) -> None:
    """Defaults and checks of a replaced built-in object (mutates ``new``)."""
    _prepare(rtype, new, cluster, ips, old)


def _prepare(rtype: res.ResourceType, obj: Obj, cluster: str, ips: IpAllocator, old: Obj | None) -> None:
    if rtype is res.NAMESPACES:
        _namespace(obj)
    elif rtype is res.SERVICES:
        _service(obj, cluster, ips, old)
    elif rtype is res.PODS:
        if old is None:
            _pod(obj)
    elif rtype is res.DEPLOYMENTS:
        _deployment(obj, old)
    elif rtype is res.CRDS:
        _crd(obj)
    elif rtype is res.SECRETS:
        _secret(obj)


def name_rule(rtype: res.ResourceType) -> str:
    """Which name validation applies to a kind (``label``, ``dns1035`` or ``subdomain``)."""
    if rtype is res.NAMESPACES:
        return "label"
    if rtype is res.SERVICES:
        return "dns1035"
    return "subdomain"
