"""The API server's service proxy: ``/api/v1/namespaces/{ns}/services/{name}[:{port}]/proxy/{path}``.

``{name}`` may be ``name``, ``name:port`` or ``scheme:name:port``; ``port`` is a service port
number or a port name (no port selects the service's unnamed port, as the real proxy does).
The port's target must be served by a Running pod the service selects, else the answer is 503
``no endpoints available for service "<name>"``. The only thing behind a pod here is the
simulated Ray dashboard: the head service of a RayCluster, on the head container's
``dashboard`` port (8265 by default), reaches :class:`Dashboard` for that RayCluster; any other
target is a 502, as a connection refused by the pod would be. A RayCluster with token
authentication (``authOptions``) answers only requests that carry its token.

With ``ray_backend: "real"`` the dashboard target is the real Ray dashboard of that
RayCluster's head node (:mod:`emulators.azure.kube.raynodes`): the request is forwarded to
it (method, path, query, body, ``X-Ray-Authorization``, cookies, content type -- not the
API server's own ``Authorization``, which the real API server consumes), and Ray itself
checks the token. A head pod whose node is not serving answers 502, as a refused connection.
"""

from __future__ import annotations

import base64
import hmac
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import Request, Response
from fastapi.responses import PlainTextResponse

from emulators.azure.kube import errors as err
from emulators.azure.kube import raypods
from emulators.azure.kube import resources as res
from emulators.azure.kube.config import KubeConfig
from emulators.azure.kube.dashboard import Dashboard, RayHead
from emulators.azure.kube.kuberay import RAYCLUSTERS
from emulators.azure.kube.selectors import match_label_selector

if TYPE_CHECKING:
    from emulators.azure.kube.objects import ObjectStore
    from emulators.azure.kube.raynodes import RayNodes

Obj = dict[str, Any]
_FORWARDED = ("x-ray-authorization", "cookie", "content-type", "accept")


def ray_token(objects: ObjectStore, cluster: str, rc: Obj) -> str | None:
    """The RayCluster's Ray token with ``authOptions.mode: token``: the ``auth_token`` of the
    Secret ``authOptions.secretName`` (default: the RayCluster's name), as KubeRay v1.7.0
    hands it to Ray; None without token authentication or without the Secret."""
    auth = (rc.get("spec") or {}).get("authOptions") or {}
    if auth.get("mode") != "token":
        return None
    m = rc["metadata"]
    secret = objects.get(cluster, res.SECRETS.key, str(m.get("namespace", "")), auth.get("secretName") or m["name"])
    raw = ((secret or {}).get("data") or {}).get("auth_token")
    return base64.b64decode(raw).decode() if raw else None


def split_name(text: str) -> tuple[str, str]:
    """(service name, port spec) from ``name``, ``name:port`` or ``scheme:name:port``."""
    parts = text.split(":")
    if len(parts) == 3:
        return parts[1], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], ""


def dashboard_port(rc: Obj) -> int:
    head = ((rc.get("spec") or {}).get("headGroupSpec") or {}).get("template") or {}
    containers = (head.get("spec") or {}).get("containers") or []
    for port in (containers[0].get("ports") if containers else None) or []:
        if port.get("name") == "dashboard":
            return int(port.get("containerPort", 8265))
    return 8265


class ServiceProxy:
    """Resolves a proxied request to the simulated dashboard of a RayCluster."""

    def __init__(
        self, objects: ObjectStore, dashboard: Dashboard, config: KubeConfig, raynodes: RayNodes | None = None
    ) -> None:
        self.objects = objects
        self.dashboard = dashboard
        self.config = config
        self.raynodes = raynodes
        self._client: httpx.AsyncClient | None = None

    def ray_head(self, cluster: str, rc: Obj) -> RayHead | None:
        """The RayCluster's head as its dashboard sees it, if the head pod is Running."""
        m = rc["metadata"]
        pods = [
            p
            for p in self.objects.dependents(cluster, str(m["uid"]), res.PODS.key)
            if p.get("status", {}).get("phase") == "Running"
        ]
        heads = [p for p in pods if p["metadata"]["labels"].get(raypods.NODE_TYPE_LABEL) == "head"]
        if not heads:
            return None
        return RayHead(cluster, rc, heads[0], pods)

    async def handle(self, request: Request, cluster: str, namespace: str, name_port: str, path: str) -> Response:
        name, port_spec = split_name(name_port)
        service = self.objects.get(cluster, res.SERVICES.key, namespace, name)
        if service is None:
            raise err.not_found("services", "", name)
        spec = service.get("spec") or {}
        ports = spec.get("ports") or []
        port = next(
            (
                p
                for p in ports
                if (port_spec and (p.get("name") == port_spec or str(p.get("port")) == port_spec))
                or (not port_spec and not p.get("name"))
            ),
            None,
        )
        unavailable = err.service_unavailable(f'no endpoints available for service "{name}"')
        if port is None:
            raise unavailable
        selector = spec.get("selector") or {}
        if not selector:
            raise unavailable
        pods = [
            p
            for p in self.objects.iter_type(cluster, res.PODS.key)
            if p["metadata"].get("namespace") == namespace
            and (p.get("status") or {}).get("phase") == "Running"
            and match_label_selector({"matchLabels": selector}, p["metadata"].get("labels") or {})
        ]
        if not pods:
            raise unavailable
        rc = self._raycluster(cluster, service)
        target = port.get("targetPort", port.get("port"))
        if rc is not None and (target == dashboard_port(rc) or target == "dashboard"):
            head = self.ray_head(cluster, rc)
            if head is None:
                raise unavailable
            if self.config.ray_backend == "real" and self.raynodes is not None:
                port_number = self.raynodes.dashboard(str(rc["metadata"]["uid"]))
                if port_number is not None:
                    return await self._forward(request, port_number, path)
                ip = (head.head.get("status") or {}).get("podIP")
                raise err.KubeError(
                    502,
                    "InternalError",
                    f"error trying to reach service: dial tcp {ip}:{target}: connect: connection refused",
                    {},
                )
            refused = self._ray_auth(cluster, rc, request)
            if refused is not None:
                return refused
            body = await request.body()
            return await self.dashboard.handle(head, request.method, path, request.query_params, body)
        ip = (pods[0].get("status") or {}).get("podIP")
        raise err.KubeError(
            502,
            "InternalError",
            f"error trying to reach service: dial tcp {ip}:{target}: connect: connection refused",
            {},
        )

    async def _forward(self, request: Request, port: int, path: str) -> Response:
        """The request, relayed to the real dashboard on 127.0.0.1:``port``."""
        if self._client is None:
            # trust_env off: a host proxy setting must not capture localhost calls.
            self._client = httpx.AsyncClient(timeout=60, trust_env=False)
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
        url = f"http://127.0.0.1:{port}/{path.strip('/')}"
        if request.url.path.endswith("/") and not url.endswith("/"):
            url += "/"  # Ray's aiohttp routes tell "/api/jobs/" from "/api/jobs"
        try:
            resp = await self._client.request(
                request.method,
                url,
                params=list(request.query_params.multi_items()),
                headers=headers,
                content=await request.body(),
            )
        except httpx.HTTPError as exc:
            raise err.KubeError(502, "InternalError", f"error trying to reach service: {exc}", {}) from exc
        keep = {k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "set-cookie")}
        return Response(resp.content, status_code=resp.status_code, headers=keep)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _ray_auth(self, cluster: str, rc: Obj, request: Request) -> Response | None:
        """Ray's token check, for a RayCluster with ``authOptions.mode: token``: the token is
        the ``auth_token`` of the Secret ``authOptions.secretName`` (default: the RayCluster's
        name), as KubeRay v1.7.0 hands it to Ray. The real API server consumes the
        ``Authorization`` header (its own bearer token), so Ray sees ``X-Ray-Authorization``
        or the dashboard's cookie; 401 without a token and 403 for a wrong one, as Ray answers."""
        if ((rc.get("spec") or {}).get("authOptions") or {}).get("mode") != "token":
            return None
        expected = ray_token(self.objects, cluster, rc)
        sent = request.headers.get("x-ray-authorization", "")
        cookie = request.cookies.get("ray-authentication-token")
        if not sent and cookie:
            sent = "Bearer " + cookie
        if not sent:
            return PlainTextResponse("Unauthorized: Missing authentication token", status_code=401)
        if expected is None or not hmac.compare_digest(sent, "Bearer " + expected):
            return PlainTextResponse("Forbidden: Invalid authentication token", status_code=403)
        return None

    def _raycluster(self, cluster: str, service: Obj) -> Obj | None:
        m = service.get("metadata") or {}
        for ref in m.get("ownerReferences") or []:
            if ref.get("kind") == "RayCluster":
                owner = self.objects.by_uid(cluster, str(ref.get("uid")))
                if owner is not None and owner.get("kind") == "RayCluster":
                    return owner
        labels = m.get("labels") or {}
        name = labels.get(raypods.CLUSTER_LABEL)
        if name and labels.get(raypods.NODE_TYPE_LABEL) == "head":
            return self.objects.get(cluster, RAYCLUSTERS, str(m.get("namespace", "")), str(name))
        # A RayService's head service follows its active RayCluster through its selector.
        selector = (service.get("spec") or {}).get("selector") or {}
        if labels.get("ray.io/originated-from-crd") == "RayService" and selector.get(raypods.CLUSTER_LABEL):
            return self.objects.get(cluster, RAYCLUSTERS, str(m.get("namespace", "")), selector[raypods.CLUSTER_LABEL])
        return None
