"""The verbs of the Kubernetes API over :class:`ObjectStore`, independent of HTTP.

:class:`KubeAPI` implements create, get, list, replace, patch (merge, strategic, JSON patch,
server-side apply), delete and deletecollection for every resource type, with the API
server's rules:

* metadata: ``uid``, ``creationTimestamp``, ``generation`` (bumped when anything but
  ``metadata``/``status`` changes) and ``resourceVersion`` are the server's; ``generateName``
  is honoured; a replace or patch carrying a stale ``metadata.resourceVersion`` is a 409
  Conflict; an update that changes nothing keeps the resourceVersion.
* status subresource: for kinds that have one (built-ins, and custom resources whose CRD
  version declares ``subresources.status``) writes to the main resource keep the stored
  status and writes to ``/status`` change only the status.
* custom resources are pruned, defaulted and validated against the CRD version's schema
  (:mod:`emulators.azure.kube.validation`); a custom resource type whose CRD is absent is 404.
* deleting cascades to dependents (``ownerReferences``) unless ``propagationPolicy: Orphan``;
  deleting a namespace deletes everything in it.

Nodes are not stored: they are read from the fleet (:mod:`emulators.azure.kube.nodes`), with
what users changed on them (:mod:`emulators.azure.kube.nodeedits`).
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from emulators.azure.fleet import Fleet
from emulators.azure.kube import errors as err
from emulators.azure.kube import kinds, nodeedits, patch
from emulators.azure.kube import resources as res
from emulators.azure.kube.objects import ObjectStore, clone, now_iso
from emulators.azure.kube.selectors import parse_field_selector, parse_label_selector
from emulators.azure.kube.validation import SchemaCache, check_metadata, not_an_object

Obj = dict[str, Any]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(n))


@dataclass(frozen=True)
class Target:
    """What a request addresses: a type (at a version) and optionally a namespace, name, subresource."""

    cluster: str
    rtype: res.ResourceType
    version: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""

    @property
    def kind_label(self) -> tuple[str, str]:
        return self.rtype.plural, self.rtype.group


@dataclass(frozen=True)
class ListOptions:
    label_selector: str | None = None
    field_selector: str | None = None
    limit: int = 0
    continue_token: str | None = None


class KubeAPI:
    """Verbs over one :class:`ObjectStore`, shared by every emulated cluster."""

    def __init__(self, objects: ObjectStore, fleet: Fleet) -> None:
        self.objects = objects
        self.fleet = fleet
        self.schemas = SchemaCache()
        self.ips = kinds.IpAllocator(objects)
        # The config's ``missing_images``, set by the service: a device plugin with such an
        # image advertises no GPUs on the nodes served here.
        self.missing_images: Callable[[], Sequence[str]] = lambda: ()

    # -- clusters and types ------------------------------------------------------------------
    def ensure_cluster(self, cluster: str) -> None:
        """Create the namespaces and the ``kubernetes`` service every cluster starts with."""
        if self.objects.get(cluster, res.NAMESPACES.key, "", "default") is not None:
            return
        for ns in DEFAULT_NAMESPACES:
            if self.objects.get(cluster, res.NAMESPACES.key, "", ns) is None:
                self.insert(cluster, res.NAMESPACES, {"metadata": {"name": ns}})
        service = {
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {"clusterIP": "10.0.0.1", "ports": [{"name": "https", "port": 443, "targetPort": 443}]},
        }
        self.insert(cluster, res.SERVICES, service)

    def crd_for(self, cluster: str, rtype: res.ResourceType) -> Obj | None:
        return self.objects.get(cluster, res.CRDS.key, "", rtype.crd) if rtype.crd else None

    def custom_types(self, cluster: str) -> list[res.ResourceType]:
        return [res.from_crd(crd) for crd in self.objects.iter_type(cluster, res.CRDS.key)]

    def resolve(self, cluster: str, group: str, version: str, plural: str) -> res.ResourceType:
        """The type served at ``/apis/{group}/{version}/{plural}`` (404 if none)."""
        found = res.builtin(group, version, plural)
        if found is not None:
            return found
        crd = self.objects.get(cluster, res.CRDS.key, "", f"{plural}.{group}")
        if crd is not None:
            rtype = res.from_crd(crd)
            if version in rtype.versions:
                return rtype
        raise err.resource_not_found()

    # -- reads -------------------------------------------------------------------------------
    def render(self, t: Target, obj: Obj) -> Obj:
        """The stored object as served at ``t.version`` (custom resources carry that apiVersion)."""
        if t.rtype.crd and obj.get("apiVersion") != t.rtype.api_version(t.version):
            return {**obj, "apiVersion": t.rtype.api_version(t.version)}
        return obj

    def get(self, t: Target) -> Obj:
        if t.rtype is res.NODES:
            node = next((n for n in self.fleet.nodes(t.cluster) if n.name == t.name), None)
            if node is None:
                raise err.not_found("nodes", "", t.name)
            return nodeedits.render(self.objects, t.cluster, node, self.missing_images())
        obj = self.objects.get(t.cluster, t.rtype.key, t.namespace, t.name)
        if obj is None:
            raise err.not_found(*t.kind_label, t.name)
        return self.render(t, obj)

    def list_objects(self, t: Target, opts: ListOptions) -> Obj:
        try:
            labels = parse_label_selector(opts.label_selector)
            fields = parse_field_selector(opts.field_selector)
        except ValueError as exc:
            raise err.bad_request(str(exc)) from None
        if t.rtype is res.NODES:
            missing = self.missing_images()
            items = [nodeedits.render(self.objects, t.cluster, n, missing) for n in self.fleet.nodes(t.cluster)]
        else:
            items = self.objects.select(
                t.cluster, t.rtype.key, t.namespace if t.rtype.namespaced and t.namespace else None
            )
        items = [o for o in items if labels((o.get("metadata") or {}).get("labels") or {}) and fields(o)]
        meta: Obj = {"resourceVersion": self.objects.resource_version}
        if opts.continue_token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(opts.continue_token)))
            except (ValueError, TypeError):
                raise err.KubeError(410, "Expired", "The provided continue parameter is too old or invalid") from None
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
        if opts.limit and len(items) > opts.limit:
            rest = len(items) - opts.limit
            items = items[: opts.limit]
            last = items[-1]["metadata"]
            token = json.dumps([last.get("namespace", ""), last["name"]]).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = rest
        return {
            "kind": t.rtype.list_kind,
            "apiVersion": t.rtype.api_version(t.version),
            "metadata": meta,
            "items": [self.render(t, o) for o in items],
        }

    # -- writes ------------------------------------------------------------------------------
    def insert(self, cluster: str, rtype: res.ResourceType, obj: Obj, *, version: str | None = None) -> Obj:
        """Store a new object made by the server itself (controllers, defaults): stamps the
        server's metadata and runs the kind's defaulting, but no admission checks."""
        obj["apiVersion"] = rtype.api_version(version)
        obj["kind"] = rtype.kind
        m = obj["metadata"]
        if not m.get("name") and m.get("generateName"):
            m["name"] = m["generateName"] + random_suffix()
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now_iso()
        m["generation"] = 1
        if rtype.crd is None:
            kinds.prepare_create(rtype, obj, cluster, self.ips)
        return self.objects.put(cluster, rtype.key, obj)

    def write(self, cluster: str, rkey: str, obj: Obj) -> Obj:
        """Store a changed version of an existing object made by the server (status updates);
        a write that changes nothing is skipped and the stored object returned."""
        m = obj["metadata"]
        old = self.objects.get(cluster, rkey, m.get("namespace", ""), m["name"])
        if old is not None and _same(old, obj):
            return old
        return self.objects.put(cluster, rkey, obj)

    def _check_namespace(self, t: Target) -> None:
        if t.rtype.namespaced and self.objects.get(t.cluster, res.NAMESPACES.key, "", t.namespace) is None:
            raise err.not_found("namespaces", "", t.namespace)

    def _admit(self, t: Target, obj: Obj, old: Obj | None) -> None:
        """Type checks shared by create and update: apiVersion/kind, metadata, schema."""
        if not isinstance(obj, dict):
            raise not_an_object(t.rtype.kind)
        kind = obj.get("kind")
        if kind is not None and kind != t.rtype.kind:
            raise err.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({t.rtype.kind})")
        obj["apiVersion"] = t.rtype.api_version(t.version)
        obj["kind"] = t.rtype.kind
        check_metadata(obj, t.rtype.kind, t.rtype.group, kinds.name_rule(t.rtype))
        if t.rtype.crd:
            crd = self.crd_for(t.cluster, t.rtype)
            if crd is None:
                raise err.resource_not_found()
            self.schemas.check(crd, t.version, obj, t.rtype.kind, t.rtype.group)
        elif old is None:
            kinds.prepare_create(t.rtype, obj, t.cluster, self.ips)
        elif t.subresource != "status":
            # (the kinds' update rules keep the stored status, which /status writes replace)
            kinds.prepare_update(t.rtype, old, obj, t.cluster, self.ips)

    def create(self, t: Target, body: Any, *, dry_run: bool = False) -> Obj:
        if t.rtype is res.NODES:
            raise err.method_not_allowed("nodes are managed by the node pools of the AKS cluster")
        if not isinstance(body, dict):
            raise not_an_object(t.rtype.kind)
        obj = clone(body)
        m = obj.get("metadata")
        if isinstance(m, dict):
            if not m.get("name") and m.get("generateName"):
                m["name"] = str(m["generateName"]) + random_suffix()
            if t.rtype.namespaced:
                if m.get("namespace") and m["namespace"] != t.namespace:
                    raise err.bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request"
                    )
                m["namespace"] = t.namespace
            else:
                m.pop("namespace", None)
            for server_field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "managedFields"):
                m.pop(server_field, None)
            m["generation"] = 1
            m["creationTimestamp"] = now_iso()
            m["uid"] = str(uuid.uuid4())
        if self._has_status(t):
            obj.pop("status", None)
        self._admit(t, obj, None)
        name = obj["metadata"]["name"]
        self._check_namespace(t)
        if self.objects.get(t.cluster, t.rtype.key, t.namespace if t.rtype.namespaced else "", name) is not None:
            raise err.already_exists(*t.kind_label, name)
        if dry_run:
            return self.render(t, obj)
        return self.render(t, self.objects.put(t.cluster, t.rtype.key, obj))

    def _has_status(self, t: Target) -> bool:
        if t.rtype.crd is None:
            return t.rtype.status_subresource
        crd = self.crd_for(t.cluster, t.rtype)
        return crd is not None and res.version_has_status(crd, t.version)

    def replace(self, t: Target, body: Any, *, dry_run: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise not_an_object(t.rtype.kind)
        old = self._existing(t)
        return self._update(t, old, clone(body), dry_run=dry_run)

    def _existing(self, t: Target) -> Obj:
        if t.rtype is res.NODES:
            raise err.method_not_allowed("nodes are managed by the node pools of the AKS cluster")
        old = self.objects.get(t.cluster, t.rtype.key, t.namespace, t.name)
        if old is None:
            raise err.not_found(*t.kind_label, t.name)
        return old

    def _update(self, t: Target, old: Obj, new: Obj, *, dry_run: bool) -> Obj:
        m = new.get("metadata")
        if not isinstance(m, dict):
            new["metadata"] = m = {}
        if m.get("name", t.name) != t.name:
            raise err.bad_request(
                f"the name of the object ({m.get('name')}) does not match the name on the URL ({t.name})"
            )
        if t.rtype.namespaced and m.get("namespace", t.namespace) != t.namespace:
            raise err.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        rv = m.get("resourceVersion")
        if rv not in (None, "") and str(rv) != old["metadata"]["resourceVersion"]:
            raise err.conflict(*t.kind_label, t.name)
        old_meta = old["metadata"]
        if t.subresource == "status":
            # Only the status changes through /status.
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            if self._has_status(t):
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
            m["name"] = t.name
            if t.rtype.namespaced:
                m["namespace"] = t.namespace
            for server_field in ("uid", "creationTimestamp", "managedFields", "deletionTimestamp"):
                if server_field in old_meta:
                    m[server_field] = clone(old_meta[server_field])
                else:
                    m.pop(server_field, None)
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        new["metadata"]["generation"] = old_meta.get("generation", 1)
        self._admit(t, new, old)
        if _spec_changed(old, new, status_apart=self._has_status(t)):
            new["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
        if _same(old, new):
            return self.render(t, old)
        if dry_run:
            return self.render(t, new)
        return self.render(t, self.objects.put(t.cluster, t.rtype.key, new))

    def patch(
        self,
        t: Target,
        content_type: str,
        raw: Any,
        *,
        field_manager: str | None,
        force: bool,
        dry_run: bool = False,
    ) -> tuple[int, Obj]:
        """(HTTP code, object); apply creates a missing object (201)."""
        kind = content_type.split(";")[0].strip().lower()
        if kind == "application/apply-patch+yaml":
            return self._apply(t, raw, field_manager=field_manager, force=force, dry_run=dry_run)
        old = self._existing(t)
        if kind == "application/merge-patch+json":
            new = patch.merge_patch(old, raw)
        elif kind == "application/strategic-merge-patch+json":
            if t.rtype.crd:
                raise err.unsupported_media_type(kind)
            new = patch.strategic_merge_patch(old, raw)
        elif kind == "application/json-patch+json":
            new = patch.json_patch(old, raw)
        else:
            raise err.unsupported_media_type(kind)
        # A resourceVersion in the patch is a precondition; otherwise the patch applies to the
        # latest version (the merge copied it from ``old``).
        if not (isinstance(raw, dict) and "resourceVersion" in (raw.get("metadata") or {})):
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        return 200, self._update(t, old, new, dry_run=dry_run)

    def _apply(
        self, t: Target, config: Any, *, field_manager: str | None, force: bool, dry_run: bool
    ) -> tuple[int, Obj]:
        if not field_manager:
            raise err.bad_request("PATCH request with apply patch requires fieldManager")
        if not isinstance(config, dict):
            raise not_an_object(t.rtype.kind)
        if not config.get("apiVersion") or not config.get("kind"):
            raise err.bad_request("apiVersion and kind must be set in an apply configuration")
        config = clone(config)
        m = config.setdefault("metadata", {})
        if m.get("name", t.name) != t.name:
            raise err.bad_request(
                f"the name of the object ({m.get('name')}) does not match the name on the URL ({t.name})"
            )
        if t.subresource == "status":
            config = {k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")}
        elif self._has_status(t):
            config.pop("status", None)
        now = now_iso()
        api_version = t.rtype.api_version(t.version)
        old = self.objects.get(t.cluster, t.rtype.key, t.namespace, t.name)
        if old is None:
            if t.subresource:
                raise err.not_found(*t.kind_label, t.name)
            m["name"] = t.name
            created = patch.apply(
                {"metadata": {}}, config, field_manager, force=True, api_version=api_version, timestamp=now
            )
            managed = created["metadata"].pop("managedFields")
            obj = self.create(t, created, dry_run=True)
            obj["metadata"]["managedFields"] = managed
            if dry_run:
                return 201, obj
            self.objects.put(t.cluster, t.rtype.key, obj)
            return 201, self.render(t, obj)
        new = patch.apply(old, config, field_manager, force=force, api_version=api_version, timestamp=now)
        if "resourceVersion" not in (m or {}):
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        managed = new["metadata"].get("managedFields")
        result = self._update(t, old, new, dry_run=True)
        if result is old:
            result = {**old, "metadata": dict(old["metadata"])}  # never mutate a stored snapshot
        result["metadata"]["managedFields"] = managed
        if _same(old, result):
            return 200, self.render(t, old)
        if dry_run:
            return 200, result
        return 200, self.render(t, self.objects.put(t.cluster, t.rtype.key, result))

    # -- deletes -----------------------------------------------------------------------------
    def delete(self, t: Target, options: Obj | None, *, propagation: str | None = None, dry_run: bool = False) -> Obj:
        old = self._existing(t)
        options = options or {}
        pre = options.get("preconditions") or {}
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise err.conflict(*t.kind_label, t.name)
        if pre.get("uid") and pre["uid"] != old["metadata"].get("uid"):
            raise err.conflict(*t.kind_label, t.name)
        policy = options.get("propagationPolicy") or propagation
        if dry_run:
            return self.render(t, old)
        if t.rtype is res.NAMESPACES:
            self._empty_namespace(t.cluster, t.name)
        removed = self.objects.delete(t.cluster, t.rtype.key, t.namespace, t.name, cascade=policy != "Orphan")
        assert removed is not None
        if t.rtype is res.CRDS:
            # Deleting a CRD deletes every custom resource of its kind.
            custom = res.from_crd(removed)
            for obj in self.objects.select(t.cluster, custom.key):
                self.objects.delete(
                    t.cluster, custom.key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
                )
        if t.rtype in (res.NAMESPACES, res.PODS):
            # These kinds answer with the object, marked for deletion (graceful deletion).
            out = clone(removed)
            out["metadata"]["deletionTimestamp"] = now_iso()
            if t.rtype is res.NAMESPACES:
                out["status"] = {"phase": "Terminating"}
            return self.render(t, out)
        if t.rtype.crd:
            return self.render(t, removed)
        return success_status(t, removed)

    def _empty_namespace(self, cluster: str, namespace: str) -> None:
        types = [r for r in (*res.BUILTINS, *self.custom_types(cluster)) if r.namespaced]
        for rtype in types:
            for obj in self.objects.select(cluster, rtype.key, namespace):
                self.objects.delete(cluster, rtype.key, namespace, obj["metadata"]["name"])

    def delete_collection(self, t: Target, opts: ListOptions, options: Obj | None) -> Obj:
        listed = self.list_objects(t, ListOptions(opts.label_selector, opts.field_selector))
        for item in listed["items"]:
            m = item["metadata"]
            sub = Target(t.cluster, t.rtype, t.version, m.get("namespace", ""), m["name"])
            self.delete(sub, options)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}


def success_status(t: Target, removed: Obj) -> Obj:
    details: Obj = {"name": t.name, "kind": t.rtype.plural, "uid": removed["metadata"].get("uid")}
    if t.rtype.group:
        details["group"] = t.rtype.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _strip(obj: Obj) -> Obj:
    out = dict(obj)
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion",)}
    return out


def _same(a: Obj, b: Obj) -> bool:
    return _strip(a) == _strip(b)


def _spec_changed(old: Obj, new: Obj, *, status_apart: bool) -> bool:
    skip = {"metadata", "status"} if status_apart else {"metadata"}
    return {k: v for k, v in old.items() if k not in skip} != {k: v for k, v in new.items() if k not in skip}
