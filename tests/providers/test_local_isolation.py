"""Tenant code on a local cluster cannot read the control plane's secrets, and the cluster
answers only to its own Ray token, whatever the host's Ray settings.

A real job on a real local cluster runs ``env`` and tries to read the secret key file and
``dev.env`` of a control plane whose worker environment holds every kind of secret Rayplane
has. It gets neither: the node's environment is an allowlist, and (the tests run as root,
as CI does here) the node runs as an unprivileged user of its own while the files are
root's and 0600. The host meanwhile has a ``~/.ray/auth_token`` of its own and
``RAY_AUTH_MODE=disabled``: the cluster runs with token authentication on and the
cluster's token regardless. One cluster for the module (Ray is slow to start). Needs no
repo fixtures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rayplane.identity.bootstrap import write_env_file
from rayplane.providers.base import ClusterTarget, NodeShape, RayAuthFailed, RetriableError
from rayplane.providers.local import LocalProvider, processes
from rayplane.settings import Settings
from tests.support.nodeuser import grant_node_user_access

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

D2 = NodeShape("Standard_D2s_v5", vcpus=2, memory_gib=8.0)
CLUSTER = "cl_test_isolation_cccccccccc"
TOKEN = secrets.token_urlsafe(32)
TARGET = ClusterTarget(
    cluster_id=CLUSTER,
    name="iso",
    ray_version="2.60.0",
    image=None,
    head=D2,
    groups=(),
    cloud_config={"capacity": {"cpus": 2, "memory_gib": 8, "gpus": 0}},
    ray_token=TOKEN,
)
AUTH = {"X-Ray-Authorization": f"Bearer {TOKEN}"}

# What the job runs: its identity, its whole environment, and what reading each file gave.
PROBE = """
import json, os, sys
out = {"uid": os.geteuid(), "env": dict(os.environ), "reads": {}}
for path in sys.argv[1:]:
    try:
        with open(path) as fh:
            out["reads"][path] = "READ:" + fh.read()
    except OSError as exc:
        out["reads"][path] = type(exc).__name__
print("PROBE" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def control_plane() -> Iterator[dict[str, Any]]:
    """A worker's environment full of secrets, a data dir with the files Rayplane writes, and
    a host whose Ray settings say otherwise than Rayplane (another token, auth disabled).

    The data dir is world-searchable here on purpose, so only the files' own modes and the
    node's user stand between a job and them."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _control_plane(monkeypatch)


def _control_plane(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    host_home = Path(tempfile.mkdtemp(prefix="rphome"))
    (host_home / ".ray").mkdir()
    (host_home / ".ray" / "auth_token").write_text("host-token-" + secrets.token_hex(8))
    monkeypatch.setenv("HOME", str(host_home))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "host-env-token-" + secrets.token_hex(8))
    data_dir = Path(tempfile.mkdtemp(prefix="rpdata"))
    data_dir.chmod(0o755)
    secrets_env = {
        "RAYPLANE_SECRET_KEY": "sk-" + secrets.token_hex(16),
        "RAYPLANE_DATABASE_URL": f"postgresql://rayplane:{secrets.token_hex(8)}@127.0.0.1:5432/rayplane",
        "RAYPLANE_AZURE_CLIENT_SECRET": "az-" + secrets.token_hex(16),
        "RAYPLANE_MARKETPLACE_CLIENT_SECRET": "mp-" + secrets.token_hex(16),
        "AZURE_CLIENT_SECRET": "azenv-" + secrets.token_hex(16),
        "SOME_API_TOKEN": "tok-" + secrets.token_hex(16),
        "RAYPLANE_DATA_DIR": str(data_dir),
    }
    for name, value in secrets_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RAYPLANE_SECRET_KEY", raising=False)  # dev mode: the key lives in a file
    key = Settings(data_dir=data_dir).hashing_key().decode()
    monkeypatch.setenv("RAYPLANE_SECRET_KEY", secrets_env["RAYPLANE_SECRET_KEY"])
    write_env_file(data_dir / "dev.env", {"RAYPLANE_API_KEY": "rpk_" + secrets.token_hex(20)})
    yield {"env": secrets_env, "data_dir": data_dir, "file_key": key}
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(host_home, ignore_errors=True)


@pytest.fixture(scope="module")
def provider(control_plane: dict[str, Any]) -> Iterator[LocalProvider]:
    grant_node_user_access()
    root = Path(tempfile.mkdtemp(prefix="rpi", dir="/tmp"))  # short: Ray's socket paths
    prov = LocalProvider(root, head_timeout=120.0)
    yield prov
    try:
        prov.teardown(TARGET, {})
    finally:
        processes.kill_processes(processes.processes_under(root))
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture(scope="module")
def cluster(provider: LocalProvider) -> dict[str, Any]:
    return ensure(provider)


def ensure(provider: LocalProvider) -> dict[str, Any]:
    """``ensure``, tried again on RetriableError as the reconciler does (a slow machine can
    make Ray's first start fail)."""
    for attempt in range(3):
        try:
            return provider.ensure(TARGET, {}).state
        except RetriableError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def run_job(url: str, entrypoint: str, headers: dict[str, str]) -> str:
    with httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False) as client:
        r = client.post("/api/jobs/", json={"entrypoint": entrypoint})
        assert r.status_code == 200, r.text
        sid = r.json()["submission_id"]
        deadline = time.monotonic() + 240
        while True:
            status = client.get(f"/api/jobs/{sid}").json()["status"]
            if status in ("SUCCEEDED", "FAILED", "STOPPED"):
                break
            assert time.monotonic() < deadline, f"job still {status}"
            time.sleep(1)
        logs = str(client.get(f"/api/jobs/{sid}/logs").json()["logs"])
        assert status == "SUCCEEDED", logs
        return logs


def test_a_job_sees_no_control_plane_secret(
    provider: LocalProvider, control_plane: dict[str, Any], cluster: dict[str, Any]
) -> None:
    state = cluster
    url = provider.jobs_endpoint(state)
    assert url is not None
    data_dir: Path = control_plane["data_dir"]
    files = [data_dir / "secret_key", data_dir / "dev.env"]
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)
    probe = Path(state["cluster_dir"]) / "home" / "probe.py"  # where the node user can read it
    probe.write_text(PROBE)
    probe.chmod(0o644)
    logs = run_job(url, f"python {probe} " + " ".join(map(str, files)), AUTH)
    found = json.loads(logs.split("PROBE", 1)[1].strip().splitlines()[0])

    assert found["uid"] != 0, "the job ran as root"
    assert found["uid"] != os.geteuid()
    assert found["reads"] == {str(f): "PermissionError" for f in files}
    env: dict[str, str] = found["env"]
    assert not [k for k in env if k.startswith("RAYPLANE_")]
    assert not [k for k in env if any(w in k for w in ("SECRET", "_KEY", "PASSWORD", "DATABASE_URL", "API_TOKEN"))]
    dump = json.dumps(found)
    for name, value in control_plane["env"].items():
        if name != "RAYPLANE_DATA_DIR":
            assert value not in dump, f"{name} reached the job"
    assert control_plane["file_key"] not in dump
    assert env["HOME"].startswith(state["cluster_dir"])  # never the host's ~/.ray


def test_the_cluster_answers_only_to_its_own_token(provider: LocalProvider, cluster: dict[str, Any]) -> None:
    url = provider.jobs_endpoint(cluster)
    assert url is not None
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
        assert client.get("/api/authentication_mode").json() == {"authentication_mode": "token"}
        assert client.get("/api/v0/nodes").status_code == 401
        wrong = {"X-Ray-Authorization": "Bearer host-token"}
        assert client.get("/api/v0/nodes", headers=wrong).status_code == 403
        assert client.get("/api/v0/nodes", headers=AUTH).status_code == 200
        assert client.get("/api/v0/nodes", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert provider.observe(TARGET, cluster).head_alive


def test_a_refused_token_is_an_auth_failure_and_the_head_keeps_running(
    provider: LocalProvider, cluster: dict[str, Any]
) -> None:
    """What the reconciler sees when the head has another token: ``RayAuthFailed`` from
    observe and ensure, never "did not answer", and no restart of a healthy head."""
    head_pid = cluster["nodes"]["head"]["pid"]
    other = dataclasses.replace(TARGET, ray_token="not-" + TOKEN)
    with pytest.raises(RayAuthFailed) as observed:
        provider.observe(other, cluster)
    assert observed.value.code == "RayAuthFailed"
    # ensure writes the new token for nodes it starts, but the running head keeps its own
    with pytest.raises(RayAuthFailed):
        provider.ensure(other, cluster)
    state = provider.ensure(TARGET, cluster).state
    assert state["nodes"]["head"]["pid"] == head_pid
    assert processes.is_alive(processes.NodeRecord.from_dict(state["nodes"]["head"]))
    assert provider.observe(TARGET, state).head_alive
