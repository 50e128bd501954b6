"""``RAYPLANE_DEMO_AZURE=1 rayplane dev``: the Azure path with no Azure.

Starts the Azure emulator (``python -m emulators.azure``, see :mod:`ops.emulator`) next to
the control plane, points the Azure settings of every child process at it (authority, ARM
URL, CA bundle, an app id and the emulator's client secret), and registers an emulated Azure cloud ``azure-demo`` for
the dev tenant through the API, so its access check runs as it would for a customer.
The emulator's Entra and Marketplace also serve the console (docs/web.md): the Marketplace
settings name the emulator with the demo app as the publisher's, and the API gets an Entra
audience unless one is set, so sign-in and the console's "Simulate a purchase" work.
Clusters on it go through the real Azure SDKs and the Kubernetes client against the
emulator's ARM, Kubernetes API and simulated KubeRay.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from ops.emulator import AzureEmulator
from rayplane.identity.bootstrap import read_env_file
from rayplane.logs import get_logger

log = get_logger("rayplane.dev.azure")

DEMO_APP_ID = "6f1c9a52-3b7e-4d0a-9c11-8a4f2e7b5d30"
DEMO_TENANT_ID = "0b7d3c8e-51a2-4f6b-8e9d-2c4a6f8b1d07"
DEMO_SUBSCRIPTION_ID = "3a9e5f21-7c4b-4e8d-a1f6-9b2c7d5e0f48"
DEMO_PUBLISHER_TENANT_ID = "5d2e8f41-9a6b-4c3d-b7e1-0f4a2c8d6e93"
DEMO_AUDIENCE = "api://rayplane-demo"
# The dev tenant's owner in the emulated Entra: whom a developer signs in to the console as.
DEV_ENTRA_TENANT_ID = "1c4e7a92-6d3b-4f85-a0c2-8e9b5d7f3a16"
DEV_OWNER_OID = "9e2b6d41-3f7a-4c58-b1e0-6a8d2c4f7e35"
DEV_OWNER_NAME = "Dev Owner"


def console_env(origin: str, ca_path: Path) -> dict[str, str]:
    """Settings (each unless set in the shell) for the console's sign-in and the Marketplace,
    both served by the emulator at ``origin``, after making the demo app the emulated
    Marketplace's publisher."""
    with httpx.Client(base_url=origin, verify=str(ca_path), timeout=10) as http:
        config = {"publisher_tenant": DEMO_PUBLISHER_TENANT_ID, "publisher_app_id": DEMO_APP_ID}
        http.put("/_emulator/marketplace/config", json=config).raise_for_status()
    wanted = {
        "RAYPLANE_ENTRA_AUTHORITY": origin,
        "RAYPLANE_CA_BUNDLE": str(ca_path),
        "RAYPLANE_WEB_CLIENT_ID": DEMO_APP_ID,
        "RAYPLANE_WEB_CLIENT_SECRET": "emulator-secret",
        "RAYPLANE_MARKETPLACE_API_URL": origin,
        "RAYPLANE_MARKETPLACE_CLIENT_ID": DEMO_APP_ID,
        "RAYPLANE_MARKETPLACE_CLIENT_SECRET": "emulator-secret",
        "RAYPLANE_MARKETPLACE_PUBLISHER_TENANT_ID": DEMO_PUBLISHER_TENANT_ID,
        "RAYPLANE_ENTRA_AUDIENCE": DEMO_AUDIENCE,
    }
    return {name: value for name, value in wanted.items() if name not in os.environ}


def add_dev_owner(origin: str, ca_path: Path, api_url: str, env_file: Path) -> str:
    """Make "Dev Owner" of the emulated Entra an owner of the dev tenant (binding the tenant to
    the dev Entra tenant unless it is bound already); the Entra tenant the owner is in."""
    key = read_env_file(env_file).get("RAYPLANE_API_KEY", "")
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as api:
        tenant = api.get("/v1/tenant").json()
        tid = tenant.get("entra_tenant_id") or DEV_ENTRA_TENANT_ID
        if not tenant.get("entra_tenant_id"):
            api.patch("/v1/tenant", json={"entra_tenant_id": tid}).raise_for_status()
        email = "dev.owner@rayplane.invalid"
        member = api.post("/v1/members", json={"oid": DEV_OWNER_OID, "role": "owner", "email": email})
        if member.status_code not in (201, 409):
            member.raise_for_status()
    with httpx.Client(base_url=origin, verify=str(ca_path), timeout=10) as entra:
        user = {"name": DEV_OWNER_NAME, "preferred_username": email, "email": email}
        entra.put(f"/_emulator/entra/users/{tid}/{DEV_OWNER_OID}", json=user).raise_for_status()
    return str(tid)


class ConsoleDemo:
    """``rayplane dev``'s console without Azure: the emulator as Entra ID and the Marketplace
    only (no cloud registered), so sign-in, the landing page and "Simulate a purchase" work."""

    def __init__(self, data_dir: Path) -> None:
        self.emulator = AzureEmulator(data_dir / "azure-emulator")

    def start(self) -> dict[str, str]:
        origin = self.emulator.start()
        log.info("console_emulator_started", origin=origin)
        return console_env(origin, self.emulator.ca_path)

    def add_dev_owner(self, api_url: str, env_file: Path) -> str:
        return add_dev_owner(self.emulator.origin, self.emulator.ca_path, api_url, env_file)

    def stop(self) -> None:
        self.emulator.stop()


DEMO_CLOUD: dict[str, Any] = {
    "name": "azure-demo",
    "provider": "azure",
    "azure": {
        "subscription_id": DEMO_SUBSCRIPTION_ID,
        "resource_group": "rayplane-demo",
        "region": "eastus2",
        "tenant_id": DEMO_TENANT_ID,
        "auth_mode": "app_consent",
        "aks_mode": "managed",
        "aks_cluster_name": "rayplane-demo",
    },
}


class AzureDemo:
    """The emulator process and the environment that points Rayplane at it."""

    def __init__(self, data_dir: Path) -> None:
        self.emulator = AzureEmulator(data_dir / "azure-emulator")

    def start(self) -> dict[str, str]:
        """Start the emulator; the environment for the API, worker and beat."""
        origin = self.emulator.start()
        env = {
            "RAYPLANE_AZURE_CLIENT_ID": DEMO_APP_ID,
            "RAYPLANE_AZURE_CLIENT_SECRET": "emulator-secret",
            "RAYPLANE_ENTRA_AUTHORITY": origin,
            "RAYPLANE_AZURE_ARM_URL": origin,
        }
        # A short grace so a demo shows unused pools going away; an explicit setting wins.
        if "RAYPLANE_AZURE_POOL_GRACE_SECONDS" not in os.environ:
            env["RAYPLANE_AZURE_POOL_GRACE_SECONDS"] = "120"
        env["RAYPLANE_CA_BUNDLE"] = str(self.emulator.ca_path)
        env |= console_env(origin, self.emulator.ca_path)
        log.info("azure_emulator_started", origin=origin)
        return env

    def add_dev_owner(self, api_url: str, env_file: Path) -> str:
        return add_dev_owner(self.emulator.origin, self.emulator.ca_path, api_url, env_file)

    def register_cloud(self, api_url: str, env_file: Path) -> str:
        """Create ``azure-demo`` through the API unless it exists; its status."""
        key = read_env_file(env_file).get("RAYPLANE_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=api_url, headers=headers, timeout=10) as http:
            for cloud in http.get("/v1/clouds").json().get("items", []):
                if cloud["name"] == DEMO_CLOUD["name"]:
                    return str(cloud["status"])
            r = http.post("/v1/clouds", json=DEMO_CLOUD)
            r.raise_for_status()
            return str(r.json()["status"])

    def stop(self) -> None:
        self.emulator.stop()
