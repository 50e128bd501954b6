"""Fidelity: every AKS REST example in tests/reference/azure/aks-examples passes through the
emulator via the real SDK, and each answer has the shape of the example's response.

For each example file the request's ``parameters`` become the SDK model (``AgentPool(...)`` /
``ManagedCluster(...)`` from the JSON), the matching SDK operation runs (parent resources
created first), and every raw answer is captured with ``raw_response_hook``. The answer for
each status the example documents is compared with the example's body:

* every key of the example is present, recursively, with the same JSON type (numbers are one
  type, as in JSON); list items are compared with the example's items;
* a key the example lacks is allowed only if the same example shows it in another of its
  responses (e.g. ``fqdn`` appears in the 200 but not the 201 of the Create example), or in its
  request (ARM echoes what a PUT sent, e.g. the Create example's ``addonProfiles: {}``), or it
  is in :data:`JUSTIFIED_EXTRAS` with the reason Azure returns it.

For examples whose response is of an existing resource (Get, List), the resource is first
created from the example's own response body through the SDK model, which drops every field
the schema marks read-only: so what comes back is the emulator's read-only fields, not an echo.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as m

from emulators.azure.arm import resources
from emulators.azure.server import EmulatorProcess
from tests.emulators.arm_support import client, emu  # noqa: F401 - emu is a fixture, used by name

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "reference" / "azure" / "aks-examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.json"))

#: Keys the emulator returns that an example's responses do not show, and why Azure returns them.
JUSTIFIED_EXTRAS = {
    "eTag": "read-only concurrency tag on every cluster and pool in 2026-08-01 (shown by the Get examples)",
    "powerState": "read-only {code: Running|Stopped} on every cluster and pool in 2026-08-01",
    "mode": "AKS fills in a pool's mode: User via the agentPools API, System for a cluster's first profile",
    "sku": "AKS reports the default sku {name: Base, tier: Free} when the request has none",
    "oidcIssuerProfile": "AKS always reports oidcIssuerProfile.enabled (false unless asked for)",
    "type": "ARM's resource type is on every resource (the Create examples show it); AKS fills in a pool's "
    "type, VirtualMachineScaleSets (the cluster examples show that too)",
    "maxPods": "AKS fills in maxPods (110 with kubenet), as the other pool examples show",
    "orchestratorVersion": "AKS resolves the Kubernetes version of every pool (other pool examples show it)",
    "currentOrchestratorVersion": "read-only: the version the pool's nodes run (other pool examples show it)",
    "nodeImageVersion": "AKS reports the node image of every pool (other pool examples show it)",
    "spotMaxPrice": "AKS's spot default (-1, up to the on-demand price), reported for every spot pool",
    "identityProfile": "AKS reports the kubelet's user-assigned identity (kubeletidentity) of every cluster with a "
    "managed identity; the Azure CLI's `aks update` reads it",
    "azurePortalFQDN": "read-only FQDN of the API server for the portal (shown by the Get example)",
    "osSKU": "AKS fills in a Linux pool's OS SKU (Ubuntu) when the request has none",
    "osDiskSizeGB": "AKS fills in the OS disk size (128 GB) when the request has none",
    "osDiskType": "AKS fills in the OS disk type (Managed) when the request has none",
    "upgradeSettings": "AKS fills in a pool's upgrade settings (maxSurge 10%) when the request has none",
    "kubernetes.azure.com/scalesetpriority": "AKS adds its spot label to a spot pool's own nodeLabels",
}

Recorded = list[tuple[str, int, dict[str, str], Any]]


# -- shape comparison ----------------------------------------------------------------------
def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _keys(value: Any) -> set[str]:
    """Every object key anywhere in ``value``."""
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def shape_problems(expected: Any, actual: Any, allowed_extra: set[str], where: str = "$") -> list[str]:
    """How ``actual`` differs in shape from ``expected`` (empty when it matches)."""
    if _json_type(expected) != _json_type(actual):
        return [f"{where}: expected {_json_type(expected)}, got {_json_type(actual)} ({actual!r:.80})"]
    problems: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += shape_problems(value, actual[key], allowed_extra, f"{where}.{key}")
        # Keys of a map keyed by data (userAssignedIdentities, tags) are values, not schema.
        for key in set(actual) - set(expected) - allowed_extra:
            problems.append(f"{where}.{key}: not in the example and not justified")
    elif isinstance(expected, list) and expected:
        if not actual:
            problems.append(f"{where}: expected items, got an empty list")
        for index, item in enumerate(actual):
            problems += shape_problems(
                expected[min(index, len(expected) - 1)], item, allowed_extra, f"{where}[{index}]"
            )
    return problems


def assert_shape(example: dict[str, Any], status: str, actual: Any) -> None:
    expected = example["responses"][status]["body"]
    allowed = _keys(example["responses"]) | _keys(example["parameters"]) | set(JUSTIFIED_EXTRAS)
    problems = shape_problems(expected, actual, allowed)
    assert not problems, f"{status} answer differs from the example:\n" + "\n".join(problems)


# -- driving the SDK -----------------------------------------------------------------------
class Recorder:
    """A ``raw_response_hook`` that keeps (method, status, lower-cased headers, JSON body) of every answer."""

    def __init__(self) -> None:
        self.seen: Recorded = []

    def __call__(self, response: Any) -> None:
        r = response.http_response
        r.read()  # LRO first answers are streamed; the SDK reads them after the hook
        text = r.text()
        headers = {k.lower(): v for k, v in r.headers.items()}
        self.seen.append((r.request.method, r.status_code, headers, json.loads(text) if text else None))

    def first(self, method: str) -> tuple[int, dict[str, str], Any]:
        _, status, headers, body = next(s for s in self.seen if s[0] == method)
        return status, headers, body

    def last(self) -> tuple[str, int, Any]:
        method, status, _, body = self.seen[-1]
        return method, status, body

    def clear(self) -> None:
        self.seen.clear()


def _parent_cluster(aks: ContainerServiceClient, rg: str, name: str) -> None:
    profile = {"name": "nodepool1", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}
    body = {"location": "eastus", "properties": {"dnsPrefix": "dnsprefix1", "agentPoolProfiles": [profile]}}
    aks.managed_clusters.begin_create_or_update(rg, name, m.ManagedCluster(body)).result()


def _check_put(ex: dict[str, Any], begin: Callable[..., Any]) -> None:
    """Create (201 + final GET 200), then update (200) with the example's request."""
    rec = Recorder()
    begin(raw_response_hook=rec).result()
    status, headers, body = rec.first("PUT")
    assert status == 201
    assert "azure-asyncoperation" in headers
    assert_shape(ex, "201", body)
    method, status, final = rec.last()
    assert (method, status) == ("GET", 200)
    assert final["properties"]["provisioningState"] == "Succeeded"
    assert_shape(ex, "200", final)
    rec.clear()
    begin(raw_response_hook=rec).result()
    status, _, body = rec.first("PUT")
    assert status == 200
    assert_shape(ex, "200", body)


_LOCATION = re.compile(
    r"/subscriptions/[^/]+/providers/Microsoft\.ContainerService/locations/[^/]+/operationresults/[^/?]+\?api-version="
)


def _check_delete(ex: dict[str, Any], begin: Callable[..., Any]) -> None:
    """202 with a Location of the example's form, then (already gone) 204 with no body."""
    assert _LOCATION.search(ex["responses"]["202"]["headers"]["location"])
    rec = Recorder()
    begin(raw_response_hook=rec).result()
    status, headers, body = rec.first("DELETE")
    assert status == 202
    assert body is None
    assert _LOCATION.search(headers["location"]), headers
    rec.clear()
    begin(raw_response_hook=rec).result()
    assert [(s[0], s[1], s[3]) for s in rec.seen] == [("DELETE", 204, None)]


_VERSION_KEYS = ("kubernetesVersion", "orchestratorVersion", "currentKubernetesVersion", "currentOrchestratorVersion")


def _offered_versions(value: Any) -> Any:
    """The example with its Kubernetes versions (1.9.6, long out of support) replaced by one the
    emulated region offers: AKS refuses a version it does not offer, and so does the emulator."""
    if isinstance(value, dict):
        return {
            k: resources.DEFAULT_KUBERNETES_VERSION if k in _VERSION_KEYS and v else _offered_versions(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_offered_versions(v) for v in value]
    return value


def drive(ex: dict[str, Any], aks: ContainerServiceClient) -> None:
    p = ex["parameters"]
    rg, name = p["resourceGroupName"], p["resourceName"]
    operation = ex["operationId"]
    rec = Recorder()
    if operation == "AgentPools_CreateOrUpdate":
        _parent_cluster(aks, rg, name)
        pool = m.AgentPool(p["parameters"])
        _check_put(ex, lambda **kw: aks.agent_pools.begin_create_or_update(rg, name, p["agentPoolName"], pool, **kw))
    elif operation == "AgentPools_Delete":
        _parent_cluster(aks, rg, name)
        aks.agent_pools.begin_create_or_update(
            rg, name, p["agentPoolName"], m.AgentPool({"properties": {"vmSize": "Standard_D2s_v5", "count": 1}})
        ).result()
        _check_delete(ex, lambda **kw: aks.agent_pools.begin_delete(rg, name, p["agentPoolName"], **kw))
    elif operation == "AgentPools_Get":
        _parent_cluster(aks, rg, name)
        pool = m.AgentPool(ex["responses"]["200"]["body"])
        aks.agent_pools.begin_create_or_update(rg, name, p["agentPoolName"], pool).result()
        aks.agent_pools.get(rg, name, p["agentPoolName"], raw_response_hook=rec)
        assert_shape(ex, "200", rec.last()[2])
    elif operation == "AgentPools_List":
        # The cluster's profiles are the example's pools, so the list holds exactly those.
        items = ex["responses"]["200"]["body"]["value"]
        profiles = [{"name": item["name"], **item["properties"]} for item in items]
        body = {"location": "eastus", "properties": {"dnsPrefix": "dnsprefix1", "agentPoolProfiles": profiles}}
        aks.managed_clusters.begin_create_or_update(rg, name, m.ManagedCluster(body)).result()
        list(aks.agent_pools.list(rg, name, raw_response_hook=rec))
        assert_shape(ex, "200", rec.last()[2])
    elif operation == "ManagedClusters_CreateOrUpdate":
        cluster = m.ManagedCluster(p["parameters"])
        _check_put(ex, lambda **kw: aks.managed_clusters.begin_create_or_update(rg, name, cluster, **kw))
    elif operation == "ManagedClusters_Get":
        cluster = m.ManagedCluster(ex["responses"]["200"]["body"])
        aks.managed_clusters.begin_create_or_update(rg, name, cluster).result()
        aks.managed_clusters.get(rg, name, raw_response_hook=rec)
        assert_shape(ex, "200", rec.last()[2])
    elif operation == "ManagedClusters_Delete":
        _parent_cluster(aks, rg, name)
        _check_delete(ex, lambda **kw: aks.managed_clusters.begin_delete(rg, name, **kw))
    elif operation == "ManagedClusters_ListClusterAdminCredentials":
        _parent_cluster(aks, rg, name)
        aks.managed_clusters.list_cluster_admin_credentials(rg, name, raw_response_hook=rec)
        assert_shape(ex, "200", rec.last()[2])
    else:  # pragma: no cover - a new example file needs a driver
        pytest.fail(f"no driver for {operation}")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_passes_through_with_the_same_shape(emu: EmulatorProcess, path: Path) -> None:  # noqa: F811
    ex = _offered_versions(json.loads(path.read_text()))
    p = ex["parameters"]
    drive(ex, client(emu, p["subscriptionId"], api_version=p["api-version"]))


def test_every_example_is_covered() -> None:
    assert len(EXAMPLES) == 10  # every file of the folder except SOURCE.md


def test_shape_check_catches_differences() -> None:
    expected = {"a": 1, "b": {"c": "x", "d": [{"e": True}]}}
    assert shape_problems(expected, {"a": 2.5, "b": {"c": "y", "d": [{"e": False}, {"e": True}]}}, set()) == []
    assert shape_problems(expected, {"a": "1", "b": {"c": "x", "d": []}}, set()) == [
        "$.a: expected number, got string ('1')",
        "$.b.d: expected items, got an empty list",
    ]
    assert shape_problems({"a": 1}, {"a": 1, "z": 0}, set()) == ["$.z: not in the example and not justified"]
    assert shape_problems({"a": 1}, {"a": 1, "z": 0}, {"z"}) == []
    assert shape_problems({"a": {"b": 1}}, {}, set()) == ["$.a: missing"]
