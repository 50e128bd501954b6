"""Server-side field validation: the ``fieldValidation`` query parameter of create, update and
patch (https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation).

With ``fieldValidation=Strict`` (what kubectl sends, since the OpenAPI v3 documents say the
server takes it) a body holding a field the kind does not declare is refused with 400
BadRequest instead of being dropped; ``Warn`` (the default) and ``Ignore`` accept it, as
before. Unknown fields are found with the protobuf tables for built-in kinds
(:mod:`emulators.azure.kube.protofields`; ``status`` is not checked, and kinds without a
table are not) and with the CRD version's ``openAPIV3Schema`` for custom resources
(``additionalProperties``, ``x-kubernetes-preserve-unknown-fields`` and
``x-kubernetes-embedded-resource`` allow what they allow).

The messages are the API server's: ``<Kind> in version "<v>" cannot be handled as a <Kind>:
strict decoding error: unknown field "spec.foo"`` for create, update and merge patches, and
``.spec.foo: field not declared in schema`` for server-side apply.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from emulators.azure.kube import resources as res
from emulators.azure.kube.errors import KubeError, bad_request
from emulators.azure.kube.protobuf import Field, table
from emulators.azure.kube.protofields import KINDS

Obj = dict[str, Any]
_TOP = ("apiVersion", "kind", "status")


@cache
def fields_by_name(message: str) -> dict[str, Field]:
    """JSON name -> field of ``message``, the fields of inline-embedded messages included."""
    out: dict[str, Field] = {}
    for field in table(message).values():
        if field.inline:
            out.update(fields_by_name(field.kind[1:]))
        else:
            out[field.name] = field
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _typed(value: Any, message: str, path: str, out: list[str]) -> None:
    if not isinstance(value, dict):
        return
    known = fields_by_name(message)
    for name, item in value.items():
        if name.startswith("$") or item is None:
            continue  # patch directives and deletions
        field = known.get(name)
        if field is None:
            out.append(_join(path, name))
        elif field.kind.startswith("@"):
            child = field.kind[1:]
            if field.is_map and isinstance(item, dict):
                for key, sub in item.items():
                    _typed(sub, child, f"{_join(path, name)}.{key}", out)
            elif field.repeated and isinstance(item, list):
                for i, sub in enumerate(item):
                    _typed(sub, child, f"{_join(path, name)}[{i}]", out)
            else:
                _typed(item, child, _join(path, name), out)


def _schema(value: Any, schema: Obj, path: str, out: list[str]) -> None:
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _schema(item, schema["items"], f"{path}[{i}]", out)
        return
    if not isinstance(value, dict):
        return
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    free = bool(schema.get("x-kubernetes-preserve-unknown-fields")) or extra is True
    for name, item in value.items():
        if name.startswith("$") or item is None:
            continue
        sub = props.get(name)
        if sub is None and isinstance(extra, dict):
            sub = extra
        if sub is not None:
            _schema(item, sub, _join(path, name), out)
        elif name == "metadata" and schema.get("x-kubernetes-embedded-resource"):
            _typed(item, "ObjectMeta", _join(path, name), out)
        elif not (free or (schema.get("x-kubernetes-embedded-resource") and name in ("apiVersion", "kind"))):
            out.append(_join(path, name))


def unknown_fields(rtype: res.ResourceType, version: str, body: Any, crd: Obj | None) -> list[str]:
    """Paths (``spec.template.spec.containers[0].foo``) of the fields of ``body`` its kind does
    not declare; empty when the kind has no table or schema to check against."""
    if not isinstance(body, dict):
        return []
    out: list[str] = []
    _typed(body.get("metadata"), "ObjectMeta", "metadata", out)
    rest = {k: v for k, v in body.items() if k not in (*_TOP, "metadata")}
    if crd is not None:
        entry = res.crd_version(crd, version) or {}
        schema = (entry.get("schema") or {}).get("openAPIV3Schema")
        if isinstance(schema, dict):
            _schema(rest, schema, "", out)
        return out
    message = KINDS.get((rtype.api_version(version), rtype.kind))
    if message is None:
        return []
    _typed(rest, message, "", out)
    return out


def check(
    directive: str | None, rtype: res.ResourceType, version: str, body: Any, crd: Obj | None, *, apply: bool
) -> None:
    """400 when ``directive`` is ``Strict`` and ``body`` holds fields its kind does not declare."""
    if (directive or "").lower() != "strict":
        return
    unknown = unknown_fields(rtype, version, body, crd)
    if not unknown:
        return
    if apply:
        listed = ", ".join(f".{p}: field not declared in schema" for p in unknown)
        raise KubeError(
            400,
            "BadRequest",
            f"failed to create typed patch object ({rtype.group}/{version}, Kind={rtype.kind}): {listed}",
        )
    listed = ", ".join(f'unknown field "{p}"' for p in unknown)
    raise bad_request(
        f'{rtype.kind} in version "{version}" cannot be handled as a {rtype.kind}: strict decoding error: {listed}'
    )
