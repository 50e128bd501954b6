"""Helpers and fixtures shared by the ARM emulator tests (this module holds no tests): the real
azure-mgmt-containerservice client with the emulator's own Entra credential, model builders,
and a clean ARM surface of the session's emulator per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from azure.core.exceptions import (
    HttpResponseError,
)
from azure.identity import ClientSecretCredential
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as m

from emulators.azure.server import EmulatorProcess

TENANT = str(uuid.uuid4())
CLIENT_ID = str(uuid.uuid4())
ARM_SCOPE = "https://management.azure.com/.default"
#: Fast enough for tests, slow enough that an operation is seen InProgress at least once.
FAST = {"operation_seconds": 0.1, "retry_after": 0}
RG = "rg1"
T = TypeVar("T")


# -- helpers (also used by test_arm_examples.py) -------------------------------------------
def credential(emu: EmulatorProcess) -> ClientSecretCredential:
    return ClientSecretCredential(
        TENANT,
        CLIENT_ID,
        "emulator-secret",
        authority=emu.authority,
        disable_instance_discovery=True,
        connection_verify=str(emu.ca_path),
    )


def client(emu: EmulatorProcess, subscription: str, **options: Any) -> ContainerServiceClient:
    """An SDK client for ``subscription`` pointed at ``emu``. Retries are the SDK's own policy,
    with more status retries and a short backoff so fault-injection tests stay quick."""
    settings: dict[str, Any] = {
        "base_url": emu.origin,
        "connection_verify": str(emu.ca_path),
        "polling_interval": 0.02,
        "retry_backoff_factor": 0.01,
        "retry_status": 12,
        "retry_total": 20,
        **options,
    }
    return ContainerServiceClient(credential(emu), subscription, **settings)


def configure(emu: EmulatorProcess, **fields: Any) -> dict[str, Any]:
    config: dict[str, Any] = emu.request_json("PUT", "/_emulator/arm/config", fields)
    return config


def reset(emu: EmulatorProcess, *, resources: bool = True) -> None:
    emu.request_json("POST", "/_emulator/arm/reset", {"resources": resources})
    configure(emu, **FAST)


def cluster_model(*pools: dict[str, Any], location: str = "eastus", **properties: Any) -> m.ManagedCluster:
    profiles = list(pools) or [{"name": "system", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}]
    return m.ManagedCluster(
        {"location": location, "properties": {"dnsPrefix": "rp", "agentPoolProfiles": profiles, **properties}}
    )


def pool_model(**properties: Any) -> m.AgentPool:
    props = {"vmSize": "Standard_D4s_v5", "count": 1, "mode": "User", **properties}
    return m.AgentPool({"properties": props})


def need(value: T | None) -> T:
    """``value``, asserted present (the SDK's models type every field Optional)."""
    assert value is not None
    return value


def cprops(cluster: m.ManagedCluster) -> m.ManagedClusterProperties:
    return need(cluster.properties)


def pprops(pool: m.AgentPool) -> m.AgentPoolManagedClusterAgentPoolProfileProperties:
    return need(pool.properties)


def names(items: Iterable[Any]) -> list[str]:
    """Sorted ``name`` of SDK models."""
    return sorted(str(item.name) for item in items)


def error_code(exc: HttpResponseError) -> str | None:
    return None if exc.error is None else exc.error.code


def http(emu: EmulatorProcess) -> httpx.Client:
    return httpx.Client(base_url=emu.origin, verify=emu.ssl_context() or False, timeout=10)


def cluster_path(subscription: str, name: str, rg: str = RG) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def emu(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The session's emulator with no ARM resources, no faults or request counts and fast
    operations; afterwards its ARM surface is reset again (default config, nothing left)."""
    reset(emulator)
    yield emulator
    emulator.request_json("POST", "/_emulator/arm/reset", {"resources": True})


@pytest.fixture
def sub() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def aks(emu: EmulatorProcess, sub: str) -> ContainerServiceClient:
    return client(emu, sub)


@pytest.fixture
def cluster(aks: ContainerServiceClient) -> m.ManagedCluster:
    return aks.managed_clusters.begin_create_or_update(RG, "c1", cluster_model()).result()
