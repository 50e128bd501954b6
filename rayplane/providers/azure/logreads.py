"""The read side of durable logs on Azure: a log store over the customer's own account, reached
with the cloud's credential (the same Entra app and mode as the AKS calls; the account has no
keys). The account is found by its name (a pure function of the cloud, :mod:`.logsink`) with
one ARM GET (or, for a cloud naming ``log_storage_account_id``, that tenant-owned account by its
id), so logs stay readable for their retention after the cluster, its identity and its
provider state are gone. Stores are cached per cloud and region in this process; a cloud
whose account does not exist yet has none (the caller falls back to the deployment's store).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from rayplane.logstore import LogStore
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
    store = BlobLogStore.for_account(sink.blob_url, sink.container, credential, ca_bundle=ca)
    with _lock:
        return _stores.setdefault(key, store)
