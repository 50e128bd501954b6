"""A local cluster keeps its dashboard address across stop and start (real Ray, one cluster).

The head's ports are recorded in the cluster's state; a head that starts again asks for them
first and gets each one that is free (``processes.pick_ports``; the unit tests of a taken
port are in test_local_processes.py). A head-only cluster keeps this to two Ray starts.
Needs no repo fixtures: ``pytest --noconftest tests/providers`` works.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rayplane.providers.base import ClusterTarget, NodeShape, Observation, RetriableError
from rayplane.providers.local import LocalProvider, processes, store
from tests.support.nodeuser import grant_node_user_access

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

C = "cl_test_local_dashport01"
TOKEN = "token-c-" + "c" * 32
HEAD_ONLY = ClusterTarget(
    cluster_id=C,
    name="dashport",
    ray_version="2.60.0",
    image=None,
    head=NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=8.0),
    groups=(),
    cloud_config={"capacity": {"cpus": 2, "memory_gib": 8, "gpus": 0}},
    ray_token=TOKEN,
)


@pytest.fixture
def provider() -> Iterator[LocalProvider]:
    grant_node_user_access()
    root = Path(tempfile.mkdtemp(prefix="rpd", dir="/tmp"))  # short: Ray's socket paths
    prov = LocalProvider(root, head_timeout=90.0)
    yield prov
    try:
        prov.teardown(HEAD_ONLY, {})
    finally:
        processes.kill_processes(processes.processes_under(root))
        subprocess.run(["rm", "-rf", str(root)], check=False)


def ensure(provider: LocalProvider, state: dict[str, Any]) -> dict[str, Any]:
    """``ensure``, tried again on RetriableError as the reconciler does (a slow machine can
    make a Ray head give up while it starts)."""
    for attempt in range(3):
        try:
            return provider.ensure(HEAD_ONLY, state).state
        except RetriableError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def head_up(provider: LocalProvider, state: dict[str, Any], timeout: float = 120.0) -> Observation:
    """Observe until the head answers on its dashboard, or fail with the last observation."""
    deadline = time.monotonic() + timeout
    obs = provider.observe(HEAD_ONLY, state)
    while not obs.head_alive:
        if time.monotonic() > deadline:
            raise AssertionError(f"head not up after {timeout} s: {obs!r}")
        time.sleep(1)
        obs = provider.observe(HEAD_ONLY, state)
    return obs


def test_the_dashboard_address_is_the_same_after_stop_and_start(provider: LocalProvider) -> None:
    state = ensure(provider, {})
    first = state["dashboard_url"]
    assert head_up(provider, state).dashboard_url == first

    stopped = provider.stop(HEAD_ONLY, state).state
    assert "dashboard_url" not in stopped  # no head runs
    assert processes.processes_under(store.cluster_dir(provider.root, C)) == []
    assert stopped["head_ports"] == state["head_ports"]  # remembered for the next start

    started = ensure(provider, stopped)
    assert started["dashboard_url"] == first
    assert started["head_ports"] == state["head_ports"]
    assert started["nodes"]["head"]["pid"] != state["nodes"]["head"]["pid"]  # a new head, same address
    assert head_up(provider, started).dashboard_url == first
