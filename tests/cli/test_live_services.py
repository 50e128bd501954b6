"""``rayplane services`` as a user runs it (``python -m cli`` subprocesses) against the whole
control plane on the local provider: real API, worker, Postgres, Redis, Ray Serve and Caddy.

One service carries the tests in file order: a tiny Serve app written to a temp directory and
referenced by ``runtime_env.working_dir`` (relative to the service file), deployed with
``--wait``, answered at its endpoint, changed in place by a second deploy, and deleted. The
module's fixture deletes the service if a test left it behind.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli.support import Cli, Result, assert_clean_failure, explain
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

NAME = f"svc-{uuid.uuid4().hex[:6]}"
APP = '''\
"""A Serve app for the CLI's tests: a greeting that ``user_config`` sets, without a restart."""

from typing import Any

from ray import serve
from starlette.requests import Request


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Hello:
    def __init__(self) -> None:
        self.greeting = "hello"

    def reconfigure(self, config: dict[str, Any]) -> None:
        self.greeting = str(config.get("greeting", "hello"))

    async def __call__(self, request: Request) -> str:
        return f"{self.greeting} from rayplane"


app = Hello.bind()
'''


def ok(result: Result) -> Result:
    assert result.returncode == 0, explain(result)
    assert "Traceback" not in result.stderr
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


def write_service(
    directory: Path,
    greeting: str,
    name: str = NAME,
    route: str = "/hello",
    image: str | None = None,
    import_path: str = "hello:app",
    health_timeout: int = 300,
) -> Path:
    """``service.yaml`` and its app in ``app/``, beside it (the file names it relatively).

    On the local provider an image is not pulled: a new one is just a new version.
    """
    (directory / "app").mkdir(parents=True, exist_ok=True)
    (directory / "app" / "hello.py").write_text(APP)
    body = {
        "name": name,
        "head": {"vm_size": "Standard_D2s_v5"},
        "worker_groups": [],
        "labels": {"suite": "cli-services"},
        "serve": {
            "applications": [
                {
                    "name": "hello",
                    "import_path": import_path,
                    "route_prefix": route,
                    "runtime_env": {"working_dir": "./app"},
                    "deployments": [{"name": "Hello", "user_config": {"greeting": greeting}}],
                }
            ]
        },
        # Steps of 50 % every 3 s; a version not healthy in time after it is up is rolled back.
        "rollout": {
            "strategy": "incremental",
            "step_percent": 50,
            "interval_seconds": 3,
            "health_timeout_seconds": health_timeout,
        },
        **({"image": image} if image else {}),
    }
    path = directory / "service.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def live_services(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.request("GET", "/v1/services", params={"limit": 200}).json()["items"])


@pytest.fixture(scope="module")
def specdir() -> Iterator[Path]:
    """Where the service file and its app live: readable by the nodes' user, which the control
    plane checks before it uploads a local working_dir (pytest's own temp dirs are private)."""
    directory = Path(tempfile.mkdtemp(prefix="rpsvc-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def deployed(cli: Cli, stack: Stack, specdir: Path) -> Iterator[tuple[Result, dict[str, Any]]]:
    path = write_service(specdir, "hello")
    started = time.monotonic()
    result = cli("services", "deploy", "-f", str(path), "--wait", "--timeout", "600", "-o", "json", timeout=700)
    print(f"services deploy --wait took {time.monotonic() - started:.0f}s\n{result.stderr}")
    try:
        yield result, as_json(result)
    finally:
        left = live_services(stack)
        for s in left:
            stack.request("DELETE", f"/v1/services/{s['id']}")
        for s in left:
            stack.wait_state(s["id"], "DELETED", timeout=300)


def test_an_invalid_service_is_refused_with_the_field_at_fault(cli: Cli, tmp_path: Path) -> None:
    path = write_service(tmp_path, "hello", name="bad-route", route="no-slash")
    result = cli("services", "deploy", "-f", str(path))
    assert_clean_failure(result)
    assert result.returncode == 2
    assert "serve.applications[0].route_prefix" in result.stderr, result.stderr
    assert "body." not in result.stderr


def test_deploy_with_wait_reaches_running(deployed: tuple[Result, dict[str, Any]]) -> None:
    result, s = deployed
    assert s["state"] == "RUNNING"
    assert s["name"] == NAME
    assert s["active_version"] == 1
    assert s["endpoint_url"].startswith("http://")
    assert f"Creating service {NAME} ({s['id']})" in result.stderr
    assert result.stderr.rstrip().endswith(f"{NAME} is RUNNING")


def test_the_endpoint_answers_with_the_app(cli: Cli, deployed: tuple[Result, dict[str, Any]]) -> None:
    url = ok(cli("services", "endpoint", NAME)).stdout
    assert url == deployed[1]["endpoint_url"] + "\n"
    answer = httpx.get(url.strip() + "/hello", timeout=30)
    assert (answer.status_code, answer.text) == (200, "hello from rayplane")


def test_status_list_get_and_rollout_status(cli: Cli, deployed: tuple[Result, dict[str, Any]]) -> None:
    sid = deployed[1]["id"]
    shown = ok(cli("services", "status", NAME)).stdout
    print(shown, ok(cli("services", "get", NAME)).stdout, ok(cli("services", "list")).stdout, sep="\n")
    status = shown.splitlines()
    assert status[1].split()[:2] == ["State", "RUNNING"]
    assert status[3] == "Traffic   version 1: 100 %"
    rows = [line.split()[:3] for line in status[status.index("") + 1 :]]
    assert rows == [["VERSION", "APPLICATION", "STATUS"], ["1", "hello", "RUNNING"]]
    listed = ok(cli("services", "list")).stdout.splitlines()
    assert listed[1].split()[:3] == [NAME, "RUNNING", "1"]
    assert as_json(cli("services", "get", sid, "-o", "json"))["name"] == NAME
    rollout = ok(cli("services", "rollout", "status", NAME))
    assert "no rollout running" in rollout.stdout
    missing = cli("services", "get", "no-such-service")
    assert_clean_failure(missing)
    assert missing.returncode == 3


def test_a_serve_only_deploy_applies_in_place(cli: Cli, deployed: tuple[Result, dict[str, Any]], specdir: Path) -> None:
    path = write_service(specdir, "bonjour")
    result = cli("services", "deploy", "-f", str(path), "--wait", "--timeout", "600", "-o", "json", timeout=700)
    print(result.stderr)
    s = as_json(result)
    assert s["state"] == "RUNNING"
    assert s["active_version"] == deployed[1]["active_version"]  # no new version: applied in place
    assert f"Updating service {NAME} ({s['id']}): serve; applied in place" in result.stderr
    answer = httpx.get(s["endpoint_url"] + "/hello", timeout=30)
    assert answer.text == "bonjour from rayplane"
    events = as_json(cli("services", "events", NAME, "-o", "json"))
    assert events[0]["to_state"] == "PENDING"
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_an_image_change_rolls_out_a_new_version(
    cli: Cli, deployed: tuple[Result, dict[str, Any]], specdir: Path
) -> None:
    path = write_service(specdir, "v2", image="rayproject/ray:cli-rollout")
    result = cli("services", "deploy", "-f", str(path), "--wait", "--timeout", "600", "-o", "json", timeout=700)
    print(result.stderr)
    s = as_json(result)
    assert (s["state"], s["active_version"], s["pending_version"]) == ("RUNNING", 2, None)
    assert f"Updating service {NAME} ({s['id']}): serve, image; version 2 rolls out (incremental)" in result.stderr
    assert "version 2 takes 50 % of new requests [TrafficMoved]" in result.stderr
    assert "[RolloutCompleted]" in result.stderr
    assert s["endpoint_url"] == deployed[1]["endpoint_url"]  # the same address across versions
    assert httpx.get(s["endpoint_url"] + "/hello", timeout=30).text == "v2 from rayplane"
    rollout = ok(cli("services", "rollout", "status", NAME)).stdout
    assert "no rollout running" in rollout
    assert "Active version   2" in rollout


def test_a_version_that_cannot_start_fails_the_deploy_with_serves_error(
    cli: Cli, deployed: tuple[Result, dict[str, Any]], specdir: Path
) -> None:
    # It never imports: rolled back 20 s after its cluster is up, not at the usual 300 s.
    path = write_service(
        specdir, "v3", image="rayproject/ray:cli-broken", import_path="no_such_module:app", health_timeout=20
    )
    result = cli("services", "deploy", "-f", str(path), "--wait", "--timeout", "600", timeout=700)
    print(result.stderr)
    assert_clean_failure(result)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"error: service {NAME} update failed: version 3 rolled back; version 2 still serves"), last
    assert "no_such_module" in last
    assert last.endswith("[RolloutFailed]")
    s = as_json(cli("services", "get", NAME, "-o", "json"))
    assert (s["state"], s["active_version"], s["pending_version"]) == ("RUNNING", 2, None)
    assert httpx.get(s["endpoint_url"] + "/hello", timeout=30).text == "v2 from rayplane"
    assert "no_such_module" in ok(cli("services", "status", NAME)).stdout  # Last failure


def test_delete_with_wait_ends_and_ctrl_c_says_it_goes_on(cli: Cli, deployed: tuple[Result, dict[str, Any]]) -> None:
    refused = cli("services", "delete", NAME)  # no terminal to confirm on, no --yes
    assert_clean_failure(refused)
    assert refused.returncode == 2
    proc = subprocess.Popen(
        cli.argv("services", "delete", NAME, "--yes", "--wait"),
        cwd=cli.home,
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith(f"Delete requested for {NAME}"), first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"error: stopped waiting; the delete of {NAME} goes on. Follow it with: rayplane services events {NAME}"
        f" --follow (or look: rayplane services status {NAME})"
    )
    result = cli("services", "delete", NAME, "--yes", "--wait", "--timeout", "300", "-o", "json", timeout=400)
    deleted = as_json(result)
    assert deleted["state"] == "DELETED"
    assert result.stderr.startswith(f"service {NAME!r} ({deleted['id']}) is already"), result.stderr
    assert as_json(cli("services", "list", "-o", "json")) == []
    again = ok(cli("services", "delete", NAME, "--yes"))
    assert again.stderr.splitlines()[0] == f"service {NAME!r} ({deleted['id']}) is already deleted"
    gone = cli("services", "endpoint", NAME)
    assert_clean_failure(gone)
    assert gone.returncode == 4
