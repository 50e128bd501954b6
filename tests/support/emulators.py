"""Changing the shared Azure emulator's knobs for a while and putting them back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emulators.azure.server import EmulatorProcess


@contextmanager
def kube_knobs(emulator: EmulatorProcess, **knobs: Any) -> Iterator[dict[str, Any]]:
    """The Kubernetes surface's ``knobs`` (``POST /_emulator/kube/config``) for the block, then
    the values they had before; yields the whole config in force inside the block."""
    before: dict[str, Any] = emulator.request_json("GET", "/_emulator/kube/config")
    config: dict[str, Any] = emulator.request_json("POST", "/_emulator/kube/config", knobs)
    try:
        yield config
    finally:
        emulator.request_json("POST", "/_emulator/kube/config", {key: before[key] for key in knobs})
