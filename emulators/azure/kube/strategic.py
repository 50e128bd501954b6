"""Strategic merge patch (``application/strategic-merge-patch+json``) of built-in objects.

Follows https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/
and the design in
https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md:

* Maps merge recursively; ``null`` deletes a key; scalars replace.
* A list field's patch strategy comes from the Go type's ``patchStrategy``/``patchMergeKey``
  tags (:data:`emulators.azure.kube.protofields.PATCH`): ``merge`` with a key (containers by
  ``name``, ports by ``containerPort``, volumeMounts by ``mountPath``...) merges items with
  equal keys and appends new ones; ``merge`` without a key (``finalizers``) makes the union of
  primitive values; any other list (no tag: ``tolerations``, ``args``...) is replaced.
  ``patchStrategy: replace`` on a map field replaces it whole.
* Directives: ``$patch: delete`` (a map field, or a list item by its merge key), ``$patch:
  replace`` (a map, or an item ``{"$patch": "replace"}`` in a list: the list becomes the
  other items), ``$setElementOrder/<list>`` (order of the merged list: listed items first in
  that order, then the others as they were), ``$deleteFromPrimitiveList/<list>``, and
  ``$retainKeys`` (after merging, only those keys stay: the ``retainKeys`` strategy of
  ``DeploymentSpec.strategy`` and of ``volumes`` items).

The object's ``apiVersion``/``kind`` picks the message that types each field; fields the
tables do not know (and kinds without a table) get the JSON-merge behaviour: maps merge,
lists replace. Custom resources never get here: the API server refuses a strategic merge
patch for them with 415, and kubectl then sends a JSON merge patch.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from emulators.azure.kube.errors import KubeError
from emulators.azure.kube.objects import clone
from emulators.azure.kube.protobuf import Field, table
from emulators.azure.kube.protofields import KINDS, PATCH

Obj = dict[str, Any]
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


@cache
def _fields(message: str) -> dict[str, tuple[Field, str]]:
    """JSON name -> (field, message declaring it), inline-embedded messages' fields included."""
    out: dict[str, tuple[Field, str]] = {}
    for field in table(message).values():
        if field.inline:
            out.update(_fields(field.kind[1:]))
        else:
            out[field.name] = (field, message)
    return out


def _meta(message: str | None, name: str) -> tuple[str | None, str, str]:
    """(message of the field's values or None, patch strategies, merge key) of ``name``."""
    if message is None:
        return None, "", ""
    found = _fields(message).get(name)
    if found is None:
        return None, "", ""
    field, owner = found
    strategy, _, key = PATCH.get(f"{owner}.{name}", "").partition(":")
    child = field.kind[1:] if field.kind.startswith("@") and not field.is_map else None
    return child, strategy, key


def _strip(value: Any) -> Any:
    """``value`` without directives (keys starting with ``$``, items that are only a directive)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value if not (isinstance(v, dict) and "$patch" in v and len(v) == 1)]
    return value


def _identity(item: Any, key: str) -> str:
    return json.dumps(item.get(key) if key and isinstance(item, dict) else item, sort_keys=True)


def _reorder(items: list[Any], order: list[Any], key: str) -> list[Any]:
    position = {_identity(o, key): i for i, o in enumerate(order)}
    listed = sorted((x for x in items if _identity(x, key) in position), key=lambda x: position[_identity(x, key)])
    return listed + [x for x in items if _identity(x, key) not in position]


def _merge_list(original: Any, patch: list[Any], child: str | None, strategy: str, key: str) -> list[Any]:
    if "merge" not in strategy.split(","):
        return list(_strip(patch))
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [_strip(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    out = [clone(x) for x in original] if isinstance(original, list) else []
    if not key:
        out.extend(clone(x) for x in patch if x not in out)
        return out
    for item in patch:
        if not isinstance(item, dict):
            raise KubeError(400, "BadRequest", f"a list merged by {key!r} holds a non-object item: {item!r}")
        if key not in item:
            raise KubeError(400, "BadRequest", f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append(merge({}, item, child))
        else:
            out[index] = merge(out[index], item, child)
    return out


def merge(original: Obj, patch: Obj, message: str | None) -> Obj:
    """``patch`` applied to ``original`` (a ``message``, or untyped when None); neither mutated."""
    if patch.get("$patch") == "replace":
        return dict(_strip(patch))
    result: Obj = clone(original)
    for name, value in patch.items():
        if name.startswith("$"):
            continue
        child, strategy, key = _meta(message, name)
        if value is None:
            result.pop(name, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(name, None)
            elif "replace" in strategy.split(","):
                result[name] = _strip(value)
            else:
                current = result.get(name)
                result[name] = merge(current if isinstance(current, dict) else {}, value, child)
        elif isinstance(value, list):
            result[name] = _merge_list(result.get(name), value, child, strategy, key)
        else:
            result[name] = value
    for directive, value in patch.items():
        if directive.startswith(_DELETE_PRIMITIVE) and isinstance(value, list):
            name = directive[len(_DELETE_PRIMITIVE) :]
            if isinstance(result.get(name), list):
                result[name] = [x for x in result[name] if x not in value]
        elif directive.startswith(_ORDER) and isinstance(value, list):
            name = directive[len(_ORDER) :]
            if isinstance(result.get(name), list):
                result[name] = _reorder(result[name], value, _meta(message, name)[2])
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def strategic_merge_patch(target: Obj, patch: Any) -> Obj:
    """``patch`` applied to the built-in object ``target`` (400 if the patch is not an object)."""
    if not isinstance(patch, dict):
        raise KubeError(400, "BadRequest", "a strategic merge patch must be a JSON object")
    message = KINDS.get((str(target.get("apiVersion", "")), str(target.get("kind", ""))))
    return merge(target, patch, message)
