"""A tenant-named storage account for durable logs (the cloud's ``log_storage_account_id``), on
the emulated ARM through the real SDKs: Rayplane creates no account, adds the ``ray-logs``
container and its retention rule beside the tenant's own rules, grants each cluster's identity
"Storage Blob Data Contributor" on that container, and the read side finds that account; a
missing account is a TerminalError naming the fix; a lifecycle policy Rayplane may not write is
a warning, not a failure."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.storage.models import ManagementPolicy, StorageAccountCreateParameters
from pydantic import SecretStr

from emulators.azure.kube.testing import wait_for
from emulators.azure.server import EmulatorProcess
from rayplane.logstore.blob import BlobLogStore
from rayplane.providers.azure import logreads, logsink, shipper, workload
from rayplane.providers.azure.credentials import credential_for
from rayplane.providers.azure.podship import ShipperConfig
from rayplane.providers.azure.provider import AzureProvider
from rayplane.providers.base import TerminalError
from rayplane.settings import Settings
from tests.providers.test_azure_durable_logs import APP_ID, _clients, _target
from tests.support.emulators import kube_knobs

RG, SHARED = "ml", "shared"
TENANT_RULE = {
    "name": "tenant-archive",
    "enabled": True,
    "type": "Lifecycle",
    "definition": {
        "filters": {"blobTypes": ["blockBlob"], "prefixMatch": ["archive/"]},
        "actions": {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": 400}}},
    },
}


@pytest.fixture
def settings(azure_settings: Settings, emulator: EmulatorProcess) -> Settings:
    return azure_settings.model_copy(
        update={
            "azure_client_id": APP_ID,
            "azure_client_secret": SecretStr("emulator-secret"),
            "azure_arm_url": emulator.origin,
        }
    )


def _config(**over: Any) -> dict[str, Any]:
    return {
        "subscription_id": str(uuid.uuid4()),
        "resource_group": RG,
        "region": "eastus2",
        "tenant_id": str(uuid.uuid4()),
        "auth_mode": "app_consent",
        "aks_mode": "managed",
        "aks_cluster_name": "rayplane",
        **over,
    }


def _tenants_account(c: dict[str, Any], name: str) -> str:
    """The tenant's own account (with a lifecycle rule of its own), made as the tenant would; its id."""
    body = {"location": "eastus2", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}, "properties": {}}
    made = c["storage"].storage_accounts.begin_create(SHARED, name, StorageAccountCreateParameters(body)).result()
    policy = {"properties": {"policy": {"rules": [TENANT_RULE]}}}
    c["storage"].management_policies.create_or_update(SHARED, name, "default", ManagementPolicy(policy))
    return str(made.id)


def _storage(settings: Settings, config: dict[str, Any]) -> logsink.Storage:
    return logsink.Storage(
        credential_for(settings, config),
        config["subscription_id"],
        arm_url=settings.azure_arm_url,
        ca_bundle=str(settings.ca_bundle),
    )


def test_a_cluster_uses_the_tenants_account(settings: Settings, emulator: EmulatorProcess) -> None:
    config = _config()
    c = _clients(emulator, config)
    name = f"tl{uuid.uuid4().hex[:12]}"
    account_id = _tenants_account(c, name)
    config["log_storage_account_id"] = account_id
    before = emulator.request_json("GET", "/_emulator/arm/config")
    emulator.request_json("PUT", "/_emulator/arm/config", {"operation_seconds": 0.2, "retry_after": 0})
    knobs = contextlib.ExitStack()
    try:
        knobs.enter_context(kube_knobs(emulator, node_boot_seconds=0.3))
        provider = AzureProvider(settings)
        target = _target(config, "clu_named1")
        state: dict[str, Any] = {}

        def applied() -> bool:
            nonlocal state
            step = provider.ensure(target, state)
            state = step.state
            assert not [e for e in step.events if e.kind == "logs"]  # the policy was written: no warning
            return bool(state.get("applied"))

        wait_for(applied, timeout=60, what="the RayCluster applied")
        namespace = state["namespace"]

        # No account of Rayplane's: the tenant's, with the container and both lifecycle rules.
        with pytest.raises(ResourceNotFoundError):
            c["storage"].storage_accounts.get_properties(
                RG, logsink.account_name(config["subscription_id"], RG, "eastus2")
            )
        assert c["storage"].blob_containers.get(SHARED, name, logsink.CONTAINER).name == logsink.CONTAINER
        rules = c["storage"].management_policies.get(SHARED, name, "default").as_dict()["properties"]["policy"]["rules"]
        assert {r["name"]: r["definition"]["actions"]["baseBlob"]["delete"] for r in rules} == {
            "tenant-archive": {"daysAfterModificationGreaterThan": 400},
            logsink.POLICY_RULE: {"daysAfterModificationGreaterThan": 9},
        }

        # The cluster's identity may write that account's container, and only that.
        identity = c["msi"].user_assigned_identities.get(RG, workload.identity_name(namespace))
        scope = f"{account_id}/blobServices/default/containers/{logsink.CONTAINER}"
        granted = c["authz"].role_assignments.list_for_scope(scope, filter=f"principalId eq '{identity.principal_id}'")
        assert [(a.scope, a.role_definition_id.rsplit("/", 1)[-1]) for a in granted] == [
            (scope, workload.BLOB_DATA_CONTRIBUTOR)
        ]
        account = c["storage"].storage_accounts.get_properties(SHARED, name).as_dict()
        endpoint = account["properties"]["primaryEndpoints"]["blob"]
        cm = provider.kube_for(config).get("v1", "ConfigMap", shipper.CONFIG_MAP, namespace)
        assert cm is not None
        assert ShipperConfig.from_json(cm["data"][shipper.CONFIG_KEY]).account_url == endpoint

        # The read side finds the same account.
        store = logreads.customer_store(settings, config)
        assert isinstance(store, BlobLogStore)
        assert store._service.url.rstrip("/") == endpoint.rstrip("/")

        # Teardown revokes the grant on the tenant's container; the account stays.
        wait_for(lambda: not provider.teardown(target, state).state, timeout=30, what="the teardown")
        assert not list(
            c["authz"].role_assignments.list_for_scope(scope, filter=f"principalId eq '{identity.principal_id}'")
        )
        assert c["storage"].storage_accounts.get_properties(SHARED, name).name == name
    finally:
        knobs.close()
        emulator.request_json(
            "PUT", "/_emulator/arm/config", {k: before[k] for k in ("operation_seconds", "retry_after")}
        )


def test_a_missing_account_is_terminal_and_names_the_fix(settings: Settings) -> None:
    config = _config()
    group = f"/subscriptions/{config['subscription_id']}/resourceGroups/{SHARED}"
    missing = f"{group}/providers/Microsoft.Storage/storageAccounts/nosuchlogs"
    with pytest.raises(TerminalError) as refused:
        _storage(settings, config).ensure_named(missing, 30)
    assert refused.value.code == "LogStorageAccountNotFound"
    assert "log_storage_account_id" in refused.value.message
    assert _storage(settings, config).find(RG, "eastus2", missing) is None  # the read side: no store yet


def test_a_policy_rayplane_may_not_write_is_a_warning_event(settings: Settings, emulator: EmulatorProcess) -> None:
    config = _config()
    c = _clients(emulator, config)
    name = f"tl{uuid.uuid4().hex[:12]}"
    account_id = _tenants_account(c, name)
    config["log_storage_account_id"] = account_id
    current = emulator.request_json("GET", "/_emulator/arm/config")
    emulator.request_json(
        "PUT",
        "/_emulator/arm/config",
        {
            "enforce_roles_subscriptions": [*current["enforce_roles_subscriptions"], config["subscription_id"]],
            "operation_seconds": 0.2,
            "retry_after": 0,
        },
    )
    knobs = contextlib.ExitStack()
    try:
        knobs.enter_context(kube_knobs(emulator, node_boot_seconds=0.3))
        # Rayplane's app: Contributor and the right to assign roles where the clusters run; on the
        # tenant's account it may read, make containers and grant access, not change the policy.
        emulator.assign_role(
            f"/subscriptions/{config['subscription_id']}/resourceGroups/{RG}", "Contributor", client_id=APP_ID
        )
        emulator.assign_role(account_id, "User Access Administrator", client_id=APP_ID)
        emulator.assign_role(account_id, "Storage Blob Data Contributor", client_id=APP_ID)
        provider = AzureProvider(settings)
        target = _target(config, "clu_named2")
        state: dict[str, Any] = {}
        events: list[Any] = []

        def applied() -> bool:
            nonlocal state
            step = provider.ensure(target, state)
            state = step.state
            events.extend(step.events)
            return bool(state.get("applied"))

        wait_for(applied, timeout=60, what="the RayCluster applied despite the policy")
        wait_for(lambda: not provider.teardown(target, state).state, timeout=30, what="the teardown")
    finally:
        knobs.close()
        emulator.request_json(
            "PUT",
            "/_emulator/arm/config",
            {k: current[k] for k in ("enforce_roles_subscriptions", "operation_seconds", "retry_after")},
        )
    warnings = [e for e in events if e.kind == "logs"]
    assert [e.code for e in warnings] == ["LifecyclePolicyNotWritten"]  # once, not on every pass
    assert "AuthorizationFailed" in warnings[0].reason
    assert logsink.POLICY_RULE in warnings[0].reason
    assert c["storage"].blob_containers.get(SHARED, name, logsink.CONTAINER).name == logsink.CONTAINER
    rules = c["storage"].management_policies.get(SHARED, name, "default").as_dict()["properties"]["policy"]["rules"]
    assert [r["name"] for r in rules] == ["tenant-archive"]  # the tenant's policy untouched
