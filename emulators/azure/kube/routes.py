"""HTTP surface of each emulated API server: ``/kubernetes/{subscription}/{resourceGroup}/{cluster}/...``.

The kubeconfig ARM hands out names this prefix as ``server``, so the real ``kubernetes``
client (whose ``Configuration.host`` may carry a path) reaches, for example,
``.../kubernetes/SUB/RG/NAME/apis/ray.io/v1/namespaces/default/rayclusters``.

What kubectl needs on the wire: OpenAPI, health and self-review paths and aggregated
discovery go to :mod:`emulators.azure.kube.endpoints` first; bodies may be protobuf
(:mod:`emulators.azure.kube.protobuf`); ``fieldValidation=Strict`` is checked before a write
(:mod:`emulators.azure.kube.fieldvalidation`).

Every request needs ``Authorization: Bearer <token>`` where the token is a ``kube.token``
document of this cluster (written by ARM's credential operations, or the admin route);
anything else is a 401 ``Status``. Paths are parsed here and handed to :class:`KubeAPI`
(verbs), the discovery documents, or the service and pod proxies. Reads that ``kubectl`` makes beyond
plain JSON -- Table renderings, ``?watch=1`` streams -- and the unsupported exec/attach/port-forward
subresources are answered by :mod:`emulators.azure.kube.views`, pod logs by
:mod:`emulators.azure.kube.logs`, ``metrics.k8s.io`` by :mod:`emulators.azure.kube.metrics`,
``events.k8s.io`` by :mod:`emulators.azure.kube.eventsv1`.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import yaml
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from emulators.azure.fleet import cluster_key
from emulators.azure.kube import endpoints, eventsv1, fieldvalidation, logs, metrics, protobuf, views
from emulators.azure.kube import errors as err
from emulators.azure.kube import resources as res
from emulators.azure.kube.api import ListOptions, Target

if TYPE_CHECKING:
    from emulators.azure.kube.service import KubeService

log = logging.getLogger(__name__)
TOKEN_KIND = "kube.token"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _json(body: Any, code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=code)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


async def _body(request: Request, *, yaml_ok: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    if protobuf.is_protobuf(request.headers.get("content-type")):
        return protobuf.decode_body(raw)
    try:
        return json.loads(raw)
    except ValueError as exc:
        if not yaml_ok:
            raise err.bad_request(f"the request body could not be decoded: {exc}") from None
    # Apply bodies may be YAML. JSON (what clients mostly send) was tried first: the pure-Python
    # YAML parser needs seconds for a 1 MB CRD.
    try:
        return yaml.load(raw, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise err.bad_request(f"the request body could not be decoded: {exc}") from None


class Dispatcher:
    """Parses one request's path and runs it against the service."""

    def __init__(self, svc: KubeService) -> None:
        self.svc = svc

    def authenticate(self, request: Request, key: str) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise err.unauthorized()
        doc = self.svc.store.get(TOKEN_KIND, token.strip())
        if doc is None or doc.get("cluster") != key:
            raise err.unauthorized()

    async def handle(self, request: Request, key: str, server: str, path: str) -> Response:
        parts = [p for p in path.split("/") if p]
        answered = await endpoints.handle(self.svc, request, key, parts)
        if answered is not None:
            return answered
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version"]})
        if parts == ["version"]:
            return _json(res.version_info(self.svc.fleet.control_plane_version(key)))
        if parts[0] == "api":
            if len(parts) == 1:
                return _json(res.api_versions(server))
            if parts[1] != "v1":
                raise err.resource_not_found()
            if len(parts) == 2:
                return _json(res.resource_list("v1", [r for r in res.BUILTINS if not r.group]))
            return await self.resource(request, key, "", "v1", parts[2:])
        if parts[0] == "apis":
            types = [*res.BUILTINS, *metrics.TYPES, *eventsv1.TYPES, *self.svc.api.custom_types(key)]
            if len(parts) == 1:
                return _json(res.api_group_list(types))
            versions = res.group_versions(types).get(parts[1])
            if not versions:
                raise err.resource_not_found()
            if len(parts) == 2:
                return _json(res.api_group(parts[1], versions))
            if parts[2] not in versions:
                raise err.resource_not_found()
            if len(parts) == 3:
                in_version = [t for t in types if t.group == parts[1] and parts[2] in t.versions]
                return _json(res.resource_list(f"{parts[1]}/{parts[2]}", in_version))
            return await self.resource(request, key, parts[1], parts[2], parts[3:])
        raise err.resource_not_found()

    def validate_fields(self, directive: str | None, target: Target, body: Any, *, apply: bool) -> None:
        """``fieldValidation=Strict``: 400 for fields the kind does not declare."""
        crd = self.svc.api.crd_for(target.cluster, target.rtype) if target.rtype.crd else None
        fieldvalidation.check(directive, target.rtype, target.version, body, crd, apply=apply)

    async def resource(self, request: Request, key: str, group: str, version: str, rest: list[str]) -> Response:
        if group == metrics.GROUP:
            return metrics.serve(request, self.svc, key, version, rest)
        if group == eventsv1.GROUP:
            return eventsv1.serve(request, self.svc, key, version, rest)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        if namespace and not group and plural == "services" and len(rest) >= 3 and rest[2] == "proxy":
            return await self.svc.proxy.handle(request, key, namespace, rest[1], "/".join(rest[3:]))
        if namespace and not group and plural == "pods" and len(rest) >= 3 and rest[2] == "proxy":
            return await self.svc.podproxy.handle(request, key, namespace, rest[1], "/".join(rest[3:]))
        rtype = self.svc.api.resolve(key, group, version, plural)
        if namespace and not rtype.namespaced:
            raise err.resource_not_found()
        name = rest[1] if len(rest) > 1 else ""
        sub = "/".join(rest[2:])
        if sub and sub not in rtype.subresources:
            raise err.resource_not_found()
        target = Target(key, rtype, version, namespace, name, sub)
        q = request.query_params
        method = request.method
        dry_run = q.get("dryRun") == "All"
        api = self.svc.api
        if not name or (_flag(q.get("watch")) and not sub):
            limit = q.get("limit") or "0"
            if not limit.isdigit():
                raise err.bad_request(f"invalid limit: {limit!r}")
            opts = ListOptions(q.get("labelSelector"), q.get("fieldSelector"), int(limit), q.get("continue"))
            if method == "GET" and _flag(q.get("watch")):
                return views.watch_view(request, self.svc, target, opts)
            if method == "GET":
                return views.list_view(request, self.svc, target, opts)
            if method == "POST":
                if rtype.namespaced and not namespace:
                    raise err.method_not_allowed("create of a namespaced resource needs a namespace in the path")
                body = await _body(request)
                self.validate_fields(q.get("fieldValidation"), target, body, apply=False)
                return _json(api.create(target, body, dry_run=dry_run), 201)
            if method == "DELETE":
                return _json(api.delete_collection(target, opts, await _body(request)))
            raise err.method_not_allowed(f"{method} is not supported on a collection")
        if rtype.namespaced and not namespace:
            raise err.resource_not_found()
        if sub == "log":
            return logs.pod_log(request, self.svc, target)
        if sub in views.STREAMS:
            raise views.unsupported_stream(sub)
        if rtype is res.NODES and not sub and method in ("PATCH", "PUT"):
            return await views.node_write(request, self.svc, target, await _body(request))
        if method == "GET":
            return views.get_view(request, self.svc, target)
        if method == "PUT":
            body = await _body(request)
            self.validate_fields(q.get("fieldValidation"), target, body, apply=False)
            return _json(api.replace(target, body, dry_run=dry_run))
        if method == "PATCH":
            content_type = request.headers.get("content-type", "")
            is_apply = content_type.split(";")[0].strip().lower() == "application/apply-patch+yaml"
            body = await _body(request, yaml_ok=is_apply)
            if not content_type.startswith("application/json-patch+json"):
                self.validate_fields(q.get("fieldValidation"), target, body, apply=is_apply)
            code, obj = api.patch(
                target,
                content_type,
                body,
                field_manager=q.get("fieldManager"),
                force=_flag(q.get("force")),
                dry_run=dry_run,
            )
            return _json(obj, code)
        if method == "DELETE":
            return _json(
                api.delete(target, await _body(request), propagation=q.get("propagationPolicy"), dry_run=dry_run)
            )
        raise err.method_not_allowed(f"{method} is not supported on {rtype.plural}")


def create_router(svc: KubeService) -> APIRouter:
    """The Kubernetes API routes of every emulated cluster."""
    router = APIRouter(tags=["kubernetes"], lifespan=svc.lifespan)
    dispatcher = Dispatcher(svc)

    async def serve(subscription: str, resource_group: str, cluster: str, path: str, request: Request) -> Response:
        key = cluster_key(subscription, resource_group, cluster)
        server = f"{svc.origin}/kubernetes/{subscription}/{resource_group}/{cluster}"
        try:
            dispatcher.authenticate(request, key)
            svc.touch(key)
            response = await dispatcher.handle(request, key, server, path)
        except err.KubeError as exc:
            return exc.response()
        except Exception:  # a bug here must still answer with a Status, as the API server does
            log.exception("kube request %s %s failed", request.method, path)
            return err.KubeError(
                500, "InternalError", "an error on the server has prevented the request from succeeding"
            ).response()
        if request.method != "GET":
            svc.wake()
        return response

    @router.api_route("/kubernetes/{subscription}/{resource_group}/{cluster}", methods=_METHODS)
    async def root(subscription: str, resource_group: str, cluster: str, request: Request) -> Response:
        return await serve(subscription, resource_group, cluster, "", request)

    @router.api_route("/kubernetes/{subscription}/{resource_group}/{cluster}/{path:path}", methods=_METHODS)
    async def any_path(subscription: str, resource_group: str, cluster: str, path: str, request: Request) -> Response:
        return await serve(subscription, resource_group, cluster, path, request)

    return router
