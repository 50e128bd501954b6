"""The emulated ``Microsoft.Storage`` and ``Microsoft.ManagedIdentity`` providers through the real
``azure-mgmt-storage`` and ``azure-mgmt-msi`` SDKs: storage accounts (names, global uniqueness,
hardening fields), containers, lifecycle policies, user-assigned identities and their federated
identity credentials."""

# ruff: noqa: F811 - the shared fixtures are imported and then named as parameters

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.msi import ManagedServiceIdentityClient
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.models import BlobContainer, ManagementPolicy, StorageAccountCreateParameters

from emulators.azure.server import EmulatorProcess
from tests.emulators.arm_support import RG, configure, credential, emu, error_code, sub  # noqa: F401

ISSUER = "https://oidc.example.test/tenant/issuer/"


def _options(emu: EmulatorProcess) -> dict[str, Any]:
    return {"base_url": emu.origin, "connection_verify": str(emu.ca_path), "polling_interval": 0}


def _storage(emu: EmulatorProcess, subscription: str) -> StorageManagementClient:
    return StorageManagementClient(credential(emu), subscription, **_options(emu))


def _msi(emu: EmulatorProcess, subscription: str) -> ManagedServiceIdentityClient:
    return ManagedServiceIdentityClient(credential(emu), subscription, **_options(emu))


def _account(**props: Any) -> StorageAccountCreateParameters:
    return StorageAccountCreateParameters(
        {
            "location": "eastus",
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS"},
            "properties": {"allowSharedKeyAccess": False, "minimumTlsVersion": "TLS1_2", **props},
        }
    )


def _name() -> str:
    return "t" + uuid.uuid4().hex[:20]


def test_storage_account_container_and_policy(emu: EmulatorProcess, sub: str) -> None:
    client, name = _storage(emu, sub), _name()
    made = client.storage_accounts.begin_create(RG, name, _account()).result()
    assert made.name == name
    assert made.kind == "StorageV2"
    props = client.storage_accounts.get_properties(RG, name).as_dict()["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["primaryEndpoints"]["blob"] == f"https://{name}.blob.core.windows.net/"

    created = client.blob_containers.create(
        RG, name, "ray-logs", BlobContainer({"properties": {"publicAccess": "None"}})
    )
    assert created.name == "ray-logs"
    assert client.blob_containers.get(RG, name, "ray-logs").name == "ray-logs"
    with pytest.raises(HttpResponseError) as bad:
        client.blob_containers.create(RG, name, "Bad_Name", BlobContainer({"properties": {}}))
    assert bad.value.status_code == 400

    rule = {
        "name": "r",
        "enabled": True,
        "type": "Lifecycle",
        "definition": {
            "filters": {"blobTypes": ["appendBlob"]},
            "actions": {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": 7}}},
        },
    }
    client.management_policies.create_or_update(
        RG, name, "default", ManagementPolicy({"properties": {"policy": {"rules": [rule]}}})
    )
    policy = client.management_policies.get(RG, name, "default").as_dict()
    assert policy["properties"]["policy"]["rules"] == [rule]
    with pytest.raises(HttpResponseError) as empty:
        client.management_policies.create_or_update(
            RG, name, "default", ManagementPolicy({"properties": {"policy": {"rules": []}}})
        )
    assert error_code(empty.value) == "InvalidManagementPolicyRules"

    client.storage_accounts.delete(RG, name)
    with pytest.raises(ResourceNotFoundError):
        client.storage_accounts.get_properties(RG, name)


def test_storage_account_names_are_checked_and_global(emu: EmulatorProcess, sub: str) -> None:
    client = _storage(emu, sub)
    for bad in ("ab", "UpperCase1", "has-hyphen", "a" * 25):
        with pytest.raises(HttpResponseError) as exc:
            client.storage_accounts.begin_create(RG, bad, _account()).result()
        assert error_code(exc.value) == "AccountNameInvalid", bad
    name = _name()
    client.storage_accounts.begin_create(RG, name, _account()).result()
    # Idempotent in its own group; taken for anyone else.
    client.storage_accounts.begin_create(RG, name, _account()).result()
    other = _storage(emu, str(uuid.uuid4()))
    with pytest.raises(HttpResponseError) as taken:
        other.storage_accounts.begin_create(RG, name, _account()).result()
    assert taken.value.status_code == 409
    assert error_code(taken.value) == "StorageAccountAlreadyTaken"


def test_blob_endpoint_can_name_another_service(emu: EmulatorProcess, sub: str) -> None:
    earlier = _name()
    _storage(emu, sub).storage_accounts.begin_create(RG, earlier, _account()).result()
    configure(emu, blob_endpoint="http://127.0.0.1:10000/{account}/")
    try:
        name = _name()
        made = _storage(emu, sub).storage_accounts.begin_create(RG, name, _account()).result()
        assert made.primary_endpoints is not None
        assert made.primary_endpoints.blob == f"http://127.0.0.1:10000/{name}/"
        # An account made before the setting reports the endpoint configured now.
        before = _storage(emu, sub).storage_accounts.get_properties(RG, earlier)
        assert before.primary_endpoints is not None
        assert before.primary_endpoints.blob == f"http://127.0.0.1:10000/{earlier}/"
    finally:
        configure(emu, blob_endpoint=None)
    after = _storage(emu, sub).storage_accounts.get_properties(RG, earlier)
    assert after.primary_endpoints is not None
    assert after.primary_endpoints.blob == f"https://{earlier}.blob.core.windows.net/"


def test_identity_and_federated_credentials(emu: EmulatorProcess, sub: str) -> None:
    msi = _msi(emu, sub)
    identity = msi.user_assigned_identities.create_or_update(RG, "ray-c1", {"location": "eastus"})
    assert identity.client_id
    assert identity.principal_id
    assert identity.tenant_id
    again = msi.user_assigned_identities.get(RG, "ray-c1")
    assert (again.client_id, again.principal_id) == (identity.client_id, identity.principal_id)

    body = {
        "properties": {
            "issuer": ISSUER,
            "subject": "system:serviceaccount:ns1:rayplane-logs",
            "audiences": ["api://AzureADTokenExchange"],
        }
    }
    fic = msi.federated_identity_credentials.create_or_update(RG, "ray-c1", "logs", body)
    assert fic.subject == "system:serviceaccount:ns1:rayplane-logs"
    assert fic.issuer == ISSUER
    assert fic.audiences == ["api://AzureADTokenExchange"]
    assert [f.name for f in msi.federated_identity_credentials.list(RG, "ray-c1")] == ["logs"]
    with pytest.raises(HttpResponseError) as dup:
        msi.federated_identity_credentials.create_or_update(RG, "ray-c1", "logs2", body)
    assert error_code(dup.value) == "FederatedIdentityCredentialAlreadyExists"
    bad = {"properties": {**body["properties"], "issuer": "http://insecure.test/"}}
    with pytest.raises(HttpResponseError) as insecure:
        msi.federated_identity_credentials.create_or_update(RG, "ray-c1", "logs3", bad)
    assert insecure.value.status_code == 400
    two = {"properties": {**body["properties"], "audiences": ["a", "b"]}}
    with pytest.raises(HttpResponseError) as audiences:
        msi.federated_identity_credentials.create_or_update(RG, "ray-c1", "logs4", two)
    assert audiences.value.status_code == 400

    msi.user_assigned_identities.delete(RG, "ray-c1")
    with pytest.raises(ResourceNotFoundError):
        msi.user_assigned_identities.get(RG, "ray-c1")
    # Its credentials went with it: a new identity of the same name starts with none.
    msi.user_assigned_identities.create_or_update(RG, "ray-c1", {"location": "eastus"})
    assert list(msi.federated_identity_credentials.list(RG, "ray-c1")) == []


def test_federated_credentials_are_limited_to_twenty(emu: EmulatorProcess, sub: str) -> None:
    msi = _msi(emu, sub)
    msi.user_assigned_identities.create_or_update(RG, "many", {"location": "eastus"})
    for i in range(20):
        body = {"properties": {"issuer": ISSUER, "subject": f"s{i}", "audiences": ["api://AzureADTokenExchange"]}}
        msi.federated_identity_credentials.create_or_update(RG, "many", f"f{i}", body)
    body = {"properties": {"issuer": ISSUER, "subject": "s20", "audiences": ["api://AzureADTokenExchange"]}}
    with pytest.raises(HttpResponseError) as full:
        msi.federated_identity_credentials.create_or_update(RG, "many", "f20", body)
    assert error_code(full.value) == "FederatedIdentityCredentialLimitExceeded"
