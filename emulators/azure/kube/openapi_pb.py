"""The OpenAPI v2 document in the protobuf form client-go asks for.

client-go's ``OpenAPISchema`` (what kubectl reads for ``kubectl explain
--output=plaintext-openapiv2`` and for client-side validation when the v3 documents do not
say that the server validates fields) requests ``/openapi/v2`` with only
``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and decodes the body
as gnostic's ``openapi.v2.Document`` message (https://github.com/google/gnostic-models,
``openapiv2/OpenAPIv2.proto``; the API server's side:
https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-v2).

:func:`encode_document` writes the JSON document of :func:`emulators.azure.kube.openapi.v2_document`
in that encoding: definitions (schemas with their ``x-`` extensions as ``NamedAny`` whose
``yaml`` holds the value as JSON, which is YAML), and paths with their operations'
parameters, responses and extensions. Schema keywords Swagger 2.0 lacks (``anyOf``,
``oneOf``, ``not``, ``nullable``) are left out, as the API server leaves them out of v2.
"""

from __future__ import annotations

import json
import struct
from typing import Any

MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
# What the response says it is: "@" is not allowed in a media type (Go's mime parser, which
# client-go runs on every response's Content-Type, refuses it), so the answer names it with ".".
RESPONSE_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
Obj = dict[str, Any]


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _str(number: int, text: str) -> bytes:
    return _bytes(number, text.encode()) if text else b""


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(int(value))


def _bool(number: int, value: bool) -> bytes:
    return _int(number, 1) if value else b""


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + struct.pack("<d", float(value))


def _any(number: int, value: Any) -> bytes:
    """A gnostic ``Any`` (its ``yaml`` field, 2) holding ``value``."""
    return _bytes(number, _str(2, json.dumps(value)))


def _extensions(number: int, obj: Obj) -> bytes:
    """``NamedAny`` entries of the ``x-`` keys of ``obj``."""
    return b"".join(_bytes(number, _str(1, key) + _any(2, value)) for key, value in obj.items() if key.startswith("x-"))


_SCHEMA_DOUBLES = {"multipleOf": 6, "maximum": 7, "minimum": 9}
_SCHEMA_INTS = {"maxLength": 11, "minLength": 12, "maxItems": 14, "minItems": 15}
_SCHEMA_INTS |= {"maxProperties": 17, "minProperties": 18}
_SCHEMA_BOOLS = {"exclusiveMaximum": 8, "exclusiveMinimum": 10, "uniqueItems": 16, "readOnly": 27}


def schema(s: Obj) -> bytes:
    """A gnostic ``Schema`` message."""
    out = [_str(1, s.get("$ref", "")), _str(2, s.get("format", "")), _str(3, s.get("title", ""))]
    out.append(_str(4, s.get("description", "")))
    if "default" in s:
        out.append(_any(5, s["default"]))
    out += [_double(n, s[k]) for k, n in _SCHEMA_DOUBLES.items() if isinstance(s.get(k), (int, float))]
    out += [_int(n, s[k]) for k, n in _SCHEMA_INTS.items() if isinstance(s.get(k), int)]
    out += [_bool(n, s[k]) for k, n in _SCHEMA_BOOLS.items() if isinstance(s.get(k), bool)]
    out.append(_str(13, s.get("pattern", "")))
    out += [_str(19, r) for r in s.get("required") or []]
    out += [_any(20, v) for v in s.get("enum") or []]
    extra = s.get("additionalProperties")
    if isinstance(extra, dict):
        out.append(_bytes(21, _bytes(1, schema(extra))))
    elif isinstance(extra, bool):
        out.append(_bytes(21, _varint(2 << 3) + _varint(int(extra))))
    kind = s.get("type")
    if kind:
        out.append(_bytes(22, b"".join(_str(1, t) for t in (kind if isinstance(kind, list) else [kind]))))
    items = s.get("items")
    if isinstance(items, dict):
        out.append(_bytes(23, _bytes(1, schema(items))))
    out += [_bytes(24, schema(a)) for a in s.get("allOf") or [] if isinstance(a, dict)]
    props = s.get("properties")
    if isinstance(props, dict) and props:
        named = b"".join(_bytes(1, _str(1, k) + _bytes(2, schema(v))) for k, v in props.items())
        out.append(_bytes(25, named))
    out.append(_extensions(31, s))
    return b"".join(out)


def _parameter(p: Obj) -> bytes:
    """A ``ParametersItem`` holding a body, query or path parameter."""
    if p.get("in") == "body":
        body = _str(2, p["name"]) + _str(3, "body") + _bool(4, bool(p.get("required")))
        body += _bytes(5, schema(p.get("schema") or {}))
        return _bytes(1, _bytes(1, body))
    fields = _bool(1, bool(p.get("required"))) + _str(2, p["in"]) + _str(4, p["name"])
    if p["in"] == "path":
        non_body = _bytes(4, fields + _str(5, p.get("type", "string")))
    else:
        non_body = _bytes(3, fields + _str(6, p.get("type", "string")))
    return _bytes(1, _bytes(2, non_body))


def _operation(op: Obj) -> bytes:
    out = [_str(5, op.get("operationId", ""))]
    out += [_str(6, t) for t in op.get("produces") or []]
    out += [_str(7, t) for t in op.get("consumes") or []]
    out += [_bytes(8, _parameter(p)) for p in op.get("parameters") or []]
    codes = b""
    for code, response in (op.get("responses") or {}).items():
        body = _str(1, response.get("description", ""))
        if isinstance(response.get("schema"), dict):
            body += _bytes(2, _bytes(1, schema(response["schema"])))
        codes += _bytes(1, _str(1, code) + _bytes(2, _bytes(1, body)))
    out.append(_bytes(9, codes))
    out.append(_extensions(13, op))
    return b"".join(out)


_VERBS = {"get": 2, "put": 3, "post": 4, "delete": 5, "patch": 8}


def _path_item(item: Obj) -> bytes:
    out = [_bytes(n, _operation(item[verb])) for verb, n in _VERBS.items() if isinstance(item.get(verb), dict)]
    out += [_bytes(9, _parameter(p)) for p in item.get("parameters") or []]
    return b"".join(out)


def encode_document(document: Obj) -> bytes:
    """The gnostic ``Document`` of a Swagger 2.0 JSON document."""
    info = document.get("info") or {}
    out = [
        _str(1, document.get("swagger", "2.0")),
        _bytes(2, _str(1, info.get("title", "")) + _str(2, info.get("version", ""))),
    ]
    paths = b"".join(_bytes(2, _str(1, p) + _bytes(2, _path_item(v))) for p, v in (document.get("paths") or {}).items())
    out.append(_bytes(8, paths))
    definitions = document.get("definitions") or {}
    out.append(_bytes(9, b"".join(_bytes(1, _str(1, k) + _bytes(2, schema(v))) for k, v in definitions.items())))
    return b"".join(out)
