"""PATCH bodies: JSON merge patch, strategic merge patch, JSON patch, and server-side apply.

* ``application/merge-patch+json`` -- RFC 7386: objects merge recursively, ``null`` deletes
  a key, anything else (lists included) replaces.
* ``application/strategic-merge-patch+json`` -- :mod:`emulators.azure.kube.strategic`: lists
  merge by the built-in kinds' patch merge keys, with the ``$patch``, ``$setElementOrder``,
  ``$deleteFromPrimitiveList`` and ``$retainKeys`` directives.
* ``application/json-patch+json`` -- RFC 6902 (add, remove, replace, move, copy, test).
* ``application/apply-patch+yaml`` -- server-side apply. Each field manager's applied field
  set is kept in ``metadata.managedFields`` (``operation: Apply``, ``fieldsType: FieldsV1``;
  lists count as atomic leaves). Applying merges the configuration into the live object,
  removes fields this manager applied before but no longer does (unless another manager
  also applies them), and reports a conflict when another Apply manager owns a field with a
  different value, unless ``force=true``. Managers of Update operations are not tracked.
"""

from __future__ import annotations

from typing import Any

from emulators.azure.kube import strategic
from emulators.azure.kube.errors import KubeError
from emulators.azure.kube.objects import clone

Obj = dict[str, Any]
_UNTRACKED_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge of ``patch`` into ``target`` (neither is mutated)."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Obj, patch: Any) -> Obj:
    """Strategic merge patch of a built-in object (see :mod:`emulators.azure.kube.strategic`)."""
    return strategic.strategic_merge_patch(target, patch)


# -- RFC 6902 -----------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise KubeError(422, "Invalid", f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if index > len(parent) or index < 0:
            raise IndexError(last)
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        return parent.pop(int(parts[-1]))
    return parent.pop(parts[-1])


def json_patch(target: Obj, operations: Any) -> Obj:
    """Apply RFC 6902 ``operations``; a failing operation raises 422 (as the API server does)."""
    if not isinstance(operations, list):
        raise KubeError(400, "BadRequest", "json patch must be a list of operations")
    doc: Any = clone(target)
    for op in operations:
        try:
            kind, path = op["op"], _pointer(op["path"])
            if kind == "add":
                doc = _add(doc, path, clone(op["value"]))
            elif kind == "remove":
                _remove(doc, path)
            elif kind == "replace":
                value = clone(op["value"])
                if not path:
                    doc = value
                else:
                    parent = _walk(doc, path[:-1])
                    if isinstance(parent, list):
                        parent[int(path[-1])] = value
                    elif path[-1] in parent:
                        parent[path[-1]] = value
                    else:
                        raise KeyError(path[-1])
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = clone(_walk(doc, source))
                if kind == "move":
                    _remove(doc, source)
                doc = _add(doc, path, value)
            elif kind == "test":
                if _walk(doc, path) != op.get("value"):
                    raise KubeError(422, "Invalid", f"testing value {op['path']} failed")
            else:
                raise KubeError(422, "Invalid", f"Unexpected kind: {kind}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise KubeError(
                422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
            ) from None
    if not isinstance(doc, dict):
        raise KubeError(422, "Invalid", "json patch result is not an object")
    return doc


# -- server-side apply ----------------------------------------------------------------------
def field_set(config: Any, *, top: bool = True) -> dict[str, Any]:
    """FieldsV1 of an applied configuration: ``{"f:spec": {"f:replicas": {}}}``."""
    if not isinstance(config, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        if top and key in ("apiVersion", "kind"):
            continue
        if top and key == "metadata" and isinstance(value, dict):
            sub = {k: v for k, v in value.items() if k not in _UNTRACKED_META}
            if sub:
                out["f:metadata"] = field_set(sub, top=False)
            continue
        out[f"f:{key}"] = field_set(value, top=False) if isinstance(value, dict) and value else {}
    return out


def _paths(fields: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Leaf paths of a FieldsV1 set."""
    out: set[tuple[str, ...]] = set()
    for key, sub in fields.items():
        path = (*prefix, key[2:])
        if isinstance(sub, dict) and sub:
            out |= _paths(sub, path)
        else:
            out.add(path)
    return out


def _get(obj: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return False, None
        obj = obj[part]
    return True, obj


def _delete(obj: Any, path: tuple[str, ...]) -> None:
    parents = []
    for part in path[:-1]:
        if not isinstance(obj, dict) or part not in obj:
            return
        parents.append((obj, part))
        obj = obj[part]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    # Drop maps the removal left empty, as the apply merge does.
    for parent, part in reversed(parents):
        if parent[part] == {}:
            del parent[part]
        else:
            break


def _deep_merge(live: Any, config: Any) -> Any:
    """``config`` merged into ``live`` in place (both are private copies of the caller's)."""
    if isinstance(live, dict) and isinstance(config, dict):
        for key, value in config.items():
            live[key] = _deep_merge(live.get(key), value)
        return live
    return config


def apply(live: Obj, config: Obj, manager: str, *, force: bool, api_version: str, timestamp: str) -> Obj:
    """Merge ``config`` applied by ``manager`` into ``live``; the new object (``live`` untouched).

    Raises 409 Conflict naming each conflicting field unless ``force``.
    """
    managed: list[dict[str, Any]] = list(clone((live.get("metadata") or {}).get("managedFields") or []))
    new_fields = field_set(config)
    new_paths = _paths(new_fields)
    others: dict[tuple[str, ...], str] = {}
    previous: set[tuple[str, ...]] = set()
    for entry in managed:
        paths = _paths(entry.get("fieldsV1") or {})
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            previous = paths
        elif entry.get("operation") == "Apply":
            for p in paths:
                others[p] = str(entry.get("manager"))
    conflicts = []
    for path in sorted(new_paths):
        owner = others.get(path)
        if owner is None:
            continue
        live_has, live_value = _get(live, path)
        _, new_value = _get(config, path)
        if live_has and live_value != new_value:
            conflicts.append((owner, path))
    if conflicts and not force:
        causes = [
            {"reason": "FieldManagerConflict", "message": f'conflict with "{o}"', "field": "." + ".".join(p)}
            for o, p in conflicts
        ]
        plural = "conflicts" if len(conflicts) > 1 else "conflict"
        listed = "\n".join(f'- conflict with "{o}": .{".".join(p)}' for o, p in conflicts)
        raise KubeError(409, "Conflict", f"Apply failed with {len(conflicts)} {plural}: {listed}", {"causes": causes})
    result: Obj = clone(live)
    for path in sorted(previous - new_paths, key=len, reverse=True):
        if path not in others:
            _delete(result, path)
    result = dict(_deep_merge(result, clone(config)))
    if force and conflicts:
        # Forced fields move to this manager: drop them from the others' sets.
        taken = {p for _, p in conflicts}
        for entry in managed:
            if entry.get("manager") != manager:
                entry["fieldsV1"] = _without(entry.get("fieldsV1") or {}, taken)
    managed = [e for e in managed if not (e.get("manager") == manager and e.get("operation") == "Apply")]
    managed.append(
        {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": api_version,
            "time": timestamp,
            "fieldsType": "FieldsV1",
            "fieldsV1": new_fields,
        }
    )
    result.setdefault("metadata", {})["managedFields"] = [e for e in managed if e.get("fieldsV1")]
    return result


def _without(fields: dict[str, Any], taken: set[tuple[str, ...]], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in fields.items():
        path = (*prefix, key[2:])
        if path in taken:
            continue
        if isinstance(sub, dict) and sub:
            kept = _without(sub, taken, path)
            if kept:
                out[key] = kept
        else:
            out[key] = sub
    return out
