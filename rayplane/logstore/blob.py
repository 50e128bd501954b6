"""The log store in Azure Blob Storage (Azurite locally): one append blob per log file, in
one container per deployment, through the real ``azure-storage-blob`` SDK.

The blob's committed length is the shipper's offset: ``append_block`` carries
``appendpos_condition``, so an append that the service has already applied (a retry after
a lost answer) or that another writer raced is refused instead of written twice.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from rayplane.logstore.base import LogFile, LogKey, LogStore, OffsetMismatch, parse_name

# Azure's append blocks take at most 100 MiB (4 MiB before service version 2022-11-02);
# the smaller keeps every service version and Azurite happy.
MAX_BLOCK = 4 * 1024 * 1024


class BlobLogStore(LogStore):
    def __init__(self, connection_string: str, container: str, *, service: BlobServiceClient | None = None) -> None:
        self._service = service or BlobServiceClient.from_connection_string(connection_string)
        self._name = container
        self._ready = False
        self._lock = threading.Lock()

    @classmethod
    def for_account(
        cls,
        account_url: str,
        container: str,
        credential: TokenCredential | AzureNamedKeyCredential,
        *,
        ca_bundle: str | None = None,
    ) -> BlobLogStore:
        """A store in a customer's account, reached with an Entra token (``credential``): the
        account has no shared keys (a named key only for Azurite's development account outside
        production, :mod:`rayplane.providers.azure.logreads`). Its container is made by ARM, so
        none is created here."""
        kwargs: dict[str, Any] = {"connection_verify": ca_bundle} if ca_bundle else {}
        store = cls("", container, service=BlobServiceClient(account_url, credential=credential, **kwargs))
        store._ready = True
        return store

    def _container(self) -> ContainerClient:
        client = self._service.get_container_client(self._name)
        if not self._ready:
            with self._lock:
                if not self._ready:
                    with contextlib.suppress(ResourceExistsError):
                        client.create_container()
                    self._ready = True
        return client

    def size(self, key: LogKey) -> int:
        try:
            return int(self._container().get_blob_client(key.name).get_blob_properties().size)
        except ResourceNotFoundError:
            return 0

    def append(self, key: LogKey, data: bytes, *, offset: int) -> int:
        blob = self._container().get_blob_client(key.name)
        if offset == 0:
            # IfMissing: creating again would truncate a blob another writer has begun.
            with contextlib.suppress(ResourceExistsError):
                blob.create_append_blob(match_condition=MatchConditions.IfMissing)
        size = offset
        for start in range(0, len(data), MAX_BLOCK):
            block = data[start : start + MAX_BLOCK]
            try:
                blob.append_block(block, appendpos_condition=size)
            except ResourceNotFoundError:
                raise OffsetMismatch(0) from None
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    raise OffsetMismatch(self.size(key)) from None
                raise
            size += len(block)
        return size

    def files(
        self, tenant: str, cluster: str, *, node: str | None = None, after: str | None = None, limit: int | None = None
    ) -> list[LogFile]:
        # Blob listings come in name order, which is the order promised; Blob Storage has no
        # "start after", so a later page lists (and skips) the names before it. The iterator
        # fetches pages lazily and the loop stops at ``limit``: no listing past the page wanted.
        prefix = f"{tenant}/{cluster}/"
        out: list[LogFile] = []
        if limit == 0:
            return out
        where = f"{prefix}{node}/" if node is not None else prefix
        for item in self._container().list_blobs(name_starts_with=where):
            parsed = parse_name(prefix, item.name)
            if parsed is None or (after is not None and item.name[len(prefix) :] <= after):
                continue
            name, component, path = parsed
            out.append(LogFile(name, component, path, int(item.size or 0), item.last_modified))
            if limit is not None and len(out) >= limit:
                break
        return out

    def purge(self, older_than: datetime, *, tenant: str | None = None, skip: frozenset[str] = frozenset()) -> int:
        container = self._container()
        removed = 0
        for item in container.list_blobs(name_starts_with=f"{tenant}/" if tenant else None):
            if item.name.split("/", 1)[0] in skip:
                continue
            if item.last_modified is not None and item.last_modified < older_than:
                with contextlib.suppress(ResourceNotFoundError):  # another purger was first
                    container.delete_blob(item.name)
                    removed += 1
        return removed

    def read(self, key: LogKey, offset: int = 0, length: int | None = None) -> bytes:
        blob = self._container().get_blob_client(key.name)
        try:
            if length == 0:
                blob.get_blob_properties()
                return b""
            return bytes(blob.download_blob(offset=offset, length=length).readall())
        except ResourceNotFoundError:
            raise FileNotFoundError(key.name) from None
        except HttpResponseError as exc:
            if exc.status_code == 416:  # the range starts past the end
                return b""
            raise
