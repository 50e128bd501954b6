"""OpenAPI documents of an emulated API server: ``/openapi/v3`` (index and per group-version) and
``/openapi/v2``, describing the built-in kinds served and every installed CRD.

kubectl reads them for ``kubectl explain`` (OpenAPI v3) and, before ``kubectl apply``'s
default validation (``--validate=strict``), to learn whether a kind's PATCH operation takes
the ``fieldValidation`` query parameter: when it does, kubectl leaves validation to the
server; when the v3 document is missing, it falls back to client-side validation against the
v2 document (which it only reads as protobuf). See
https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-interface-definition and
https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation.

* Built-in kinds with a protobuf table (:mod:`emulators.azure.kube.protofields`) get a schema
  made from it (fields, types, ``x-kubernetes-patch-strategy``/``-merge-key``), named as the
  API server names its definitions (``io.k8s.api.apps.v1.Deployment``); other built-ins a
  loose object schema. Descriptions are short: the field names and types are what is exact.
* A CRD version contributes its ``openAPIV3Schema`` as ``<reversed group>.<version>.<Kind>``
  (``io.ray.v1.RayCluster``), with ``metadata`` pointing at ``ObjectMeta``.
* Every schema of a kind carries ``x-kubernetes-group-version-kind``, and each path's
  operations do too, with the query parameters the server takes.

The index's ``serverRelativeURL`` is ``/openapi/v3/<gv>?hash=<digest>`` (clients keep their
path prefix for URLs rooted at ``/openapi/v3``); the digest changes when the CRDs do, so
kubectl's disk cache refetches.
"""

from __future__ import annotations

import copy
import hashlib
from functools import cache
from typing import Any

from emulators.azure.kube import resources as res
from emulators.azure.kube.protobuf import table
from emulators.azure.kube.protofields import KINDS, MESSAGES, PACKAGES, PATCH

Obj = dict[str, Any]
V3_REF = "#/components/schemas/"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_SCALARS: dict[str, Obj] = {
    "s": {"type": "string"},
    "i": {"type": "integer", "format": "int64"},
    "b": {"type": "boolean"},
    "y": {"type": "string", "format": "byte"},
    "d": {"type": "number", "format": "double"},
    "T": {"type": "string", "format": "date-time"},
    "q": {"type": "string", "format": "quantity", "x-kubernetes-int-or-string": True},
    "n": {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True},
    "r": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "D": {"type": "string"},
}
_BY_MESSAGE = {message: api_version_kind for api_version_kind, message in KINDS.items()}
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def schema_name(message: str) -> str:
    return f"{PACKAGES.get(message, 'io.k8s.api.core.v1')}.{message}"


def _gvk(api_version: str, kind: str) -> list[Obj]:
    group, _, version = api_version.rpartition("/")
    return [{"group": group, "version": version, "kind": kind}]


def _properties(message: str) -> Obj:
    """The properties of ``message``, fields of inline-embedded messages merged in."""
    props: Obj = {}
    for field in table(message).values():
        if field.inline:
            props.update(_properties(field.kind[1:]))
            continue
        item = (
            {"$ref": V3_REF + schema_name(field.kind[1:])} if field.kind.startswith("@") else dict(_SCALARS[field.kind])
        )
        if field.is_map:
            prop: Obj = {"type": "object", "additionalProperties": item}
        elif field.repeated:
            prop = {"type": "array", "items": item}
            tag = PATCH.get(f"{message}.{field.name}")
            if tag:
                strategy, _, key = tag.partition(":")
                prop["x-kubernetes-patch-strategy"] = strategy
                if key:
                    prop["x-kubernetes-patch-merge-key"] = key
        else:
            prop = item
            tag = PATCH.get(f"{message}.{field.name}")
            if tag:
                prop = {"allOf": [item], "x-kubernetes-patch-strategy": tag}
        props[field.name] = prop
    return props


@cache
def _builtin_schemas() -> dict[str, Obj]:
    """Every table message as a schema (kinds with their GVK extension and ``status``)."""
    out: dict[str, Obj] = {}
    for message in MESSAGES:
        schema: Obj = {"type": "object", "properties": _properties(message)}
        if message in _BY_MESSAGE and message != "DeleteOptions":
            api_version, kind = _BY_MESSAGE[message]
            schema["description"] = f"{kind} ({api_version}), as served by the emulated AKS API server."
            schema["properties"] = {
                "apiVersion": {"type": "string", "description": "APIVersion of this representation of an object."},
                "kind": {"type": "string", "description": "Kind is the REST resource this object represents."},
                **schema["properties"],
            }
            if "metadata" in schema["properties"]:
                schema["properties"]["metadata"] = {
                    "allOf": [{"$ref": V3_REF + OBJECT_META}],
                    "description": "Standard object's metadata.",
                }
            served = _served(api_version, kind)
            if served is not None and served.status_subresource:
                schema["properties"]["status"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            schema["x-kubernetes-group-version-kind"] = _gvk(api_version, kind)
        out[schema_name(message)] = schema
    return out


def _served(api_version: str, kind: str) -> res.ResourceType | None:
    group = api_version.rpartition("/")[0]
    return next((r for r in res.BUILTINS if r.group == group and r.kind == kind), None)


def _loose_name(rtype: res.ResourceType, version: str) -> str:
    if rtype.group == res.CRD_GROUP:
        return f"io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{rtype.kind}"
    return f"io.k8s.api.{rtype.group.split('.')[0] or 'core'}.{version}.{rtype.kind}"


def _crd_name(group: str, version: str, kind: str) -> str:
    return ".".join([*reversed(group.split(".")), version, kind])


def _kind_schema(rtype: res.ResourceType, version: str, crd: Obj | None) -> tuple[str, Obj]:
    """(schema name, schema) of one kind at one version."""
    api_version = rtype.api_version(version)
    if crd is not None:
        entry = res.crd_version(crd, version) or {}
        raw = ((entry.get("schema") or {}).get("openAPIV3Schema")) or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        schema = copy.deepcopy(raw)
        props = schema.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"allOf": [{"$ref": V3_REF + OBJECT_META}], "description": "Standard object's metadata."}
        schema["x-kubernetes-group-version-kind"] = _gvk(api_version, rtype.kind)
        return _crd_name(rtype.group, version, rtype.kind), schema
    message = KINDS.get((api_version, rtype.kind))
    if message is not None:
        return schema_name(message), _builtin_schemas()[schema_name(message)]
    loose: Obj = {
        "type": "object",
        "description": f"{rtype.kind} ({api_version}), as served by the emulated AKS API server.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": V3_REF + OBJECT_META}]},
        },
        "x-kubernetes-preserve-unknown-fields": True,
        "x-kubernetes-group-version-kind": _gvk(api_version, rtype.kind),
    }
    return _loose_name(rtype, version), loose


def _closure(names: list[str], available: dict[str, Obj]) -> dict[str, Obj]:
    """The schemas ``names`` refer to, transitively (each kind's own schema included)."""
    out: dict[str, Obj] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out or name not in available:
            continue
        out[name] = available[name]
        todo.extend(_refs(available[name]))
    return out


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"][len(V3_REF) :]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _operation(action: str, rtype: res.ResourceType, version: str, ref: str, *, v2: bool) -> Obj:
    verb = {"get": "read", "list": "list", "post": "create", "put": "replace", "patch": "patch", "delete": "delete"}
    query: tuple[str, ...] = _QUERY if action in ("post", "put", "patch") else ("pretty",)
    if action == "list":
        query = ("labelSelector", "fieldSelector", "limit", "continue", "pretty")
    params: list[Obj] = [
        {"name": q, "in": "query", **({"type": "string"} if v2 else {"schema": {"type": "string"}})} for q in query
    ]
    response: Obj = {"description": "OK"}
    if v2:
        response["schema"] = {"$ref": ref}
    else:
        response["content"] = {"application/json": {"schema": {"$ref": ref}}}
    op: Obj = {
        "operationId": f"{verb[action]}{rtype.kind}",
        "parameters": params,
        "responses": {"200": response},
        "x-kubernetes-action": {"get": "get", "list": "list", "post": "post", "put": "put", "patch": "patch"}.get(
            action, "delete"
        ),
        "x-kubernetes-group-version-kind": {"group": rtype.group, "version": version, "kind": rtype.kind},
    }
    if action in ("post", "put", "patch"):
        body_ref = {"type": "object"} if action == "patch" else {"$ref": ref}
        if v2:
            params.append({"name": "body", "in": "body", "required": True, "schema": body_ref})
        else:
            types = (
                ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
                + (["application/strategic-merge-patch+json"] if _typed(rtype, version) else [])
                if action == "patch"
                else ["application/json", "application/yaml"]
            )
            op["requestBody"] = {"required": True, "content": {t: {"schema": body_ref} for t in types}}
    return op


def _typed(rtype: res.ResourceType, version: str) -> bool:
    """Whether the kind's schema is complete enough for kubectl to compute a strategic merge
    patch from it (kubectl computes a JSON merge patch, or uses its own types, otherwise)."""
    return not rtype.crd and (rtype.api_version(version), rtype.kind) in KINDS


def _paths(rtype: res.ResourceType, version: str, name: str, *, v2: bool) -> Obj:
    ref = ("#/definitions/" if v2 else V3_REF) + name
    prefix = f"/apis/{rtype.group}/{version}" if rtype.group else f"/api/{version}"
    collection = prefix + ("/namespaces/{namespace}" if rtype.namespaced else "") + f"/{rtype.plural}"
    path_params = [{"name": "namespace", "in": "path", "required": True}] if rtype.namespaced else []
    name_param = [{"name": "name", "in": "path", "required": True}]
    for p in [*path_params, *name_param]:
        p.update({"type": "string"} if v2 else {"schema": {"type": "string"}})
    verbs = set(rtype.verbs)
    coll: Obj = {"parameters": path_params} if path_params else {}
    item: Obj = {"parameters": path_params + name_param}
    if "list" in verbs:
        coll["get"] = _operation("list", rtype, version, ref, v2=v2)
    if "create" in verbs:
        coll["post"] = _operation("post", rtype, version, ref, v2=v2)
    for verb, action in (("get", "get"), ("update", "put"), ("patch", "patch"), ("delete", "delete")):
        if verb in verbs:
            item[action] = _operation(action, rtype, version, ref, v2=v2)
    out = {collection: coll} if len(coll) > (1 if path_params else 0) else {}
    if len(item) > 1:
        out[collection + "/{name}"] = item
    return out


def _kinds(types: list[res.ResourceType], gv: str | None) -> list[tuple[res.ResourceType, str]]:
    """(type, version) of every kind served in ``gv`` (or in every group-version)."""
    return [(r, v) for r in types for v in r.versions if gv is None or r.api_version(v) == gv]


def _documents(
    types: list[res.ResourceType], crds: dict[str, Obj], gv: str | None, *, v2: bool
) -> tuple[Obj, dict[str, Obj]]:
    """(paths, schemas) for one group-version (``gv``) or all (``None``)."""
    paths: Obj = {}
    available = dict(_builtin_schemas())
    names = []
    for rtype, version in _kinds(types, gv):
        name, schema = _kind_schema(rtype, version, crds.get(rtype.crd) if rtype.crd else None)
        available[name] = schema
        names.append(name)
        paths.update(_paths(rtype, version, name, v2=v2))
    return paths, _closure([*names, OBJECT_META], available)


def group_versions(types: list[res.ResourceType]) -> list[str]:
    """``api/v1`` and ``apis/<group>/<version>`` of every kind served, in a stable order."""
    seen: dict[str, None] = {}
    for rtype in types:
        for version in rtype.versions:
            seen["apis/" + rtype.api_version(version) if rtype.group else f"api/{version}"] = None
    return list(seen)


def v3_index(types: list[res.ResourceType], crds: dict[str, Obj]) -> Obj:
    """``/openapi/v3``: ``{"paths": {"apis/apps/v1": {"serverRelativeURL": ...}}}``."""
    paths = {}
    for gv in group_versions(types):
        versions = sorted(
            f"{c['metadata'].get('uid')}/{c['metadata'].get('resourceVersion')}"
            for c in crds.values()
            if gv.startswith("apis/") and gv[5:].split("/")[0] == (c.get("spec") or {}).get("group")
        )
        parts = [gv, *versions]
        digest = hashlib.sha512("|".join(parts).encode()).hexdigest().upper()[:64]
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


def v3_document(types: list[res.ResourceType], crds: dict[str, Obj], gv_path: str) -> Obj | None:
    """``/openapi/v3/<gv_path>`` (``api/v1``, ``apis/apps/v1``), or None if not served."""
    if gv_path not in group_versions(types):
        return None
    gv = gv_path.removeprefix("api/").removeprefix("apis/")
    paths, schemas = _documents(types, crds, gv, v2=False)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": res.KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _v2(value: Any) -> Any:
    """A v3 schema as Swagger 2.0 has it: ``#/definitions/`` references, and a single-element
    ``allOf`` (how v3 puts a description next to a reference) folded into a ``$ref``."""
    if isinstance(value, list):
        return [_v2(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _v2(v) for k, v in value.items() if k not in ("allOf", "anyOf", "oneOf", "not", "nullable")}
    all_of = value.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict) and "$ref" in all_of[0]:
        out["$ref"] = all_of[0]["$ref"]
    if isinstance(out.get("$ref"), str):
        out["$ref"] = out["$ref"].replace(V3_REF, "#/definitions/")
    return out


def v2_document(types: list[res.ResourceType], crds: dict[str, Obj]) -> Obj:
    """``/openapi/v2`` (Swagger 2.0): every kind, references under ``#/definitions/``."""
    paths, schemas = _documents(types, crds, None, v2=True)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": res.KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "definitions": {name: _v2(schema) for name, schema in schemas.items()},
    }
