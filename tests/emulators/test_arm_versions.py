"""Every stable AKS api-version from 2025-10-01 to 2026-08-01, each answered in its own shape, and
the ARM endpoints around the container service that clients such as the Azure CLI need
(cloud metadata, tenants, subscriptions, resource groups), over raw HTTPS."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from emulators.azure.arm.versions import API_VERSIONS
from emulators.azure.server import EmulatorProcess
from tests.emulators.arm_support import ARM_SCOPE, TENANT, cluster_path, credential, emu, http  # noqa: F401

SYSTEM = {"name": "system", "vmSize": "Standard_D2s_v5", "count": 1, "mode": "System"}


def _auth(emu: EmulatorProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential(emu).get_token(ARM_SCOPE).token}"}


def _settled(h: httpx.Client, auth: dict[str, str], url: str) -> dict[str, Any]:
    """GET ``url`` until its provisioningState has left the transient states."""
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = h.get(url, headers=auth).json()
        if body["properties"]["provisioningState"] in ("Succeeded", "Failed"):
            return body
        assert time.monotonic() < deadline, f"{url} still {body['properties']['provisioningState']}"
        time.sleep(0.05)


def test_every_stable_version_is_served_in_its_own_shape(emu: EmulatorProcess) -> None:
    sub = str(uuid.uuid4())
    path = cluster_path(sub, "c1")
    auth = _auth(emu)
    gpu_pool = {**SYSTEM, "name": "gpu", "mode": "User", "gpuProfile": {"nvidia": {"managementMode": "Managed"}}}
    body = {
        "location": "eastus",
        "properties": {"dnsPrefix": "rp", "enableFIPS": True, "agentPoolProfiles": [SYSTEM, gpu_pool]},
    }
    with http(emu) as h:
        put = h.put(f"{path}?api-version=2026-08-01", json=body, headers=auth)
        assert put.status_code == 201, put.text
        newest = _settled(h, auth, f"{path}?api-version=2026-08-01")
        assert newest["properties"]["enableFIPS"] is True
        for version in API_VERSIONS:
            got = h.get(f"{path}?api-version={version}", headers=auth)
            assert got.status_code == 200, (version, got.text)
            props = got.json()["properties"]
            gpu = next(p for p in props["agentPoolProfiles"] if p["name"] == "gpu")
            pool = h.get(f"{path}/agentPools/gpu?api-version={version}", headers=auth).json()["properties"]
            # enableFIPS came with 2026-07-01, gpuProfile.nvidia with 2026-08-01.
            assert ("enableFIPS" in props) == (version >= "2026-07-01"), version
            assert ("nvidia" in gpu.get("gpuProfile", {})) == (version >= "2026-08-01"), version
            assert ("nvidia" in pool.get("gpuProfile", {})) == (version >= "2026-08-01"), version
        # What an older client reads is not what is stored: the newest still sees it all.
        assert h.get(f"{path}?api-version=2026-08-01", headers=auth).json()["properties"]["enableFIPS"] is True
        for refused in ("2025-08-01", "2026-09-01"):
            answer = h.get(f"{path}?api-version={refused}", headers=auth)
            assert answer.status_code == 400
            assert answer.json()["error"]["code"] == "NoRegisteredProviderFound"


@pytest.mark.parametrize(("version", "single"), [("2022-09-01", True), ("2019-05-01", False)])
def test_metadata_endpoints_describe_this_cloud(emu: EmulatorProcess, version: str, single: bool) -> None:
    with http(emu) as h:
        answer = h.get(f"/metadata/endpoints?api-version={version}")
        assert answer.status_code == 200
        body = answer.json()
        cloud = body if single else body[0]
        assert cloud["authentication"]["loginEndpoint"] == emu.origin
        assert cloud["authentication"]["audiences"][0] == "https://management.core.windows.net/"
        assert cloud["resourceManager"].rstrip("/") == emu.origin
        assert h.get("/metadata/endpoints").json()["error"]["code"] == "MissingApiVersionParameter"


def test_tenants_subscriptions_and_resource_groups(emu: EmulatorProcess) -> None:
    auth = _auth(emu)
    with http(emu) as h:
        assert h.get("/subscriptions?api-version=2022-12-01").status_code == 401
        tenants = h.get("/tenants?api-version=2022-12-01", headers=auth).json()["value"]
        assert [t["tenantId"] for t in tenants] == [TENANT.lower()]
        default = h.get("/subscriptions?api-version=2022-12-01", headers=auth).json()["value"]
        assert len(default) == 1
        assert default[0]["state"] == "Enabled"
        sub = str(uuid.uuid4())
        emu.request_json("PUT", f"/_emulator/arm/subscriptions/{sub}", {"tenantId": TENANT, "displayName": "mine"})
        listed = h.get("/subscriptions?api-version=2022-12-01", headers=auth).json()["value"]
        assert [(s["subscriptionId"], s["displayName"]) for s in listed] == [(sub, "mine")]
        assert h.get(f"/subscriptions/{sub}?api-version=2022-12-01", headers=auth).json()["tenantId"] == TENANT.lower()
        other = h.get(f"/subscriptions/{uuid.uuid4()}?api-version=2022-12-01", headers=auth)
        assert other.json()["error"]["code"] == "SubscriptionNotFound"

        group = f"/subscriptions/{sub}/resourcegroups/rg9?api-version=2024-11-01"
        assert h.get(group, headers=auth).json()["error"]["code"] == "ResourceGroupNotFound"
        assert h.put(group, json={"location": "eastus"}, headers=auth).status_code == 201
        assert h.put(group, json={"location": "eastus", "tags": {"a": "b"}}, headers=auth).status_code == 200
        assert h.put(group, json={"location": "westus"}, headers=auth).status_code == 409
        assert h.get(group, headers=auth).json()["tags"] == {"a": "b"}
        groups = h.get(f"/subscriptions/{sub}/resourcegroups?api-version=2024-11-01", headers=auth).json()["value"]
        assert [g["name"] for g in groups] == ["rg9"]
