"""The live stack the CLI's end-to-end tests share (``test_live*.py``): the whole control plane
on the local provider, with the session's Azure emulator as Entra ID and as the Azure that
``clouds add azure`` connects to. One stack per session; its finalizer deletes every cluster
and checks that no Ray process outlives it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from emulators.azure.server import EmulatorProcess
from tests.cli.support import Cli
from tests.e2e.stack import Stack, local_stack

CLI_REDIS_DB = 8
AUDIENCE = "api://rayplane-cli-test"


@pytest.fixture(scope="session")
def stack(admin_db_url: str, redis_url: str, emulator: EmulatorProcess) -> Iterator[Stack]:
    env = {
        "RAYPLANE_TASK_QUEUE": f"cli-{os.getpid()}",
        "RAYPLANE_ENTRA_AUTHORITY": emulator.origin,
        "RAYPLANE_ENTRA_AUDIENCE": AUDIENCE,
        "RAYPLANE_CA_BUNDLE": str(emulator.ca_path),
        # Rayplane's Azure app, as the emulator's Entra knows any client with its secret.
        "RAYPLANE_AZURE_CLIENT_ID": str(uuid.uuid4()),
        "RAYPLANE_AZURE_CLIENT_SECRET": "emulator-secret",
        "RAYPLANE_AZURE_ARM_URL": emulator.origin,
    }
    with local_stack(admin_db_url, redis_url, CLI_REDIS_DB, env) as s:
        yield s


@pytest.fixture(scope="session")
def cli(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI pointed at the stack through RAYPLANE_API_URL / RAYPLANE_API_KEY."""
    key = stack.headers["Authorization"].removeprefix("Bearer ")
    return Cli(tmp_path_factory.mktemp("cli"), {"RAYPLANE_API_URL": stack.url, "RAYPLANE_API_KEY": key})
