"""The Azure demo's emulator (``ops.emulator.AzureEmulator``, started by ``rayplane dev``
with ``RAYPLANE_DEMO_AZURE=1``) runs real Ray in its RayClusters' pods unless the
environment says otherwise (tests and the fleet benchmark ask for "simulated")."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from ops.emulator import RAY_BACKEND_ENV, AzureEmulator


@pytest.mark.parametrize(("given", "expected"), [(None, "real"), ("simulated", "simulated")])
def test_the_demo_emulator_defaults_to_real_ray(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str | None, expected: str
) -> None:
    if given is None:
        monkeypatch.delenv(RAY_BACKEND_ENV, raising=False)
    else:
        monkeypatch.setenv(RAY_BACKEND_ENV, given)
    emulator = AzureEmulator(tmp_path / "emu")
    try:
        origin = emulator.start()
        context = ssl.create_default_context(cafile=str(emulator.ca_path))
        config = httpx.get(f"{origin}/_emulator/kube/config", verify=context, timeout=10).json()
        assert config["ray_backend"] == expected
    finally:
        emulator.stop()
