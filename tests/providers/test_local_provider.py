"""The local provider against real Ray: ``ray start`` processes on this machine.

The tests of this module run in order and share cluster A (a 1-CPU head and 1-CPU
workers of group ``cpu``), so Ray starts as few times as possible. Every cluster a test
creates is torn down by the module fixture, failures included. Needs no repo fixtures:
``pytest --noconftest tests/providers`` works.

On a machine short of CPU, Ray 2.60's raylet gives up when its dashboard agent takes more
than 15 s to start (ray-project/ray#65983) and the node exits. The reconciler handles that
by calling ``ensure`` again; ``converge`` below does the same, so these tests check that
the provider recovers rather than that Ray never fails to start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest

from rayplane.providers.base import ClusterTarget, GroupTarget, NodeShape, Observation, RetriableError
from rayplane.providers.local import LocalProvider, processes, store
from tests.support.nodeuser import grant_node_user_access

T = TypeVar("T")

# Real Ray (the `local` extra, which `make test` installs): minutes on a 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

D2 = NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=8.0)
CAPACITY = {"capacity": {"cpus": 2, "memory_gib": 8, "gpus": 0}}
A = "cl_test_local_aaaaaaaaaa"
B = "cl_test_local_bbbbbbbbbb"
TOKENS = {A: "token-a-" + "a" * 32, B: "token-b-" + "b" * 32}


def auth(cluster_id: str) -> dict[str, str]:
    return {"X-Ray-Authorization": f"Bearer {TOKENS[cluster_id]}"}


def target(cluster_id: str, count: int) -> ClusterTarget:
    """A 2-vCPU head and a group of 2-vCPU workers (max 2) on 2 CPUs: 1 CPU per node."""
    return ClusterTarget(
        cluster_id=cluster_id,
        name=cluster_id[-1],
        ray_version="2.60.0",
        image=None,
        head=D2,
        groups=(GroupTarget("cpu", D2, count=count, min_nodes=0, max_nodes=2),),
        cloud_config=CAPACITY,
        ray_token=TOKENS[cluster_id],
    )


def wait_for(what: Callable[[], T], ok: Callable[[T], bool], timeout: float = 90.0, every: float = 1.0) -> T:
    deadline = time.monotonic() + timeout
    value = what()
    while not ok(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s; last value: {value!r}")
        time.sleep(every)
        value = what()
    return value


def diagnose(state: dict[str, Any]) -> str:
    """The end of each node's ``ray start`` output and raylet log, for failure messages."""
    out = []
    for name, rec in sorted(state.get("nodes", {}).items()):
        raylet = Path(rec["temp_dir"]) / "session_latest" / "logs" / "raylet.out"
        alive = processes.is_alive(processes.NodeRecord.from_dict(rec))
        out.append(f"--- {name} pid {rec['pid']} alive={alive}\n{processes.log_tail(Path(rec['log_path']), 1500)}")
        out.append(f"--- {name} raylet.out\n{processes.log_tail(raylet, 1500)}")
    return "\n".join(out)


def ensure(provider: LocalProvider, tgt: ClusterTarget, state: dict[str, Any]) -> dict[str, Any]:
    """``ensure``, tried again on RetriableError as the reconciler does."""
    for attempt in range(3):
        try:
            return provider.ensure(tgt, state).state
        except RetriableError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def dead_nodes(state: dict[str, Any]) -> list[str]:
    return [n for n, r in state["nodes"].items() if not processes.is_alive(processes.NodeRecord.from_dict(r))]


def converge(
    provider: LocalProvider, tgt: ClusterTarget, state: dict[str, Any], ok: Callable[[Observation], bool]
) -> tuple[Observation, dict[str, Any]]:
    """Observe until ``ok``; call ``ensure`` again when a node we started has died."""
    deadline = time.monotonic() + 150
    while True:
        obs = provider.observe(tgt, state)
        if ok(obs):
            return obs, state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last observation: {obs!r}\n{diagnose(state)}")
        if dead_nodes(state):
            state = ensure(provider, tgt, state)
        time.sleep(1)


def killpg_and_wait(state: dict[str, Any], name: str) -> int:
    """SIGKILL a node's process group and wait until its leader is gone."""
    rec = processes.NodeRecord.from_dict(state["nodes"][name])
    os.killpg(rec.pid, signal.SIGKILL)
    wait_for(lambda: processes.is_alive(rec), lambda alive: not alive, timeout=10, every=0.05)
    return rec.pid


def leaders(provider: LocalProvider, cluster_id: str) -> list[psutil.Process]:
    """``ray start`` processes whose --temp-dir lies in the cluster's directory."""
    return processes.node_leaders_under(store.cluster_dir(provider.root, cluster_id))


def pids(state: dict[str, Any], group: str | None = None) -> dict[str, int]:
    return {n: r["pid"] for n, r in state["nodes"].items() if group is None or r["group"] == group}


def ready(obs: Observation, workers: int) -> bool:
    return obs.head_alive and obs.nodes.get("cpu") == workers


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.fixture(scope="module")
def provider() -> Iterator[LocalProvider]:
    grant_node_user_access()  # also without the repo's conftest
    root = Path(tempfile.mkdtemp(prefix="rpt", dir="/tmp"))  # short: Ray's socket paths
    prov = LocalProvider(root, head_timeout=90.0)
    yield prov
    for cluster_id in (A, B):
        try:
            prov.teardown(target(cluster_id, 0), {})
        finally:
            for proc in processes.processes_under(store.cluster_dir(root, cluster_id)):
                proc.kill()
    processes.kill_processes(processes.processes_under(root))
    subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture(scope="module")
def cluster_a(provider: LocalProvider) -> dict[str, Any]:
    """Cluster A's latest state; tests update it in place."""
    return {"state": {}}


def test_ensure_starts_a_head_and_a_worker(provider: LocalProvider, cluster_a: dict[str, Any]) -> None:
    state = ensure(provider, target(A, 1), {})
    assert set(pids(state)) == {"head", "cpu-1"}
    obs, state = converge(provider, target(A, 1), state, lambda o: ready(o, 1))
    cluster_a["state"] = state
    assert obs.dashboard_url == state["dashboard_url"] == provider.jobs_endpoint(state)
    assert {n.group for n in obs.node_details} == {"head", "cpu"}
    nodes = httpx.get(f"{obs.dashboard_url}/api/v0/nodes", params={"detail": "1"}, headers=auth(A), timeout=10).json()
    alive = [n for n in nodes["data"]["result"]["result"] if n["state"] == "ALIVE"]
    by_kind = {n["is_head_node"]: n for n in alive}
    assert by_kind[True]["resources_total"]["rayplane_group_head"] == 1.0
    assert by_kind[True]["resources_total"]["CPU"] == 1.0
    assert by_kind[True]["labels"]["rayplane.io/node"] == "head"
    assert by_kind[False]["resources_total"]["rayplane_group_cpu"] == 1.0
    assert by_kind[False]["resources_total"]["CPU"] == 1.0
    assert by_kind[False]["labels"]["rayplane.io/node"] in pids(state, "cpu")
    assert provider.ray_versions({}) == ["2.60.0"]


def test_ensure_again_starts_nothing(provider: LocalProvider, cluster_a: dict[str, Any]) -> None:
    before = cluster_a["state"]
    after = provider.ensure(target(A, 1), before).state
    assert pids(after) == pids(before)
    assert len(leaders(provider, A)) == 2
    cluster_a["state"] = after


def test_resize_one_two_one(provider: LocalProvider, cluster_a: dict[str, Any]) -> None:
    state = ensure(provider, target(A, 2), cluster_a["state"])
    assert len(pids(state, "cpu")) == 2
    _, state = converge(provider, target(A, 2), state, lambda o: ready(o, 2))
    workers = sorted(pids(state, "cpu"), key=lambda n: int(n.rsplit("-", 1)[1]))
    oldest, newest = workers[0], workers[-1]
    newest_pid = pids(state)[newest]
    state = ensure(provider, target(A, 1), state)
    cluster_a["state"] = state
    assert set(pids(state, "cpu")) == {oldest}  # the newest goes first
    assert gone(newest_pid)
    assert not (store.cluster_dir(provider.root, A) / newest).exists()
    _, state = converge(provider, target(A, 1), state, lambda o: ready(o, 1))
    cluster_a["state"] = state
    assert len(leaders(provider, A)) == 2


def test_a_killed_worker_is_replaced(provider: LocalProvider, cluster_a: dict[str, Any]) -> None:
    state = cluster_a["state"]
    (victim_name,) = pids(state, "cpu")
    victim = killpg_and_wait(state, victim_name)
    # The process is gone at once; Ray notices later (health checks) but observe agrees now.
    obs = provider.observe(target(A, 1), state)
    assert obs.head_alive
    assert obs.nodes["cpu"] == 0
    state = ensure(provider, target(A, 1), state)
    cluster_a["state"] = state
    (replacement,) = pids(state, "cpu")
    assert replacement != victim_name
    assert processes.session_members(victim) == []  # task workers in groups of their own too
    assert any(victim_name in m for m in provider.observe(target(A, 1), state).messages)
    _, cluster_a["state"] = converge(provider, target(A, 1), state, lambda o: ready(o, 1))


def test_a_killed_head_brings_back_head_and_workers(provider: LocalProvider, cluster_a: dict[str, Any]) -> None:
    state = cluster_a["state"]
    old = pids(state)
    killpg_and_wait(state, "head")
    assert not provider.observe(target(A, 1), state).head_alive
    assert provider.jobs_endpoint(state) is None
    state = ensure(provider, target(A, 1), state)
    cluster_a["state"] = state
    new = pids(state)
    assert new["head"] != old["head"]
    assert len(pids(state, "cpu")) == 1
    assert not set(pids(state, "cpu")) & set(old)
    assert all(gone(pid) for pid in old.values())
    _, state = converge(provider, target(A, 1), state, lambda o: ready(o, 1))
    cluster_a["state"] = state
    assert len(leaders(provider, A)) == 2


def test_pending_demand_shows_for_the_group(provider: LocalProvider, cluster_a: dict[str, Any]) -> None:
    state = cluster_a["state"]
    url = provider.jobs_endpoint(state)
    assert url is not None
    entrypoint = (
        'python -c "import ray; ray.init(); ray.get([ray.remote(num_cpus=1)'
        "(lambda: __import__('time').sleep(30)).remote() for _ in range(3)])\""
    )
    job = httpx.post(f"{url}/api/jobs/", json={"entrypoint": entrypoint}, headers=auth(A), timeout=30).json()
    try:
        # Two nodes of 1 CPU run two tasks; the third waits for a node of group cpu.
        obs = wait_for(
            lambda: provider.observe(target(A, 1), state), lambda o: o.pending_demand.get("cpu", 0) > 0, timeout=120
        )
        assert obs.pending_demand == {"cpu": 1}
        assert obs.cluster_idle_seconds is not None
    finally:
        httpx.post(f"{url}/api/jobs/{job['submission_id']}/stop", headers=auth(A), timeout=30)


def test_a_caller_killed_midway_is_adopted_not_duplicated(
    provider: LocalProvider, cluster_a: dict[str, Any], tmp_path: Path
) -> None:
    script = tmp_path / "caller.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from rayplane.providers.base import ClusterTarget, GroupTarget, NodeShape
            from rayplane.providers.local import LocalProvider
            shape = NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=8.0)
            target = ClusterTarget(cluster_id={B!r}, name="b", ray_version="2.60.0", image=None, head=shape,
                groups=(GroupTarget("cpu", shape, count=1, min_nodes=0, max_nodes=2),), cloud_config={CAPACITY!r},
                ray_token={TOKENS[B]!r})
            LocalProvider(Path({str(provider.root)!r}), head_timeout=90.0).ensure(target, {{}})
            """
        )
    )
    cdir = store.cluster_dir(provider.root, B)
    caller = subprocess.Popen([sys.executable, str(script)])
    try:
        head = wait_for(lambda: store.read(cdir, B).head(), lambda h: h is not None, timeout=60, every=0.05)
        caller.send_signal(signal.SIGKILL)  # the head has started, the caller waits for it
        caller.wait()
    finally:
        caller.kill()
    assert head is not None
    assert processes.is_alive(head)
    assert [p.pid for p in leaders(provider, B)] == [head.pid]

    state = provider.ensure(target(B, 1), {}).state  # the caller's state was lost with it
    assert pids(state)["head"] == head.pid
    assert len(leaders(provider, B)) == 2  # the same head, one worker
    # Two clusters side by side, both ready.
    obs_b, state = converge(provider, target(B, 1), state, lambda o: ready(o, 1))
    assert pids(state)["head"] == head.pid
    obs_a, cluster_a["state"] = converge(provider, target(A, 1), cluster_a["state"], lambda o: ready(o, 1))
    assert obs_b.dashboard_url != obs_a.dashboard_url


def test_stop_leaves_nothing_running_and_teardown_removes_the_dir(
    provider: LocalProvider, cluster_a: dict[str, Any]
) -> None:
    state = cluster_a["state"]
    cdir = Path(state["cluster_dir"])
    before = set(pids(state).values())
    tree = [p for pid in before for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]]
    stopped = provider.stop(target(A, 1), state).state
    assert stopped["nodes"] == {}
    assert processes.processes_under(cdir) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in tree)
    assert all(processes.session_members(pid) == [] for pid in before)
    assert cdir.is_dir()
    assert provider.jobs_endpoint(stopped) is None
    assert not provider.observe(target(A, 1), stopped).head_alive

    assert provider.teardown(target(A, 1), stopped).state == {}
    assert not cdir.exists()
    b_dir = store.cluster_dir(provider.root, B)
    b_was_running = processes.processes_under(b_dir) != []
    touched = provider.stop_all()  # what `rayplane dev` does on Ctrl-C
    assert (B in touched) == b_was_running
    assert A not in touched
    assert processes.processes_under(b_dir) == []
    assert b_dir.is_dir()
    provider.teardown(target(B, 1), {})
    assert not b_dir.exists()
    assert processes.processes_under(provider.root) == []
    assert json.dumps(stopped)  # the state stays JSON-able
