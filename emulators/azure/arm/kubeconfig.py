"""Kubeconfigs that ``listClusterUserCredential`` / ``listClusterAdminCredential`` return.

Each points at the emulator's Kubernetes surface for that cluster,
``{origin}/kubernetes/{subscription}/{resourceGroup}/{cluster}``, trusts the emulator's CA
(``DIR/ca.pem``; omitted when serving plain HTTP) and authenticates with a bearer token. The
token is made once per (cluster, role) and then returned again on every call, as AKS returns
the same static credentials until they are rotated. It is recorded as a ``kube.token``
document ``{"cluster": <cluster key>, "role": "user"|"admin"}`` keyed by the token, which is
all the Kubernetes surface needs to authenticate a request; deleting the cluster drops it.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

import yaml

from emulators.azure.arm.state import KUBE_TOKEN, KUBECREDS, ClusterDoc
from emulators.azure.store import DocumentStore

ROLES = ("user", "admin")


def token_for(store: DocumentStore, cluster: str, role: str) -> str:
    """The cluster's token for ``role``, made (and recorded as ``kube.token``) on first use."""
    doc = store.get(KUBECREDS, f"{cluster}#{role}")
    if doc is not None:
        return str(doc["token"])
    token = secrets.token_hex(32)
    store.put(KUBE_TOKEN, token, {"cluster": cluster, "role": role})
    store.put(KUBECREDS, f"{cluster}#{role}", {"token": token})
    return token


def drop_tokens(store: DocumentStore, cluster: str) -> None:
    """Forget every token of ``cluster`` (it was deleted)."""
    for role in ROLES:
        doc = store.get(KUBECREDS, f"{cluster}#{role}")
        if doc is not None:
            store.delete(KUBE_TOKEN, str(doc["token"]))
            store.delete(KUBECREDS, f"{cluster}#{role}")


def kubeconfig(cluster: ClusterDoc, role: str, token: str, origin: str, data_dir: Path) -> str:
    """The kubeconfig YAML, named as AKS names its entries: cluster and context ``<name>``, user
    ``clusterUser_<rg>_<name>`` or ``clusterAdmin_<rg>_<name>`` (the 2026-08-01 example
    ManagedClustersListClusterAdminCredentials.json gives only the base64 value; the names are
    what AKS's kubeconfigs carry)."""
    server = f"{origin}/kubernetes/{cluster.subscription}/{cluster.resource_group}/{cluster.name}"
    cluster_entry: dict[str, Any] = {"server": server}
    ca_path = data_dir / "ca.pem"
    if origin.startswith("https://") and ca_path.exists():
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca_path.read_bytes()).decode("ascii")
    user = f"cluster{role.capitalize()}_{cluster.resource_group}_{cluster.name}"
    # AKS names the context after the cluster for both roles; clients tell the admin one by its
    # user (``az aks get-credentials --admin`` renames it ``<name>-admin`` on merge).
    context = cluster.name
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster.name, "cluster": cluster_entry}],
        "contexts": [{"name": context, "context": {"cluster": cluster.name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {"token": token}}],
    }
    return str(yaml.safe_dump(config, sort_keys=False))


def credential_results(
    cluster: ClusterDoc, role: str, store: DocumentStore, origin: str, data_dir: Path
) -> dict[str, Any]:
    """``{"kubeconfigs": [{"name": "clusterUser"|"clusterAdmin", "value": base64(yaml)}]}``."""
    text = kubeconfig(cluster, role, token_for(store, cluster.key, role), origin, data_dir)
    value = base64.b64encode(text.encode()).decode("ascii")
    return {"kubeconfigs": [{"name": f"cluster{role.capitalize()}", "value": value}]}
