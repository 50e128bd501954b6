"""Where an Azure cluster's Ray logs go: a storage account and container in the customer's
subscription (the cloud's resource group), made through the real ``azure-mgmt-storage`` SDK
with the same credential as the AKS calls.

One account per cloud and region (its name a pure function of subscription, resource group
and region, so every worker and every retry names the same one): StorageV2, HTTPS only,
TLS 1.2 at least, **no shared keys** (``allowSharedKeyAccess: false``: only Entra tokens, so no
account key exists that could leak), no public blob access. The container ``ray-logs`` holds
the log store's layout ``<tenant>/<cluster>/<node>/<component>/<path>``; a lifecycle rule
deletes blobs not modified for the retention window, so logs outlive their cluster by exactly
that long even when no Rayplane worker purges them.

Idempotent create-or-get: ``ensure`` GETs first and writes only what is missing or differs,
so a retried pass costs reads only. Account names are global across Azure: a name someone
else holds answers ``StorageAccountAlreadyTaken``, reported as a terminal error naming the
fix. Account creation is an LRO: one look per call (:class:`~.aks.StepPolling`); while it
runs ``ensure`` returns None and the next pass looks again (the GET sees ``Creating``).

**A tenant-named account** (the cloud's ``log_storage_account_id``, :meth:`Storage.ensure_named`):
Rayplane creates and changes no account. It checks the account exists (a TerminalError naming
the fix otherwise), makes the container if missing, and adds its retention rule to the account's
lifecycle policy *beside* the rules already there. The tenant owns that account, so a policy
Rayplane may not write is a warning (returned, recorded as a cluster event), not a failure: the
logs then stay until the tenant's own rules delete them. The account's own settings (shared
keys, TLS) are the tenant's and are left as they are.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.models import BlobContainer, ManagementPolicy, StorageAccountCreateParameters

from rayplane.providers.azure.aks import StepPolling, classify, step
from rayplane.providers.base import ProviderError, RetriableError, TerminalError

CONTAINER = "ray-logs"
POLICY_RULE = "rayplane-log-retention"
ACCOUNT_PREFIX = "rplogs"
# What an account must say for Rayplane to use it as is (else it is updated to say so).
_HARDENED = {"allowSharedKeyAccess": False, "minimumTlsVersion": "TLS1_2", "supportsHttpsTrafficOnly": True}
# An account's ARM id: what a cloud's ``log_storage_account_id`` must be (checked at the API too).
ACCOUNT_ID = re.compile(
    r"^/subscriptions/(?P<sub>[0-9a-fA-F-]{36})/resourceGroups/(?P<rg>[-\w\._\(\)]{1,90})"
    r"/providers/Microsoft\.Storage/storageAccounts/(?P<name>[a-z0-9]{3,24})$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LogSink:
    """A ready account and container: what the shipper writes to and the read side reads."""

    account: str
    container: str
    blob_url: str  # the account's blob endpoint, ``https://<account>.blob.core.windows.net/``
    account_id: str  # ARM id of the account

    @property
    def container_id(self) -> str:
        """ARM id of the container: the scope of the shipper's role assignment."""
        return f"{self.account_id}/blobServices/default/containers/{self.container}"


def account_name(subscription_id: str, resource_group: str, region: str) -> str:
    """``rplogs`` + 18 hex digits of a hash: 24 lowercase alphanumerics, as Azure requires."""
    key = f"{subscription_id}|{resource_group}|{region}".lower()
    return ACCOUNT_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:18]


def parse_account_id(account_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, account name) of an account's ARM id; ValueError otherwise."""
    found = ACCOUNT_ID.match(account_id.strip())
    if found is None:
        raise ValueError(f"not the ARM id of a storage account: {account_id!r}")
    return found.group("sub"), found.group("rg"), found.group("name")


def account_body(region: str) -> dict[str, Any]:
    return {
        "location": region,
        "kind": "StorageV2",
        "sku": {"name": "Standard_LRS"},
        "tags": {"rayplane.io/purpose": "ray-logs"},
        "properties": {**_HARDENED, "allowBlobPublicAccess": False},
    }


def policy_body(retention_days: int) -> dict[str, Any]:
    """One lifecycle rule: delete the container's blobs ``retention_days`` after their last write."""
    rule = {
        "name": POLICY_RULE,
        "enabled": True,
        "type": "Lifecycle",
        "definition": {
            "filters": {"blobTypes": ["appendBlob", "blockBlob"], "prefixMatch": [f"{CONTAINER}/"]},
            "actions": {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": retention_days}}},
        },
    }
    return {"properties": {"policy": {"rules": [rule]}}}


def merged_policy(current: dict[str, Any], retention_days: int) -> dict[str, Any]:
    """``current`` (a management policy's JSON) with Rayplane's rule added or replaced and every
    other rule kept: an account holds one policy, and a tenant's own rules must survive."""
    rules = [
        r
        for r in ((current.get("properties") or {}).get("policy") or {}).get("rules") or []
        if r.get("name") != POLICY_RULE
    ]
    ours = policy_body(retention_days)["properties"]["policy"]["rules"]
    return {"properties": {"policy": {"rules": [*rules, *ours]}}}


def _retention_of(policy: dict[str, Any]) -> int | None:
    for rule in (policy.get("properties") or {}).get("policy", {}).get("rules", []):
        if rule.get("name") == POLICY_RULE:
            delete = rule.get("definition", {}).get("actions", {}).get("baseBlob", {}).get("delete", {})
            days = delete.get("daysAfterModificationGreaterThan")
            return int(days) if days is not None else None
    return None


class Storage:
    """One subscription's storage accounts through ``azure-mgmt-storage``."""

    def __init__(
        self, credential: TokenCredential, subscription_id: str, *, arm_url: str, ca_bundle: str | None
    ) -> None:
        kwargs: dict[str, Any] = {"base_url": arm_url, "polling_interval": 0, "retry_backoff_factor": 0.2}
        if ca_bundle:
            kwargs["connection_verify"] = ca_bundle
        self.subscription_id = subscription_id
        self.client = StorageManagementClient(credential, subscription_id, **kwargs)

    def _polling(self) -> StepPolling:
        return StepPolling(0, path_format_arguments={"endpoint": self.client._config.base_url})

    def _get(self, rg: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.storage_accounts.get_properties(rg, name).as_dict())
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise classify(exc, f"reading storage account {name}") from exc

    def find(self, rg: str, region: str, account_id: str | None = None) -> LogSink | None:
        """The cloud's sink if its account exists (one GET, no write): for the read side. With
        ``account_id`` (the cloud's ``log_storage_account_id``) that account, else the one
        Rayplane names for the cloud."""
        if account_id:
            _, rg, name = parse_account_id(account_id)
        else:
            name = account_name(self.subscription_id, rg, region)
        found = self._get(rg, name)
        return None if found is None else _sink(name, found)

    def ensure_named(self, account_id: str, retention_days: int) -> tuple[LogSink, str | None]:
        """The sink in the tenant's own account ``account_id`` (never created or changed here):
        its container made if missing, Rayplane's retention rule merged into its lifecycle
        policy. Returns the sink and a warning when the policy could not be written (the
        tenant's account: not a failure). TerminalError when the account does not exist."""
        _, rg, name = parse_account_id(account_id)
        found = self._get(rg, name)
        if found is None:
            raise TerminalError(
                f"the storage account {name} (the cloud's log_storage_account_id) was not found in resource "
                f"group {rg}: create it, give Rayplane's app a role that can read it (Contributor or "
                "Storage Account Contributor), or register the cloud without log_storage_account_id to let "
                "Rayplane create one",
                code="LogStorageAccountNotFound",
            )
        if (found.get("properties") or {}).get("provisioningState", "Succeeded") != "Succeeded":
            raise RetriableError(f"storage account {name} is not ready yet", code="StorageAccountNotReady")
        self._ensure_container(rg, name)
        try:
            self._ensure_policy(rg, name, retention_days)
        except ProviderError as exc:
            return _sink(name, found), (
                f"could not write the lifecycle rule {POLICY_RULE} on storage account {name} ({exc.code}: "
                f"{exc.message[:200]}); logs there are not deleted after {retention_days} days unless the "
                "account's own lifecycle rules do it. Give Rayplane's app Storage Account Contributor on the "
                "account, or add the rule yourself"
            )
        return _sink(name, found), None

    def ensure(self, rg: str, region: str, retention_days: int) -> LogSink | None:
        """The cloud's log sink, made or corrected as needed; None while the account is being created."""
        name = account_name(self.subscription_id, rg, region)
        found = self._get(rg, name)
        # azure-mgmt-storage's models give ARM's own JSON: camelCase, ``properties`` nested.
        props = dict((found or {}).get("properties") or {})
        if found is not None and props.get("provisioningState", "Succeeded") != "Succeeded":
            return None
        if found is None or any(props.get(k) != v for k, v in _HARDENED.items()):
            what = f"creating storage account {name}"
            try:
                poller = self.client.storage_accounts.begin_create(
                    rg, name, StorageAccountCreateParameters(account_body(region)), polling=self._polling()
                )
            except Exception as exc:
                error = classify(exc, what)
                if error.code == "StorageAccountAlreadyTaken":
                    raise TerminalError(
                        f"the storage account name {name} for this cloud's logs is taken by another Azure "
                        "customer; name an existing account on the cloud account instead",
                        code=error.code,
                    ) from exc
                raise error from exc
            st = step(poller, what)
            if not st.done:
                return None
            found = st.resource or self._get(rg, name) or {}
        sink = _sink(name, found)
        self._ensure_container(rg, name)
        self._ensure_policy(rg, name, retention_days)
        return sink

    def _ensure_container(self, rg: str, name: str) -> None:
        try:
            self.client.blob_containers.get(rg, name, CONTAINER)
            return
        except ResourceNotFoundError:
            pass
        except Exception as exc:
            raise classify(exc, f"reading container {CONTAINER}") from exc
        try:
            self.client.blob_containers.create(
                rg, name, CONTAINER, BlobContainer({"properties": {"publicAccess": "None"}})
            )
        except Exception as exc:
            raise classify(exc, f"creating container {CONTAINER}") from exc

    def _ensure_policy(self, rg: str, name: str, retention_days: int) -> None:
        try:
            current = self.client.management_policies.get(rg, name, "default").as_dict()
        except ResourceNotFoundError:
            current = {}
        except Exception as exc:
            raise classify(exc, f"reading the lifecycle policy of {name}") from exc
        if _retention_of(current) == retention_days:
            return
        try:
            self.client.management_policies.create_or_update(
                rg, name, "default", ManagementPolicy(merged_policy(current, retention_days))
            )
        except Exception as exc:
            raise classify(exc, f"writing the lifecycle policy of {name}") from exc


def _sink(name: str, account: dict[str, Any]) -> LogSink:
    endpoints = (account.get("properties") or {}).get("primaryEndpoints") or {}
    return LogSink(name, CONTAINER, str(endpoints.get("blob") or ""), str(account.get("id") or ""))
