"""The Kubernetes API of one AKS cluster, through the official ``kubernetes`` client.

Built from the ``clusterUser`` kubeconfig that ARM returns, which is held in memory only
(the client library writes the CA it carries to a private temp file, as it does for any
kubeconfig). Objects are written with server-side apply under the field manager
``rayplane``, so re-applying the same object is a no-op and fields other managers own (the
KubeRay autoscaler's ``replicas``) are left alone unless Rayplane sets them.
"""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from rayplane.providers.base import RetriableError, TerminalError

FIELD_MANAGER = "rayplane"
TIMEOUT = 10

# kind -> (plural, namespaced): everything Rayplane applies.
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "ServiceAccount": ("serviceaccounts", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "Deployment": ("deployments", True),
    "DaemonSet": ("daemonsets", True),
    "Service": ("services", True),
    "ConfigMap": ("configmaps", True),
    "Secret": ("secrets", True),
    "Pod": ("pods", True),
    "RayCluster": ("rayclusters", True),
    "RayJob": ("rayjobs", True),
    "RayService": ("rayservices", True),
    "Gateway": ("gateways", True),
    "PodMonitor": ("podmonitors", True),
}


def object_path(api_version: str, kind: str, name: str, namespace: str | None = None) -> str:
    plural, namespaced = KINDS[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespaced and namespace else ""
    return f"{base}{scope}/{plural}/{name}"


def _error(exc: ApiException, what: str) -> RetriableError | TerminalError:
    message = f"{what}: Kubernetes answered {exc.status} {exc.reason}"
    if exc.body:
        message += f": {str(exc.body)[:300]}"
    if exc.status in (400, 403, 422):
        return TerminalError(message, code=f"Kubernetes{exc.status}")
    return RetriableError(message, code=f"Kubernetes{exc.status or 'Unreachable'}")


class Kube:
    """A client for one AKS cluster's API server, from a kubeconfig held in memory."""

    def __init__(self, kubeconfig_yaml: str) -> None:
        config = yaml.safe_load(kubeconfig_yaml)
        self.api = k8s_config.new_client_from_config_dict(config)
        self.server: str = self.api.configuration.host
        self.token: str = (self.api.configuration.api_key.get("authorization") or "").removeprefix("Bearer ").strip()
        self.ca_file: str | None = self.api.configuration.ssl_ca_cert

    def close(self) -> None:
        self.api.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        return self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=TIMEOUT,
        )

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply ``obj`` (create or update), forcing Rayplane's ownership of the
        fields it sets."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        try:
            result: dict[str, Any] = self._call(
                "PATCH",
                path,
                body=obj,
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                content_type="application/apply-patch+yaml",
            )
            return result
        except ApiException as exc:
            raise _error(exc, f"applying {obj['kind']} {meta['name']}") from exc
        except Exception as exc:
            raise RetriableError(f"applying {obj['kind']} {meta['name']}: {exc}", code="KubernetesUnreachable") from exc

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call("GET", object_path(api_version, kind, name, namespace))
            return result
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error(exc, f"reading {kind} {name}") from exc
        except Exception as exc:
            raise RetriableError(f"reading {kind} {name}: {exc}", code="KubernetesUnreachable") from exc

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete; False when it was already gone."""
        try:
            self._call("DELETE", object_path(api_version, kind, name, namespace))
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _error(exc, f"deleting {kind} {name}") from exc
        except Exception as exc:
            raise RetriableError(f"deleting {kind} {name}: {exc}", code="KubernetesUnreachable") from exc

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        try:
            result = self._call("GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", selector)])
            items: list[dict[str, Any]] = result.get("items", [])
            return items
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise _error(exc, f"listing pods in {namespace}") from exc
        except Exception as exc:
            raise RetriableError(f"listing pods in {namespace}: {exc}", code="KubernetesUnreachable") from exc

    def list_items(self, path: str, query: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The items of a list call (``/api/v1/nodes``, ``/api/v1/pods`` with selectors)."""
        try:
            items: list[dict[str, Any]] = self._call("GET", path, query=query).get("items", [])
            return items
        except ApiException as exc:
            raise _error(exc, f"listing {path}") from exc
        except Exception as exc:
            raise RetriableError(f"listing {path}: {exc}", code="KubernetesUnreachable") from exc

    def events(self, namespace: str) -> list[dict[str, Any]]:
        """The namespace's core/v1 Events (the scheduler's and the cluster autoscaler's)."""
        try:
            result = self._call("GET", f"/api/v1/namespaces/{namespace}/events")
            items: list[dict[str, Any]] = result.get("items", [])
            return items
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise _error(exc, f"listing events in {namespace}") from exc
        except Exception as exc:
            raise RetriableError(f"listing events in {namespace}: {exc}", code="KubernetesUnreachable") from exc

    def delete_pods(self, namespace: str, selector: str) -> int:
        """Delete the pods matching ``selector`` (their controller makes new ones); how many."""
        pods = self.pods(namespace, selector)
        for pod in pods:
            self.delete("v1", "Pod", pod["metadata"]["name"], namespace)
        return len(pods)

    def proxy_url(self, namespace: str, service: str, port: str) -> str:
        """Base URL of a service through the API server's service proxy."""
        return f"{self.server}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
