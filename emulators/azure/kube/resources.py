"""What each emulated API server serves: built-in resource types, custom ones from CRDs, discovery.

A :class:`ResourceType` names one REST collection (group, plural, kind, scope, verbs).
Built-ins are fixed; a custom resource type exists in a cluster while that cluster holds a
CustomResourceDefinition for it (looked up by the CRD's name, ``<plural>.<group>``, so the
lookup is O(1)). Objects are stored per type under :attr:`ResourceType.key`, independent of
the version a client used: CRDs here have conversion strategy ``None``, so serving another
version only rewrites ``apiVersion``, as the real API server does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
READ_VERBS = ("get", "list")
KUBERNETES_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.3"}
CRD_GROUP = "apiextensions.k8s.io"


@dataclass(frozen=True)
class ResourceType:
    """One collection of the API. ``versions`` lists the served versions, preferred first."""

    group: str
    versions: tuple[str, ...]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = True
    categories: tuple[str, ...] = ()
    # CRD name for custom resources; schema validation and pruning apply only to them.
    crd: str | None = None
    subresources: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """Storage key: ``core/pods``, ``apps/deployments``, ``ray.io/rayclusters``."""
        return f"{self.group or 'core'}/{self.plural}"

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def _core(plural: str, singular: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    return ResourceType("", ("v1",), plural, singular, kind, namespaced, **kw)


def _rbac(plural: str, kind: str, namespaced: bool) -> ResourceType:
    return ResourceType(
        "rbac.authorization.k8s.io", ("v1",), plural, kind.lower(), kind, namespaced, status_subresource=False
    )


NAMESPACES = _core("namespaces", "namespace", "Namespace", False, short_names=("ns",), subresources=("status",))
NODES = _core("nodes", "node", "Node", False, short_names=("no",), verbs=READ_VERBS, subresources=("status",))
PODS = _core(
    "pods",
    "pod",
    "Pod",
    short_names=("po",),
    categories=("all",),
    subresources=("status", "log", "exec", "attach", "portforward"),
)
SERVICES = _core(
    "services", "service", "Service", short_names=("svc",), categories=("all",), subresources=("status", "proxy")
)
CONFIGMAPS = _core("configmaps", "configmap", "ConfigMap", short_names=("cm",), status_subresource=False)
SECRETS = _core("secrets", "secret", "Secret", status_subresource=False)
SERVICEACCOUNTS = _core("serviceaccounts", "serviceaccount", "ServiceAccount", short_names=("sa",))
EVENTS = _core("events", "event", "Event", short_names=("ev",), status_subresource=False)
DEPLOYMENTS = ResourceType(
    "apps",
    ("v1",),
    "deployments",
    "deployment",
    "Deployment",
    True,
    short_names=("deploy",),
    categories=("all",),
    subresources=("status",),
)
DAEMONSETS = ResourceType(
    "apps",
    ("v1",),
    "daemonsets",
    "daemonset",
    "DaemonSet",
    True,
    short_names=("ds",),
    categories=("all",),
    subresources=("status",),
)
CRDS = ResourceType(
    CRD_GROUP,
    ("v1",),
    "customresourcedefinitions",
    "customresourcedefinition",
    "CustomResourceDefinition",
    False,
    short_names=("crd", "crds"),
    subresources=("status",),
)

BUILTINS: tuple[ResourceType, ...] = (
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    CONFIGMAPS,
    SECRETS,
    SERVICEACCOUNTS,
    EVENTS,
    DEPLOYMENTS,
    # Stored; a device plugin's DaemonSet makes GPU nodes advertise nvidia.com/gpu
    # (emulators.azure.kube.deviceplugin). No DaemonSet pods are made.
    DAEMONSETS,
    _rbac("roles", "Role", True),
    _rbac("rolebindings", "RoleBinding", True),
    _rbac("clusterroles", "ClusterRole", False),
    _rbac("clusterrolebindings", "ClusterRoleBinding", False),
    CRDS,
    # Stored but not acted on: the kinds an operator chart or Rayplane may also apply.
    ResourceType("batch", ("v1",), "jobs", "job", "Job", True, subresources=("status",)),
    ResourceType("policy", ("v1",), "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True),
    ResourceType(
        "networking.k8s.io",
        ("v1",),
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        True,
        status_subresource=False,
    ),
    ResourceType("networking.k8s.io", ("v1",), "ingresses", "ingress", "Ingress", True),
    ResourceType(
        "scheduling.k8s.io",
        ("v1",),
        "priorityclasses",
        "priorityclass",
        "PriorityClass",
        False,
        status_subresource=False,
    ),
    ResourceType("coordination.k8s.io", ("v1",), "leases", "lease", "Lease", True, status_subresource=False),
    # Create-only reviews, answered by emulators.azure.kube.endpoints (never stored).
    ResourceType(
        "authorization.k8s.io",
        ("v1",),
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        "SelfSubjectAccessReview",
        False,
        verbs=("create",),
        status_subresource=False,
    ),
    ResourceType(
        "authentication.k8s.io",
        ("v1",),
        "selfsubjectreviews",
        "selfsubjectreview",
        "SelfSubjectReview",
        False,
        verbs=("create",),
        status_subresource=False,
    ),
)
_BY_PATH = {(r.group, v, r.plural): r for r in BUILTINS for v in r.versions}
BUILTIN_GROUPS = frozenset(r.group for r in BUILTINS)
BY_KEY = {r.key: r for r in BUILTINS}


def builtin(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def from_crd(crd: dict[str, Any]) -> ResourceType:
    """The resource type a CRD object defines (served versions only, storage version first)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    versions.sort(key=lambda v: not v.get("storage", False))
    status = any("status" in (v.get("subresources") or {}) for v in versions)
    return ResourceType(
        group=str(spec.get("group", "")),
        versions=tuple(str(v["name"]) for v in versions),
        plural=str(names.get("plural", "")),
        singular=str(names.get("singular") or str(names.get("kind", "")).lower()),
        kind=str(names.get("kind", "")),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        status_subresource=status,
        categories=tuple(names.get("categories") or ()),
        crd=str((crd.get("metadata") or {}).get("name", "")),
        subresources=("status",) if status else (),
    )


def crd_version(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The ``spec.versions[]`` entry named ``version`` if it is served."""
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == version and v.get("served", True):
            return dict(v)
    return None


def version_has_status(crd: dict[str, Any], version: str) -> bool:
    entry = crd_version(crd, version) or {}
    return "status" in (entry.get("subresources") or {})


# -- discovery documents ---------------------------------------------------------------------
def _api_resource(r: ResourceType) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
            **({"shortNames": list(r.short_names)} if r.short_names else {}),
            **({"categories": list(r.categories)} if r.categories else {}),
        }
    ]
    for sub in r.subresources:
        verbs = {"status": ["get", "patch", "update"], "log": ["get"]}.get(sub, ["get"])
        if sub in ("exec", "attach", "portforward"):
            verbs = ["create", "get"]
        if sub == "proxy":
            verbs = ["create", "delete", "get", "patch", "update"]
        kind = {
            "proxy": "ServiceProxyOptions",
            "exec": "PodExecOptions",
            "attach": "PodAttachOptions",
            "portforward": "PodPortForwardOptions",
        }.get(sub, r.kind)
        out.append(
            {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs}
        )
    return out


def resource_list(group_version: str, types: Iterable[ResourceType]) -> dict[str, Any]:
    """``APIResourceList`` for ``/api/v1`` or ``/apis/{group}/{version}``."""
    resources = [item for r in types for item in _api_resource(r)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def api_group(group: str, versions: Iterable[str]) -> dict[str, Any]:
    """``APIGroup`` (preferred version first)."""
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": listed, "preferredVersion": listed[0]}


def group_versions(types: Iterable[ResourceType]) -> dict[str, list[str]]:
    """group -> served versions (in first-seen order) over ``types``, core excluded."""
    groups: dict[str, list[str]] = {}
    for r in types:
        if not r.group:
            continue
        seen = groups.setdefault(r.group, [])
        seen.extend(v for v in r.versions if v not in seen)
    return groups


def api_group_list(types: Iterable[ResourceType]) -> dict[str, Any]:
    groups = [api_group(g, vs) for g, vs in group_versions(types).items()]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_versions(server: str) -> dict[str, Any]:
    """``APIVersions`` for ``/api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    }


def version_info(version: str | None = None) -> dict[str, Any]:
    """``/version``: the Kubernetes version the cluster's control plane runs (``1.33.3``), or the
    emulator's default for a cluster ARM has not settled yet."""
    info = dict(KUBERNETES_VERSION)
    if version:
        major, minor, *_ = version.split(".")
        info = {"major": major, "minor": minor, "gitVersion": f"v{version}"}
    return {
        **info,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-06-17T18:36:14Z",
        "goVersion": "go1.24.4",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
