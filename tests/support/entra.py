"""Minting Entra-style tokens through the emulator's test endpoint."""

from __future__ import annotations

from typing import Any

import httpx

from emulators.azure.server import EmulatorProcess


def mint(emulator: EmulatorProcess, tenant: str, claims: dict[str, Any], **options: Any) -> str:
    response = httpx.post(
        f"{emulator.origin}/_emulator/entra/tokens",
        json={"tenant": tenant, "claims": claims, **options},
        verify=emulator.ssl_context() or True,
        timeout=10,
    )
    response.raise_for_status()
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


def rotate(emulator: EmulatorProcess) -> str:
    response = httpx.post(
        f"{emulator.origin}/_emulator/entra/rotate", verify=emulator.ssl_context() or True, timeout=10
    )
    response.raise_for_status()
    body = response.json()
    kid = body["kid"] if isinstance(body, dict) else body
    return str(kid)
