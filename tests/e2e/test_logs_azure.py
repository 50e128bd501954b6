"""Issue 15 on the Azure provider, end to end: an Azure cluster's Ray logs are read through
``/v1/clusters/{id}/logs`` (list, a file, a tail) after the cluster is DELETED, from the
customer's storage account, and another tenant gets 404 for them.

The whole control plane runs (``rayplane dev`` with the emulated Azure: API, worker, beat), the
cluster is made and deleted by the Azure provider on the emulated ARM and AKS, which makes the
cloud's storage account, container, identity and role assignment as in production. The blobs are
written by Rayplane's own pod shipper (``PodShipper``, the sidecar's code; the emulator runs no
containers), named after the cluster's real head and worker pods. The API's read side is
production code throughout: ``store_for`` -> ``customer_store`` finds the account through the
emulated ARM with the cloud's credential and reads from the endpoint ARM gives.

The one deviation (as in tests/providers/test_azure_log_readback.py): once the cluster is deleted
the emulator maps every account's blob endpoint to Azurite's development account (while it ran,
its shippers' config named the account's real https endpoint), and the blob client signs with that
account's published key instead of an Entra token (Azurite takes bearer tokens only over HTTPS
and only from Entra's own issuers). On the read side that mapping is
``rayplane.providers.azure.logreads._development_key``, made only outside production and only
for Azurite's loopback endpoint; here the shipper is given the same key.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from rayplane.db.engine import async_session_factory, make_async_engine
from rayplane.logstore import AZURITE_ACCOUNT, AZURITE_KEY, open_store
from rayplane.logstore.blob import BlobLogStore
from rayplane.providers.azure.logsink import CONTAINER
from rayplane.providers.azure.podship import PodShipper, ShipperConfig, node_name
from rayplane.settings import Settings
from tests.e2e.azure_support import EmulatedAzure, azure_stack
from tests.e2e.stack import Stack, redis_url_for
from tests.support.factories import Actor, Factory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

E2E_REDIS_DB = 11  # 2-10 and 13-15 are other modules'; each stack has its own task queue besides
DEPLOYMENT_CONTAINER = f"e2e-azlogs-{uuid.uuid4().hex[:8]}"
SPEC = {
    "name": "azlogs",
    "cloud": "azure-demo",
    "head": {"vm_size": "Standard_D4s_v5"},
    "worker_groups": [{"name": "cpu", "vm_size": "Standard_D4s_v5", "min_nodes": 1, "max_nodes": 1}],
}
RAYLET = b"".join(f"raylet line {i}\n".encode() for i in range(1, 51))


@pytest.fixture(scope="module")
def azurite_port(azurite: str) -> str:
    return azurite.split("BlobEndpoint=http://127.0.0.1:", 1)[1].split("/", 1)[0]


@pytest.fixture(scope="module")
def stack(admin_db_url: str, redis_url: str, azurite: str, azurite_port: str) -> Iterator[Stack]:
    # The deployment's own store is a container of its own in the same Azurite, so a file read
    # through the API can only have come from the customer's account (the ``ray-logs`` container).
    env = {"RAYPLANE_LOG_STORE_URL": azurite, "RAYPLANE_LOG_CONTAINER": DEPLOYMENT_CONTAINER}
    with azure_stack(admin_db_url, redis_url_for(redis_url, E2E_REDIS_DB), **env) as s:
        yield s


def _map_accounts_to_azurite(stack: Stack, port: str) -> None:
    """From now on ARM reports every account's blob endpoint as Azurite's development account.
    Done once the cluster is deleted: while it ran, its shippers' config had to name Azure's own
    https endpoint (``ShipperConfig`` refuses any other), as in production."""
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}/"
    EmulatedAzure(stack).admin.put("/_emulator/arm/config", json={"blob_endpoint": endpoint}).raise_for_status()


def _another_tenant(stack: Stack) -> Actor:
    """A second tenant with an owner's API key, made through the real services in the stack's
    database with the stack's hashing key."""
    database_url = stack.env["RAYPLANE_DATABASE_URL"]
    key = Settings(data_dir=stack.workdir / "data").hashing_key()

    async def make() -> Actor:
        engine = make_async_engine(database_url, pool_size=1, max_overflow=0)
        try:
            async with async_session_factory(engine)() as session:
                return await Factory(session, key).actor()
        finally:
            await engine.dispose()

    return asyncio.run(make())


def _ship(port: str, tenant: str, cid: str, pod: str, node_type: str, group: str, root: Path) -> str:
    """One pod's session logs shipped by the sidecar's code (one final pass, as on TERM); the node."""
    logs = root / "session_1" / "logs"
    logs.mkdir(parents=True)
    (root / "session_latest").symlink_to(root / "session_1")
    (logs / "raylet.out").write_bytes(RAYLET if node_type == "head" else b"worker raylet\n")
    if node_type == "head":
        (logs / "gcs_server.out").write_bytes(b"gcs started\n")
    service = BlobServiceClient(
        f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}/", credential=AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)
    )
    # Azurite has no ARM: the container ARM made is made here too (tests only).
    with contextlib.suppress(ResourceExistsError):
        service.get_container_client(CONTAINER).create_container()
    node = node_name(pod, node_type, group)
    config = ShipperConfig("https://unused.blob.core.windows.net/", CONTAINER, tenant, cid, 0.2, str(root))
    stop = threading.Event()
    stop.set()
    PodShipper(BlobLogStore("", CONTAINER, service=service), config, node, stop).run()
    return node


def test_an_azure_clusters_logs_are_read_after_it_is_deleted(
    stack: Stack, azurite: str, azurite_port: str, tmp_path: Path
) -> None:
    r = stack.request("POST", "/v1/clusters", json=SPEC)
    assert r.status_code == 202, r.text
    cid = r.json()["id"]
    stack.wait_state(cid, "RUNNING", timeout=300)
    tenant = stack.request("GET", "/v1/tenant").json()["id"]

    # While it runs, each pod's sidecar ships its Ray logs into the cloud's account.
    namespace = "rp-" + cid.lower().replace("_", "-")
    pods = [
        p
        for p in EmulatedAzure(stack).core().list_namespaced_pod(namespace).items
        if "ray.io/node-type" in (p.metadata.labels or {})
    ]
    nodes: dict[str, str] = {}
    for i, pod in enumerate(pods):
        labels: dict[str, Any] = pod.metadata.labels
        node_type, group = labels["ray.io/node-type"], labels.get("ray.io/group", "")
        nodes[node_type] = _ship(azurite_port, tenant, cid, pod.metadata.name, node_type, group, tmp_path / f"p{i}")
    assert set(nodes) == {"head", "worker"}, nodes
    worker = nodes["worker"]

    assert stack.request("DELETE", f"/v1/clusters/{cid}").status_code == 202
    stack.wait_state(cid, "DELETED", timeout=240)
    _map_accounts_to_azurite(stack, azurite_port)

    # Through the API, after the cluster is gone: list, a file, a tail.
    r = stack.request("GET", f"/v1/clusters/{cid}/logs")
    assert r.status_code == 200, r.text
    assert [(f["node"], f["component"], f["path"]) for f in r.json()["items"]] == sorted(
        [
            ("head", "gcs_server", "gcs_server.out"),
            ("head", "raylet", "raylet.out"),
            (worker, "raylet", "raylet.out"),
        ]
    )
    r = stack.request("GET", f"/v1/clusters/{cid}/logs/head/raylet.out")
    assert r.status_code == 200, r.text
    assert r.content == RAYLET
    tail = stack.request("GET", f"/v1/clusters/{cid}/logs/head/raylet.out", params={"tail": 2})
    assert tail.text == "raylet line 49\nraylet line 50\n"
    assert stack.request("GET", f"/v1/clusters/{cid}/logs/{worker}/raylet.out").text == "worker raylet\n"
    # They came from the customer's account: the deployment's store has none of them.
    assert open_store(azurite, DEPLOYMENT_CONTAINER).files(tenant, cid) == []

    # Another tenant: 404 for the same cluster's logs, as for a cluster that does not exist.
    other = _another_tenant(stack)
    for path in (f"/v1/clusters/{cid}/logs", f"/v1/clusters/{cid}/logs/head/raylet.out"):
        refused = stack.request("GET", path, headers=other.headers)
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
