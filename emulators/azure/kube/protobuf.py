"""Request bodies in Kubernetes' protobuf encoding, decoded into the JSON form the store keeps.

Typed clients (kubectl's ``create namespace|configmap|secret|deployment|job|...``) send
``Content-Type: application/vnd.kubernetes.protobuf``. The body is the 4-byte magic
``k8s\\x00`` followed by a ``runtime.Unknown`` message: ``typeMeta`` (apiVersion, kind),
``raw`` (the typed message's bytes), ``contentEncoding``, ``contentType``. See
https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding.

:func:`decode_body` walks the protobuf wire format (varint, 64-bit, length-delimited, 32-bit
fields; https://protobuf.dev/programming-guides/encoding/) with the field tables of
:mod:`emulators.azure.kube.protofields`, and builds the object a JSON client would have sent:

* Go writes every non-pointer field, zero or not; JSON clients leave zero values out
  (``omitempty``). So zero scalars and empty messages of non-pointer fields are dropped, and
  those of pointer fields (``!`` in the tables: ``replicas: 0``, ``suspend: false``) kept.
* ``Time`` becomes an RFC 3339 string, ``Quantity`` its string, ``IntOrString`` an int or
  a string, ``bytes`` base64, ``RawExtension``/``FieldsV1`` the JSON they hold; maps are
  ``{key: value}`` objects.
* Go structs embedded inline (``Volume``'s ``VolumeSource``, a ``ConfigMapKeySelector``'s
  ``LocalObjectReference``) are nested messages in protobuf and merged into their parent here.
* Fields the tables do not know are skipped, as a newer server's fields are by an older client.

A kind without a table (custom resources never come as protobuf; built-in kinds the emulator
does not decode) is refused with 415 UnsupportedMediaType, naming the media types accepted.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from emulators.azure.kube.errors import KubeError, bad_request
from emulators.azure.kube.protofields import KINDS, MESSAGES

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_SCALARS = {"s": "", "i": 0, "b": False}


@dataclass(frozen=True)
class Field:
    """One field of a message table: JSON name, scalar/special code or ``@Message``, flags."""

    name: str
    kind: str  # "s", "i", "b", "y", "d", "T", "q", "n", "r", "D" or "@<Message>"
    repeated: bool = False
    pointer: bool = False
    is_map: bool = False
    inline: bool = False


def _parse_field(token: str) -> tuple[int, Field]:
    name, _, rest = token.partition("=")
    digits = len(rest) - len(rest.lstrip("0123456789"))
    number, rest = int(rest[:digits]), rest[digits:]
    repeated, pointer, inline = rest.endswith("*"), rest.endswith("!"), rest.endswith("^")
    rest = rest.rstrip("*!^")
    is_map = rest.startswith("{")
    kind = rest.lstrip("{") or "s"
    return number, Field(name, kind, repeated, pointer, is_map, inline)


@cache
def table(message: str) -> dict[int, Field]:
    """field number -> :class:`Field` of ``message`` (KeyError if it has no table)."""
    return dict(_parse_field(t) for t in MESSAGES[message].split())


def is_protobuf(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == MEDIA_TYPE


# -- wire format ------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field: an int for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield number, wire, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(buf: bytes) -> str | None:
    seconds = nanos = 0
    for number, _, value in fields(buf):
        if number == 1 and isinstance(value, int):
            seconds = _signed(value)
        elif number == 2 and isinstance(value, int):
            nanos = _signed(value)
    if not seconds and not nanos:
        return None
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z" if nanos else f"{stamp}Z"


def _special(kind: str, buf: bytes) -> Any:
    """Time, Quantity, IntOrString, RawExtension/FieldsV1 and Duration as JSON values."""
    if kind == "T":
        return _time(buf)
    parts = {number: value for number, _, value in fields(buf)}
    if kind == "q":
        raw = parts.get(1, b"")
        return raw.decode() if isinstance(raw, bytes) and raw else None
    if kind == "n":
        if parts.get(1) == 1:
            text = parts.get(3, b"")
            return text.decode() if isinstance(text, bytes) else ""
        number = parts.get(2, 0)
        return _signed(number) if isinstance(number, int) else 0
    if kind == "r":
        raw = parts.get(1, b"")
        return json.loads(raw) if isinstance(raw, bytes) and raw.strip() else None
    if kind == "D":
        nanos = parts.get(1, 0)
        return f"{_signed(nanos) / 1e9:g}s" if isinstance(nanos, int) else None
    raise ValueError(f"unknown field kind {kind}")


def _value(kind: str, wire: int, value: int | bytes) -> Any:
    if kind.startswith("@"):
        if not isinstance(value, bytes):
            raise ValueError("a message field is not length-delimited")
        return decode_message(kind[1:], value)
    if kind == "s":
        if not isinstance(value, bytes):
            raise ValueError("a string field is not length-delimited")
        return value.decode()
    if kind == "y":
        if not isinstance(value, bytes):
            raise ValueError("a bytes field is not length-delimited")
        return base64.b64encode(value).decode()
    if kind in ("i", "b"):
        if not isinstance(value, int):
            raise ValueError("an integer field is not a varint")
        return bool(value) if kind == "b" else _signed(value)
    if kind == "d":
        if not isinstance(value, bytes) or wire != 1:
            raise ValueError("a double field is not 64-bit")
        return struct.unpack("<d", value)[0]
    if not isinstance(value, bytes):
        raise ValueError("a message field is not length-delimited")
    return _special(kind, value)


def _repeated(field: Field, wire: int, value: int | bytes) -> list[Any]:
    """The item(s) one occurrence of a repeated field holds (packed varints hold several)."""
    if field.kind in ("i", "b") and wire == 2 and isinstance(value, bytes):
        out, pos = [], 0
        while pos < len(value):
            item, pos = _varint(value, pos)
            out.append(_value(field.kind, 0, item))
        return out
    return [_value(field.kind, wire, value)]


def _map_entry(field: Field, value: int | bytes) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise ValueError("a map entry is not length-delimited")
    key, item = "", _SCALARS.get(field.kind)
    if field.kind == "y":
        item = ""
    for number, wire, part in fields(value):
        if number == 1 and isinstance(part, bytes):
            key = part.decode()
        elif number == 2:
            item = _value(field.kind, wire, part)
    return key, item


def _is_zero(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value == 0
    return isinstance(value, (str, dict, list)) and len(value) == 0


def decode_message(message: str, buf: bytes) -> dict[str, Any]:
    """``buf`` (a serialized ``message``) as a JSON object."""
    spec = table(message)
    out: dict[str, Any] = {}
    pointers: set[str] = set()
    for number, wire, value in fields(buf):
        field = spec.get(number)
        if field is None:
            continue
        if field.pointer:
            pointers.add(field.name)
        if field.is_map:
            key, item = _map_entry(field, value)
            out.setdefault(field.name, {})[key] = item
        elif field.repeated:
            out.setdefault(field.name, []).extend(_repeated(field, wire, value))
        elif field.inline:
            embedded = _value(field.kind, wire, value)
            out.update(embedded)
            pointers.update(embedded)  # already filtered by the embedded message's own rules
        else:
            out[field.name] = _value(field.kind, wire, value)
    for name in [n for n, v in out.items() if _is_zero(v)]:
        if name not in pointers or out[name] is None:
            del out[name]
    return out


def unsupported(kind: str) -> KubeError:
    """415 for a protobuf body this server does not decode."""
    return KubeError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json, application/yaml (this emulated API server decodes {MEDIA_TYPE} only for "
        f"built-in kinds kubectl creates; not for {kind or 'this body'})",
        {},
    )


def _bytes(value: int | bytes | None) -> bytes:
    return value if isinstance(value, bytes) else b""


def decode_body(raw: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body (400 if malformed, 415 if its kind has no table)."""
    if not raw.startswith(MAGIC):
        raise bad_request("the protobuf request body does not start with the Kubernetes magic number")
    try:
        envelope = {number: value for number, _, value in fields(raw[len(MAGIC) :])}
        type_meta = {n: v for n, _, v in fields(_bytes(envelope.get(1)))}
        api_version, kind = _bytes(type_meta.get(1)).decode(), _bytes(type_meta.get(2)).decode()
        if envelope.get(3):
            raise unsupported(f"content encoding {_bytes(envelope.get(3)).decode()!r}")
        message = KINDS.get((api_version, kind))
        if message is None:
            raise unsupported(f"{kind} ({api_version})" if kind else "")
        obj = decode_message(message, _bytes(envelope.get(2)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the request body could not be decoded: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
