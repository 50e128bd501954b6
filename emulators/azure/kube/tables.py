"""Server-side printing: ``meta.k8s.io/v1`` Tables (what ``kubectl get`` asks for) and
PartialObjectMetadata, chosen by the request's ``Accept`` header.

Contract, after https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables :

* a client that sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` (first in its
  list of media types, or after other Table/metadata forms) gets a ``Table`` instead of the
  object or list: ``columnDefinitions`` (name, type, format, description, priority -- priority
  1 columns are the ones ``kubectl get -o wide`` adds) and one row per object, each with
  ``cells`` in column order and ``object`` -- a ``PartialObjectMetadata`` by default,
  the whole object with ``?includeObject=Object``, nothing with ``includeObject=None``;
* built-in kinds print the columns of the real API server's printers
  (:mod:`emulators.azure.kube.printers`); a custom resource prints ``Name``, then its CRD
  version's ``additionalPrinterColumns`` (simple JSONPath, evaluated here), or ``Name`` and
  ``Age`` when the CRD declares none, as
  https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns
  describes; other kinds print ``Name`` and ``Created At``;
* ``as=PartialObjectMetadata`` / ``as=PartialObjectMetadataList`` answer metadata only.

Cells of type ``date`` and the ``Age`` columns are rendered as the server does, as a
human-readable duration since the timestamp (``5m``, ``3h12m``), at the time of the request.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from emulators.azure.kube import printers
from emulators.azure.kube import resources as res
from emulators.azure.kube.printers import since

Obj = dict[str, Any]
META_GROUP = "meta.k8s.io"
NAME_COLUMN: Obj = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
AGE_COLUMN: Obj = {
    "name": "Age",
    "type": "date",
    "format": "",
    "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
    "priority": 0,
}
_CREATED_AT: Obj = {**AGE_COLUMN, "name": "Created At"}


@dataclass(frozen=True)
class Rendering:
    """What the client asked the body to be: ``Table`` or ``PartialObjectMetadata(List)``."""

    kind: str
    version: str

    @property
    def api_version(self) -> str:
        return f"{META_GROUP}/{self.version}"


def negotiate(accept: str | None) -> Rendering | None:
    """The first ``as=`` rendering of ``accept`` we serve, or None for the plain object.

    Media types are taken in order; a plain ``application/json`` (or ``*/*``) before any
    ``as=`` form means the plain object, as the server picks the client's first match."""
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if media not in ("application/json", "*/*", "application/*"):
            continue
        kind = params.get("as")
        if kind is None:
            return None
        served = kind in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList")
        if served and params.get("g") == META_GROUP and params.get("v") in ("v1", "v1beta1"):
            return Rendering(kind, params["v"])
    return None


# -- simple JSONPath (what additionalPrinterColumns use) ------------------------------------
_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+|\*)\]|\[\?\(@\.([\w.\-/]+)\s*==\s*(?:\"([^\"]*)\"|'([^']*)')\)\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Values at ``path``: ``.a.b``, ``.a[0]``, ``.a[*].b`` and ``.a[?(@.k=="v")].b``; a path
    outside this subset yields nothing (the cell is empty)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    text = text.removeprefix("$")
    values = [obj]
    pos = 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            return []
        pos = m.end()
        field, index, key, v1, v2 = m.groups()
        out: list[Any] = []
        for v in values:
            if field is not None and isinstance(v, dict) and field in v:
                out.append(v[field])
            elif index == "*" and isinstance(v, list):
                out.extend(v)
            elif index is not None and index != "*" and isinstance(v, list) and int(index) < len(v):
                out.append(v[int(index)])
            elif key is not None and isinstance(v, list):
                wanted = v1 if v1 is not None else v2
                out.extend(item for item in v if isinstance(item, dict) and _dig(item, key) == wanted)
        values = out
    return values


def _dig(obj: Obj, dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return None if value is None else str(value) if not isinstance(value, str) else value


def _cell(column_type: str, value: Any) -> Any:
    """A CRD column's cell as the apiextensions table convertor types it."""
    if column_type == "string":
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if column_type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if column_type == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        return since(value) if isinstance(value, str) else None
    return value


def crd_columns(crd: Obj | None, version: str) -> tuple[list[Obj], Callable[[Obj], list[Any]]]:
    """Column definitions and the row function of a custom resource at ``version``."""
    entry = (res.crd_version(crd, version) or {}) if crd else {}
    declared = entry.get("additionalPrinterColumns") or []
    if not declared:
        return [NAME_COLUMN, AGE_COLUMN], lambda o: [
            o["metadata"]["name"],
            since(o["metadata"].get("creationTimestamp")),
        ]
    columns = [NAME_COLUMN] + [
        {
            "name": str(c.get("name", "")),
            "type": str(c.get("type", "string")),
            "format": str(c.get("format", "")),
            "description": str(c.get("description", "")),
            "priority": int(c.get("priority") or 0),
        }
        for c in declared
    ]

    def row(obj: Obj) -> list[Any]:
        cells: list[Any] = [obj["metadata"]["name"]]
        for c in declared:
            found = jsonpath(obj, str(c.get("jsonPath", "")))
            cells.append(_cell(str(c.get("type", "string")), found[0]) if found else None)
        return cells

    return columns, row


def columns_for(rtype: res.ResourceType, crd: Obj | None, version: str) -> tuple[list[Obj], Callable[[Obj], list[Any]]]:
    """Column definitions and row function for any type."""
    if rtype.crd:
        return crd_columns(crd, version)
    printer = printers.PRINTERS.get(rtype.key)
    if printer is not None:
        return [NAME_COLUMN if c is printers.NAME else c for c in printer.columns], printer.row
    return [NAME_COLUMN, _CREATED_AT], lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")]


# -- bodies -----------------------------------------------------------------------------------
def partial(obj: Obj, api_version: str = "meta.k8s.io/v1") -> Obj:
    """``PartialObjectMetadata`` of an object."""
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj.get("metadata") or {}}


def table(
    rtype: res.ResourceType,
    crd: Obj | None,
    version: str,
    items: Iterable[Obj],
    list_meta: Obj,
    *,
    rendering: Rendering,
    include_object: str | None,
) -> Obj:
    """A Table of ``items`` (already rendered at ``version``)."""
    columns, row = columns_for(rtype, crd, version)
    include = include_object or "Metadata"
    rows = []
    for obj in items:
        entry: Obj = {"cells": row(obj)}
        conditions = printers.row_conditions(rtype, obj)
        if conditions:
            entry["conditions"] = conditions
        if include == "Object":
            entry["object"] = obj
        elif include == "Metadata":
            entry["object"] = partial(obj, rendering.api_version)
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": rendering.api_version,
        "metadata": dict(list_meta),
        "columnDefinitions": columns,
        "rows": rows,
    }


def render_list(
    rtype: res.ResourceType, crd: Obj | None, version: str, listed: Obj, rendering: Rendering, include: str | None
) -> Obj:
    """A list body (``{"metadata", "items"}``) as ``rendering`` asks."""
    if rendering.kind == "Table":
        return table(
            rtype, crd, version, listed["items"], listed["metadata"], rendering=rendering, include_object=include
        )
    return {
        "kind": "PartialObjectMetadataList",
        "apiVersion": rendering.api_version,
        "metadata": listed["metadata"],
        "items": [partial(o, rendering.api_version) for o in listed["items"]],
    }


def render_one(
    rtype: res.ResourceType, crd: Obj | None, version: str, obj: Obj, rendering: Rendering, include: str | None
) -> Obj:
    """A single object as ``rendering`` asks (a one-row Table for ``Table``)."""
    if rendering.kind == "Table":
        meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        return table(rtype, crd, version, [obj], meta, rendering=rendering, include_object=include)
    return partial(obj, rendering.api_version)
