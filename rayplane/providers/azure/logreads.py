"""The read side of durable logs on Azure: a log store over the customer's own account, reached
with the cloud's credential (the same Entra app and mode as the AKS calls; the account has no
keys). The account is found by its name (a pure function of the cloud, :mod:`.logsink`) with
one ARM GET (or, for a cloud naming ``log_storage_account_id``, that tenant-owned account by its
id), so logs stay readable for their retention after the cluster, its identity and its
provider state are gone. Stores are cached per cloud and region in this process; a cloud
whose account does not exist yet has none (the caller falls back to the deployment's store).

**Outside production only:** an account whose blob endpoint is Azurite's development account on
loopback (``http://127.0.0.1:<port>/devstoreaccount1/``, where the Azure emulator maps accounts
for the demo and the tests) is read with that account's published well-known key, because
Azurite takes bearer tokens only over HTTPS and only from Entra's own issuers. No real account
has such an endpoint, and in production (``RAYPLANE_ENV=production``) the mapping is never made.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AzureNamedKeyCredential

from rayplane.logstore import AZURITE_ACCOUNT, AZURITE_KEY, LogStore
from rayplane.logstore.blob import BlobLogStore
from rayplane.providers.azure.credentials import credential_for
from rayplane.providers.azure.logsink import Storage
from rayplane.settings import Settings

_stores: dict[str, LogStore] = {}
_lock = threading.Lock()


def customer_store(settings: Settings, config: dict[str, Any]) -> LogStore | None:
    """The cloud's log store, or None while its account does not exist. Blocking (ARM, once)."""
    named = config.get("log_storage_account_id")
    key = json.dumps(
        [settings.azure_arm_url, config["subscription_id"], config["resource_group"], config["region"], named]
    )
    with _lock:
        found = _stores.get(key)
    if found is not None:
        return found
    credential = credential_for(settings, config)
    ca = str(settings.ca_bundle) if settings.ca_bundle else None
    storage = Storage(credential, config["subscription_id"], arm_url=settings.azure_arm_url, ca_bundle=ca)
    sink = storage.find(config["resource_group"], config["region"], named)
    if sink is None or not sink.blob_url:
        return None
    blob_credential = _development_key(settings, sink.blob_url) or credential
    store = BlobLogStore.for_account(sink.blob_url, sink.container, blob_credential, ca_bundle=ca)
    with _lock:
        return _stores.setdefault(key, store)


def _development_key(settings: Settings, url: str) -> AzureNamedKeyCredential | None:
    """Azurite's development-account key for its loopback endpoint, outside production only."""
    parts = urlsplit(url)
    if (
        settings.is_dev
        and parts.scheme == "http"
        and parts.hostname in ("127.0.0.1", "localhost")
        and parts.path.strip("/") == AZURITE_ACCOUNT
    ):
        return AzureNamedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)
    return None
