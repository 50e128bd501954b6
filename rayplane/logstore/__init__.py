"""Durable logs of clusters: a small store of append-only files per (tenant, cluster, node,
component), in Azure Blob Storage (Azurite locally) or, without it, a local directory.

``base`` is the interface, ``blob`` and ``directory`` its implementations, ``open_store``
picks one from a URL, ``shipper`` tails a Ray node's session logs into a store.
"""

from rayplane.logstore.base import (
    AZURITE_ACCOUNT,
    AZURITE_KEY,
    LogFile,
    LogKey,
    LogStore,
    OffsetMismatch,
    SearchHit,
    azurite_connection_string,
    component_of,
    open_store,
)

__all__ = [
    "AZURITE_ACCOUNT",
    "AZURITE_KEY",
    "LogFile",
    "LogKey",
    "LogStore",
    "OffsetMismatch",
    "SearchHit",
    "azurite_connection_string",
    "component_of",
    "open_store",
]
