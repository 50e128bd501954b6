"""Aggregated discovery (``apidiscovery.k8s.io/v2``): every group, version and resource in one
answer to ``GET /api`` (the core group) and ``GET /apis`` (every other group).

A client asks for it with ``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``
(kubectl 1.30+ lists it first, then v2beta1, then plain JSON) and recognises it by the same
media type in the response's Content-Type; without it, it falls back to the legacy documents
(``APIVersions``/``APIGroupList``, then one ``APIResourceList`` per group version). See
https://kubernetes.io/docs/concepts/overview/kubernetes-api/#aggregated-discovery.

The resources listed are those of the legacy documents (:mod:`emulators.azure.kube.resources`),
so both forms agree.
"""

from __future__ import annotations

from typing import Any

from emulators.azure.kube import resources as res

Obj = dict[str, Any]
MEDIA_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_PARAMS = {"g": "apidiscovery.k8s.io", "v": "v2", "as": "APIGroupDiscoveryList"}
_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "log": ["get"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
}
_SUBRESOURCE_KINDS = {
    "proxy": "ServiceProxyOptions",
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
}


def wants_v2(accept: str) -> bool:
    """Whether the Accept header prefers aggregated discovery v2 to the legacy documents."""
    for part in accept.split(","):
        kind, *raw = (p.strip() for p in part.split(";"))
        params = dict(p.partition("=")[::2] for p in raw if "=" in p)
        params.pop("q", None)
        if kind.lower() == "application/json" and params == _PARAMS:
            return True
        if kind.lower() in ("application/json", "*/*", "application/*") and "as" not in params:
            return False
    return False


def _resource(r: res.ResourceType, version: str) -> Obj:
    kind = {"group": r.group, "version": version, "kind": r.kind}
    out: Obj = {
        "resource": r.plural,
        "responseKind": kind,
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": list(r.verbs),
    }
    if r.short_names:
        out["shortNames"] = list(r.short_names)
    if r.categories:
        out["categories"] = list(r.categories)
    subresources = []
    for sub in r.subresources:
        verbs = _SUBRESOURCE_VERBS.get(sub, ["create", "delete", "get", "patch", "update"])
        response = {**kind, "kind": _SUBRESOURCE_KINDS[sub]} if sub in _SUBRESOURCE_KINDS else kind
        subresources.append({"subresource": sub, "responseKind": response, "verbs": verbs})
    if subresources:
        out["subresources"] = subresources
    return out


def _group(name: str, versions: list[str], types: list[res.ResourceType]) -> Obj:
    listed = []
    for version in versions:
        served = [r for r in types if r.group == name and version in r.versions]
        listed.append(
            {"version": version, "resources": [_resource(r, version) for r in served], "freshness": "Current"}
        )
    return {"metadata": {"name": name, "creationTimestamp": None}, "versions": listed}


def document(types: list[res.ResourceType], *, core: bool) -> Obj:
    """The ``APIGroupDiscoveryList`` of ``/api`` (``core``) or ``/apis``."""
    if core:
        items = [_group("", ["v1"], [r for r in types if not r.group])]
    else:
        items = [_group(g, vs, types) for g, vs in res.group_versions(types).items()]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}
