"""Validation of objects: structural-schema validation of custom resources, names, metadata.

Custom resources are handled the way the API server handles a structural schema
(``apiextensions.k8s.io/v1``), in three steps against ``spec.versions[].schema.openAPIV3Schema``
of the CRD as stored in that emulated cluster:

1. **Prune and default** (:func:`prune`): fields the schema does not specify are dropped
   (not rejected), unless ``x-kubernetes-preserve-unknown-fields`` keeps them (or
   ``x-kubernetes-embedded-resource`` keeps ``apiVersion``/``kind``/``metadata``); ``null``
   for a field that is not ``nullable`` is dropped; a missing property with a ``default``
   gets it. ``metadata`` at the root is left to :func:`check_metadata`.
2. **Validate** with ``jsonschema`` (Draft 4, whose boolean ``exclusiveMinimum`` matches
   OpenAPI 3.0) on a translated schema: ``x-kubernetes-int-or-string`` becomes
   ``type: [integer, string]``, ``nullable`` adds ``null``, ``format`` is not checked,
   descriptions and other ``x-kubernetes-*`` extensions are dropped. CEL rules
   (``x-kubernetes-validations``) are not evaluated.
3. Errors become 422 ``Invalid`` Status causes in the API server's words, e.g.
   ``spec.workerGroupSpecs[0].replicas: Invalid value: "string": spec.workerGroupSpecs[0].replicas
   in body must be of type integer: "string"``.

Translated validators are cached per (CRD uid, resourceVersion, version), so a CRD update
takes effect on the next request.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from typing import Any

import jsonschema

from emulators.azure.kube.errors import KubeError, field_invalid, field_required, invalid, render_value

_KEEP = (
    *("type", "required", "enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    *("minLength", "maxLength", "pattern", "minItems", "maxItems", "uniqueItems", "multipleOf"),
    *("minProperties", "maxProperties"),
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


# -- pruning and defaulting ---------------------------------------------------------------
def prune(value: Any, schema: dict[str, Any], *, root: bool = False) -> Any:
    """``value`` pruned and defaulted in place per ``schema``; returns it (or a replacement)."""
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if root and key in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(key) if props is not None else None
            if sub is None and isinstance(extra, dict):
                sub = extra
            if sub is not None:
                if value[key] is None and not sub.get("nullable"):
                    del value[key]
                else:
                    value[key] = prune(value[key], sub)
            elif embedded and key in ("apiVersion", "kind", "metadata"):
                continue
            elif not (preserve or extra is True):
                del value[key]
        for key, sub in (props or {}).items():
            if key not in value and "default" in sub:
                value[key] = prune(copy.deepcopy(sub["default"]), sub)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune(v, items) for v in value]
    return value


# -- translation to JSON Schema ------------------------------------------------------------
def translate(schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema (Draft 4) equivalent of a structural OpenAPI v3 schema."""
    out: dict[str, Any] = {k: schema[k] for k in _KEEP if k in schema}
    if "properties" in schema:
        out["properties"] = {k: translate(v) for k, v in schema["properties"].items()}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = translate(extra)
    if isinstance(schema.get("items"), dict):
        out["items"] = translate(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [translate(s) for s in schema[key]]
    if isinstance(schema.get("not"), dict):
        out["not"] = translate(schema["not"])
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("anyOf", None)
        out["type"] = ["integer", "string"]
    if schema.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    if schema.get("x-kubernetes-preserve-unknown-fields") and "type" not in schema:
        out.pop("type", None)
    return out


def _field(path: Iterable[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), "null" if value is None else type(value).__name__)


def _cause(error: jsonschema.ValidationError) -> list[dict[str, str]]:
    path = list(error.absolute_path)
    field = _field(path)
    kind, instance = error.validator, error.instance
    expected: Any = error.validator_value
    if kind == "required":
        missing = [p for p in expected if isinstance(instance, dict) and p not in instance]
        return [field_required(_field([*path, p])) for p in missing]
    if kind == "type":
        names = ",".join(expected) if isinstance(expected, list) else str(expected)
        actual = _type_name(instance)
        return [field_invalid(field, actual, f'{field} in body must be of type {names}: "{actual}"')]
    if kind == "enum":
        supported = ", ".join(render_value(v) for v in expected)
        message = f"Unsupported value: {render_value(instance)}: supported values: {supported}"
        return [{"reason": "FieldValueNotSupported", "message": message, "field": field}]
    words = {
        "minimum": f"should be greater than or equal to {expected}",
        "maximum": f"should be less than or equal to {expected}",
        "pattern": f"should match '{expected}'",
        "minLength": f"should be at least {expected} chars long",
        "maxLength": f"may not be longer than {expected}",
        "minItems": f"should have at least {expected} items",
        "maxItems": f"must have at most {expected} items",
    }
    detail = f"{field} in body {words[kind]}" if kind in words else error.message
    return [field_invalid(field, instance if not isinstance(instance, (dict, list)) else "", detail)]


class SchemaCache:
    """Translated validators of CRD versions, keyed by (uid, resourceVersion, version)."""

    def __init__(self) -> None:
        self._validators: dict[tuple[str, str, str], tuple[dict[str, Any], jsonschema.Draft4Validator]] = {}

    def schema(self, crd: dict[str, Any], version: str) -> tuple[dict[str, Any], jsonschema.Draft4Validator] | None:
        """(structural schema, validator) of ``version``, or None when it declares no schema."""
        m = crd.get("metadata") or {}
        key = (str(m.get("uid")), str(m.get("resourceVersion")), version)
        hit = self._validators.get(key)
        if hit is not None:
            return hit
        entry = next((v for v in (crd.get("spec") or {}).get("versions") or [] if v.get("name") == version), None)
        raw = ((entry or {}).get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(raw, dict):
            return None
        # Drop stale entries of this CRD (older resourceVersions) before caching the new one.
        for stale in [k for k in self._validators if k[0] == key[0]]:
            del self._validators[stale]
        hit = (raw, jsonschema.Draft4Validator(translate(raw)))
        self._validators[key] = hit
        return hit

    def check(self, crd: dict[str, Any], version: str, obj: dict[str, Any], kind: str, group: str) -> dict[str, Any]:
        """Prune, default and validate ``obj`` in place; 422 Invalid on violations."""
        found = self.schema(crd, version)
        if found is None:
            return obj
        raw, validator = found
        prune(obj, raw, root=True)
        body = {k: v for k, v in obj.items() if k != "metadata"}
        causes: list[dict[str, str]] = []
        for error in sorted(validator.iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]):
            causes.extend(_cause(error))
        if causes:
            raise invalid(kind, group, str((obj.get("metadata") or {}).get("name", "")), _dedupe(causes))
        return obj


def _dedupe(causes: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for cause in causes:
        key = json.dumps(cause, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(cause)
    return out


# -- metadata -------------------------------------------------------------------------------
def name_error(name: str, rule: str) -> str | None:
    """Why ``name`` breaks ``rule`` (``subdomain``, ``label`` or ``dns1035``), or None."""
    if rule == "label":
        if len(name) > 63:
            return "must be no more than 63 characters"
        if not _DNS1123_LABEL.match(name):
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
    elif rule == "dns1035":
        if len(name) > 63:
            return "must be no more than 63 characters"
        if not _DNS1035_LABEL.match(name):
            return (
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
            )
    else:
        if len(name) > 253:
            return "must be no more than 253 characters"
        if not _DNS1123_SUBDOMAIN.match(name):
            return (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
    return None


# The API server's limit on metadata.annotations, keys and values together, in bytes
# (https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations/: "the total
# size of annotations (keys and values) must not exceed 256 KiB").
ANNOTATIONS_MAX_BYTES = 256 * 1024


def annotations_too_long(annotations: dict[str, str]) -> dict[str, str] | None:
    """The ``FieldValueTooLong`` cause when the annotations exceed :data:`ANNOTATIONS_MAX_BYTES`
    (UTF-8 bytes of every key and value summed), else None."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size <= ANNOTATIONS_MAX_BYTES:
        return None
    return {
        "reason": "FieldValueTooLong",
        "message": f"Too long: must have at most {ANNOTATIONS_MAX_BYTES} bytes",
        "field": "metadata.annotations",
    }


def check_metadata(obj: dict[str, Any], kind: str, group: str, name_rule: str) -> None:
    """422 when ``metadata`` is not an object, the name is missing or malformed, labels and
    annotations are not string maps, or the annotations exceed 262144 bytes (what a client-side
    ``kubectl apply`` of a large CRD runs into: its last-applied-configuration annotation)."""
    m = obj.get("metadata")
    name = str((m or {}).get("name") or "") if isinstance(m, dict) else ""
    if not isinstance(m, dict):
        raise invalid(kind, group, name, [field_required("metadata")])
    causes: list[dict[str, str]] = []
    if not name:
        causes.append(field_required("metadata.name", "name or generateName is required"))
    elif (why := name_error(name, name_rule)) is not None:
        causes.append(field_invalid("metadata.name", name, why))
    for field in ("labels", "annotations"):
        value = m.get(field)
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        ):
            causes.append(field_invalid(f"metadata.{field}", "", "must be a map of string keys to string values"))
        elif field == "annotations" and value and (too_long := annotations_too_long(value)) is not None:
            causes.append(too_long)
    if causes:
        raise invalid(kind, group, name, causes)


def require(condition: bool, kind: str, group: str, name: str, cause: dict[str, str]) -> None:
    """Raise 422 with ``cause`` unless ``condition``."""
    if not condition:
        raise invalid(kind, group, name, [cause])


def not_an_object(kind: str) -> KubeError:
    return KubeError(400, "BadRequest", f"the body of the request was not a JSON object describing a {kind}")
