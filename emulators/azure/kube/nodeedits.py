"""What users change on nodes: cordon (``spec.unschedulable``), taints, labels, annotations.

Nodes are rendered from the fleet (:mod:`emulators.azure.kube.nodes`), so a user's change is
kept as an *override* per node -- a stored object of the internal type :data:`OVERRIDES`
(never served) holding what differs from the fleet's rendering: labels and annotations set or
removed, ``unschedulable``, and the whole taint list once the user edited it (the node's
``taints`` have no merge key, so a patch replaces the list, as kubectl taint expects). Every
read of a node applies its override; the scheduler sees it through :func:`adjust_view`.

As on AKS (https://learn.microsoft.com/azure/aks/use-node-taints and
https://kubernetes.io/docs/concepts/architecture/nodes/#manual-node-administration),
``kubectl cordon``/``uncordon``, ``kubectl taint nodes`` and ``kubectl label nodes`` are
allowed; a cordoned node also shows the ``node.kubernetes.io/unschedulable:NoSchedule`` taint
the node lifecycle controller adds
(https://kubernetes.io/docs/reference/labels-annotations-taints/#node-kubernetes-io-unschedulable).
The derived taints (that one and ``node.kubernetes.io/not-ready``) are never stored. Nodes
cannot be created or deleted through the API (the node pools own them). An override
outlives nothing: when its node leaves the fleet it is dropped on the next write or list.

Races: all on the event loop; a write compares with the latest rendering, and a stale
``metadata.resourceVersion`` in a replace is not checked (nodes have no stored version).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from emulators.azure.fleet import Node
from emulators.azure.kube import deviceplugin, patch
from emulators.azure.kube import errors as err
from emulators.azure.kube.nodes import NOT_READY_TAINT, node_object
from emulators.azure.kube.objects import ObjectStore, clone, now_iso
from emulators.azure.kube.scheduler import NodeView

Obj = dict[str, Any]
OVERRIDES = "emulator/node-overrides"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
_DERIVED = (UNSCHEDULABLE_TAINT, NOT_READY_TAINT["key"])
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def override_of(objects: ObjectStore, cluster: str, name: str) -> Obj | None:
    return objects.get(cluster, OVERRIDES, "", name)


def apply(node: Obj, override: Obj | None) -> Obj:
    """``node`` (a fresh rendering, mutated) with the user's changes and derived taints."""
    spec = node.setdefault("spec", {})
    m = node["metadata"]
    if override is not None:
        for field in ("labels", "annotations"):
            values = dict(m.get(field) or {})
            values.update(override.get(f"{field}Set") or {})
            for key in override.get(f"{field}Removed") or []:
                values.pop(key, None)
            m[field] = values
        if override.get("unschedulable"):
            spec["unschedulable"] = True
        if "taints" in override:
            derived = [t for t in spec.get("taints") or [] if t.get("key") in _DERIVED]
            spec["taints"] = [*clone(override["taints"]), *derived]
    if spec.get("unschedulable"):
        taints = spec.setdefault("taints", [])
        if not any(t.get("key") == UNSCHEDULABLE_TAINT for t in taints):
            stamp = (override or {}).get("cordonedAt") or now_iso()
            taints.insert(0, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": stamp})
    if not spec.get("taints"):
        spec.pop("taints", None)
    return node


def render(objects: ObjectStore, cluster: str, node: Node, missing: Sequence[str] = ()) -> Obj:
    """The node as served: the fleet's rendering plus its override. ``missing``: the config's
    ``missing_images`` (a device plugin with such an image advertises no GPUs)."""
    return apply(_rendered(objects, cluster, node, missing), override_of(objects, cluster, node.name))


def _rendered(objects: ObjectStore, cluster: str, node: Node, missing: Sequence[str] = ()) -> Obj:
    gpus = deviceplugin.advertised_gpus(node, deviceplugin.plugins(objects, cluster, missing)) if node.gpus else 0
    return node_object(cluster, node, objects.resource_version, gpus=gpus)


def _diff(base: dict[str, str], new: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    changed = {k: v for k, v in new.items() if base.get(k) != v}
    return changed, sorted(k for k in base if k not in new)


def _check(node: Obj, name: str) -> None:
    m = node.get("metadata")
    if not isinstance(m, dict) or m.get("name", name) != name:
        raise err.bad_request(f"the name of the object does not match the name on the URL ({name})")
    spec = node.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise err.bad_request("spec must be an object")
    causes = []
    for i, taint in enumerate((spec or {}).get("taints") or []):
        if not isinstance(taint, dict) or not taint.get("key"):
            causes.append(err.field_required(f"spec.taints[{i}].key"))
        elif taint.get("effect") not in _EFFECTS:
            causes.append(
                err.field_invalid(
                    f"spec.taints[{i}].effect",
                    taint.get("effect"),
                    f"Unsupported value: must be one of {', '.join(_EFFECTS)}",
                )
            )
    if causes:
        raise err.invalid("Node", "", name, causes)


def write(
    objects: ObjectStore, cluster: str, node: Node, content_type: str | None, body: Any, missing: Sequence[str] = ()
) -> Obj:
    """A PATCH (``content_type`` set) or PUT of the node; the node as served afterwards."""
    base = _rendered(objects, cluster, node, missing)
    current = apply(clone(base), override_of(objects, cluster, node.name))
    if content_type is None:
        if not isinstance(body, dict):
            raise err.bad_request("the request body must be a Node object")
        new = clone(body)
    else:
        kind = content_type.split(";")[0].strip().lower()
        if kind == "application/merge-patch+json":
            new = patch.merge_patch(current, body)
        elif kind == "application/strategic-merge-patch+json":
            new = patch.strategic_merge_patch(current, body)
        elif kind == "application/json-patch+json":
            new = patch.json_patch(current, body)
        else:
            raise err.unsupported_media_type(kind)
    _check(new, node.name)
    m, spec = new.get("metadata") or {}, new.get("spec") or {}
    labels_set, labels_removed = _diff(base["metadata"].get("labels") or {}, m.get("labels") or {})
    notes_set, notes_removed = _diff(base["metadata"].get("annotations") or {}, m.get("annotations") or {})
    override: Obj = {"metadata": {"name": node.name}}
    for key, value in (
        ("labelsSet", labels_set),
        ("labelsRemoved", labels_removed),
        ("annotationsSet", notes_set),
        ("annotationsRemoved", notes_removed),
    ):
        if value:
            override[key] = value
    taints = [t for t in spec.get("taints") or [] if t.get("key") not in _DERIVED]
    if taints != [t for t in (base["spec"].get("taints") or []) if t.get("key") not in _DERIVED]:
        override["taints"] = taints
    old = override_of(objects, cluster, node.name)
    if spec.get("unschedulable"):
        override["unschedulable"] = True
        override["cordonedAt"] = (old or {}).get("cordonedAt") or now_iso()
    comparable = {k: v for k, v in (old or {}).items() if k != "metadata"}
    if comparable != {k: v for k, v in override.items() if k != "metadata"}:
        if len(override) == 1:
            if old is not None:
                objects.delete(cluster, OVERRIDES, "", node.name)
        else:
            objects.put(cluster, OVERRIDES, override)
    return render(objects, cluster, node, missing)


def forget_missing(objects: ObjectStore, cluster: str, present: set[str]) -> None:
    """Drop overrides of nodes the fleet no longer has."""
    for override in list(objects.iter_type(cluster, OVERRIDES)):
        if override["metadata"]["name"] not in present:
            objects.delete(cluster, OVERRIDES, "", override["metadata"]["name"])


def adjust_view(objects: ObjectStore, cluster: str, view: NodeView) -> None:
    """The scheduler's view of a node with its override: taints and cordon."""
    override = override_of(objects, cluster, view.name)
    if override is None:
        return
    if "taints" in override:
        derived = [t for t in view.taints if t.get("key") in _DERIVED]
        view.taints = [*clone(override["taints"]), *derived]
    view.unschedulable = bool(override.get("unschedulable"))
