"""Reading back on Azure, against the emulated ARM and a real Azurite: the read side finds the
cloud's account by name through ``azure-mgmt-storage`` (``Storage.find``), takes its blob
endpoint from ARM, and reads what the pod shipper wrote there, in the log store's layout.

What is real and what is not: ARM (emulated), the account's lookup and its endpoint, the blob
service (Azurite), the append blobs, the shipper and the read side's ``BlobLogStore`` are all the
production code. The one deviation is the blob credential: Azurite accepts bearer tokens only
over HTTPS with ``--oauth basic`` and only from Entra's own issuers, so here the emulator maps
the account's endpoint to Azurite's development account and the blob client signs with that
account's well-known key; in production ``customer_store`` uses the cloud's Entra credential on
an account that has no keys at all."""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceExistsError
from azure.identity import ClientSecretCredential
from azure.storage.blob import BlobServiceClient

from emulators.azure.server import EmulatorProcess
from rayplane.logstore import AZURITE_ACCOUNT, AZURITE_KEY, LogKey
from rayplane.logstore.blob import BlobLogStore
from rayplane.providers.azure.logsink import CONTAINER, Storage
from rayplane.providers.azure.podship import PodShipper, ShipperConfig

RG = "ml"


def test_the_read_side_reads_what_the_shipper_wrote(emulator: EmulatorProcess, azurite: str, tmp_path: Any) -> None:
    port = azurite.split("BlobEndpoint=http://127.0.0.1:", 1)[1].split("/", 1)[0]
    before = emulator.request_json("GET", "/_emulator/arm/config")
    # Every account's endpoint is Azurite's development account (tests only).
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}/"
    emulator.request_json("PUT", "/_emulator/arm/config", {"blob_endpoint": endpoint})
    try:
        tenant, subscription = str(uuid.uuid4()), str(uuid.uuid4())
        credential = ClientSecretCredential(
            tenant,
            str(uuid.uuid4()),
            "emulator-secret",
            authority=emulator.authority,
            disable_instance_discovery=True,
            connection_verify=str(emulator.ca_path),
        )
        storage = Storage(credential, subscription, arm_url=emulator.origin, ca_bundle=str(emulator.ca_path))
        assert storage.find(RG, "eastus2") is None  # no account yet: the caller falls back
        made = storage.ensure(RG, "eastus2", 30)
        assert made is not None
        found = storage.find(RG, "eastus2")
        assert found == made
        assert found.blob_url == endpoint

        # Azurite has no ARM: the container ARM made is made here too (tests only). The one
        # Azurite of the test session stands for every account, so another test (the API's
        # read-back, tests/e2e/test_logs_azure.py) may have made it first; blobs are kept apart
        # by their tenant and cluster ids.
        key = AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)
        service = BlobServiceClient(found.blob_url, credential=key)
        with contextlib.suppress(ResourceExistsError):
            service.get_container_client(CONTAINER).create_container()
        store = BlobLogStore("", found.container, service=service)

        # The shipper writes a session's logs ...
        root = tmp_path / "ray"
        logs = root / "session_1" / "logs"
        (logs / "serve").mkdir(parents=True)
        (root / "session_latest").symlink_to(root / "session_1")
        (logs / "raylet.out").write_bytes(b"raylet line\n")
        (logs / "serve" / "controller_1.log").write_bytes(b"serve line\n")
        config = ShipperConfig("https://unused.blob.core.windows.net/", CONTAINER, "ten_1", "clu_9", 0.2, str(root))
        stop = threading.Event()
        stop.set()  # one final pass, as on TERM
        PodShipper(store, config, "cpu-x1y2z", stop).run()

        # ... and the read side lists and reads them by node and component.
        listed = [(f.node, f.component, f.path, f.size) for f in store.files("ten_1", "clu_9")]
        assert listed == [
            ("cpu-x1y2z", "raylet", "raylet.out", 12),
            ("cpu-x1y2z", "serve", "serve/controller_1.log", 11),
        ]
        assert store.read(LogKey("ten_1", "clu_9", "cpu-x1y2z", "raylet.out")) == b"raylet line\n"
        assert store.tail(LogKey("ten_1", "clu_9", "cpu-x1y2z", "serve/controller_1.log"), 1) == b"serve line\n"
    finally:
        emulator.request_json("PUT", "/_emulator/arm/config", {"blob_endpoint": before.get("blob_endpoint")})
