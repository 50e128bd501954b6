"""How the simulated RayService controller reaches a RayCluster's Serve (KubeRay's
``dashboardclient`` and ``httpproxy_httpclient``).

With the simulated backend it calls :class:`emulators.azure.kube.serve.ServeManager` for the
head's scope, as the dashboard routes do. With ``ray_backend: "real"`` it sends the same
requests to the real Ray dashboard of the RayCluster's head node
(``PUT``/``GET /api/serve/applications/``, with the RayCluster's token as
``X-Ray-Authorization`` under token authentication); the proxy counts as healthy once the
real Serve reports a proxy. These calls are synchronous and short (local, 5 s timeout):
the controller's pass is synchronous.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from emulators.azure.kube.config import KubeConfig
from emulators.azure.kube.dashboard import scope_of
from emulators.azure.kube.serve import ServeError, ServeManager

Obj = dict[str, Any]
SERVE_ERRORS = (RuntimeError, ServeError, httpx.HTTPError, ValueError)


class ServeBackend:
    def __init__(
        self,
        manager: ServeManager,
        config: KubeConfig,
        dashboard_port: Callable[[str], int | None],
        token: Callable[[str, Obj], str | None],
    ) -> None:
        self.manager = manager
        self.config = config
        self.dashboard_port = dashboard_port
        self.token = token

    def _real(self) -> bool:
        return self.config.ray_backend == "real"

    def _request(self, cluster: str, rc: Obj, method: str, body: Obj | None = None) -> httpx.Response:
        port = self.dashboard_port(str(rc["metadata"]["uid"]))
        if port is None:
            raise RuntimeError("the Ray dashboard is not serving yet")
        headers = {}
        token = self.token(cluster, rc)
        if token:
            headers["X-Ray-Authorization"] = f"Bearer {token}"
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            resp = client.request(
                method, f"http://127.0.0.1:{port}/api/serve/applications/", json=body, headers=headers
            )
        if resp.status_code >= 400:
            raise RuntimeError(f"{resp.status_code} {resp.text}")
        return resp

    def get(self, cluster: str, rc: Obj, head: Obj) -> dict[str, Obj]:
        """Application statuses: ``{name: {status, message, deployments: {name: {status, message}}}}``."""
        if not self._real():
            return self.manager.statuses(scope_of(rc, head), str(head["metadata"]["uid"]))
        details = self._request(cluster, rc, "GET").json()
        return {
            name: {
                "status": app.get("status", ""),
                "message": app.get("message", ""),
                "deployments": {
                    d: {"status": dep.get("status", ""), "message": dep.get("message", "")}
                    for d, dep in (app.get("deployments") or {}).items()
                },
            }
            for name, app in (details.get("applications") or {}).items()
        }

    def put(self, cluster: str, rc: Obj, head: Obj, config: Obj) -> None:
        if not self._real():
            self.manager.put(scope_of(rc, head), str(head["metadata"]["uid"]), config)
            return
        self._request(cluster, rc, "PUT", config)

    def proxy_healthy(self, cluster: str, rc: Obj, head: Obj) -> bool:
        if (head.get("status") or {}).get("phase") != "Running":
            return False
        if not self._real():
            return self.manager.proxy_healthy(scope_of(rc, head), str(head["metadata"]["uid"]))
        try:
            return bool(self._request(cluster, rc, "GET").json().get("proxies"))
        except (RuntimeError, httpx.HTTPError, ValueError):
            return False
