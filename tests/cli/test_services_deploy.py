"""``rayplane services`` without a server: the service file, what deploy sends to a fake API
(create, then only what differs, with If-Match), following a deploy that fails, and one
clean line when the API cannot be reached."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml

import cli.service_files as service_files
import cli.services as services
import cli.watch as watch
from cli.client import RayplaneClient, Service
from cli.context import OutputFormat
from cli.lifecycle import already_there
from cli.specs import SpecError
from tests.cli.services_data import FILE, ROLLING, SERVE, service
from tests.cli.support import Cli, assert_clean_failure
from tests.cli.test_help import closed_port


# ---- the service file ------------------------------------------------------------------
def test_service_file_makes_local_code_paths_absolute(tmp_path: Path) -> None:
    (tmp_path / "svc").mkdir()
    path = tmp_path / "svc" / "service.yaml"
    path.write_text(
        "name: hello\nserve:\n  applications:\n"
        "    - {name: a, import_path: app:d, runtime_env: {working_dir: ./app, py_modules: [lib, 's3://b/m.zip']}}\n"
        "    - {name: b, import_path: app:d, runtime_env: {working_dir: 'https://example.com/app.zip'}}\n"
    )
    body = service_files.load_service_file(str(path))
    first, second = body["serve"]["applications"]
    assert first["runtime_env"] == {
        "working_dir": str(tmp_path / "svc" / "app"),
        "py_modules": [str(tmp_path / "svc" / "lib"), "s3://b/m.zip"],
    }
    assert second["runtime_env"] == {"working_dir": "https://example.com/app.zip"}


def test_service_file_errors(tmp_path: Path) -> None:
    (tmp_path / "noname.yaml").write_text("serve: {applications: []}\n")
    with pytest.raises(SpecError, match="a service needs a name"):
        service_files.load_service_file(str(tmp_path / "noname.yaml"))
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(SpecError, match=r"expected a mapping .*rayplane services deploy --help"):
        service_files.load_service_file(str(tmp_path / "list.yaml"))


def test_deploy_names_the_line_and_column_of_a_bad_file(tmp_path: Path) -> None:
    cli = Cli(tmp_path, {"RAYPLANE_API_KEY": "rpk_x", "RAYPLANE_API_URL": f"http://127.0.0.1:{closed_port()}"})
    (tmp_path / "service.yaml").write_text("name: hello\nserve:\n  applications:\n   - name: a\n  bad: [\n")
    result = cli("services", "deploy", "-f", "service.yaml", timeout=60)
    assert_clean_failure(result)
    assert result.returncode == 2
    assert result.stderr.startswith("error: service.yaml is not valid YAML: line 6, column 1:"), result.stderr
    missing = cli("services", "deploy", "-f", "nope.yaml", timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: cannot read nope.yaml: No such file or directory"
    no_file = cli("services", "deploy", timeout=60)
    assert no_file.returncode == 2
    assert "Missing option '--file'" in no_file.stderr


@pytest.mark.parametrize(
    "argv",
    [("services", "list"), ("services", "status", "hello"), ("services", "endpoint", "hello"), ("services", "deploy")],
    ids=" ".join,
)
def test_unreachable_api_is_one_line(tmp_path: Path, argv: tuple[str, ...]) -> None:
    (tmp_path / "service.yaml").write_text(FILE)
    url = f"http://127.0.0.1:{closed_port()}"
    cli = Cli(tmp_path, {"RAYPLANE_API_KEY": "rpk_x"})
    extra = ("-f", "service.yaml") if argv[-1] == "deploy" else ()
    result = cli("--api-url", url, *argv, *extra, timeout=60)
    assert_clean_failure(result)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot reach the API at {url}: connection refused"


# ---- what deploy sends ------------------------------------------------------------------
def test_patch_holds_only_what_differs() -> None:
    live: Service = service()  # type: ignore[assignment]
    wanted = yaml.safe_load(FILE)
    assert service_files.service_patch(wanted, live) == {}  # the API's defaults do not count as changes
    assert service_files.service_patch({**wanted, "image": "rayproject/ray:2.60.0-py312"}, live) == {
        "image": "rayproject/ray:2.60.0-py312"
    }
    serve = copy.deepcopy(SERVE)
    serve["applications"][0]["deployments"] = [{"name": "D", "num_replicas": 2}]
    assert service_files.service_patch({**wanted, "serve": serve}, live) == {"serve": serve}
    assert service_files.service_patch({**wanted, "labels": {"a": "b"}, "bogus": 1}, live) == {
        "labels": {"a": "b"},
        "bogus": 1,  # the API names what it does not know
    }
    local = copy.deepcopy(SERVE)
    local["applications"][0]["runtime_env"] = {"working_dir": "/srv/app"}
    same = service(serve=local)
    assert service_files.service_patch({**wanted, "serve": local}, same) == {"serve": local}  # type: ignore[arg-type]


def test_the_cloud_cannot_change_and_is_named_either_way() -> None:
    live: Service = service()  # type: ignore[assignment]
    assert service_files.fixed_field_errors({"name": "hello", "cloud": "elsewhere"}, live, {"cld_1": "local"}) == [
        ("cloud", "the service runs on local; a service cannot move to another cloud")
    ]
    for same in ("local", "cld_1"):
        assert service_files.fixed_field_errors({"name": "hello", "cloud": same}, live, {"cld_1": "local"}) == []
    head = {"vm_size": "Standard_D8s_v5"}  # a new size: rolls out a new version
    assert service_files.service_patch({"name": "hello", "head": head}, live) == {"head": head}
    assert service_files.service_patch({"name": "hello", "head": {"vm_size": "Standard_D2s_v5"}}, live) == {}


@dataclass
class FakeApi:
    """Just enough of /v1/services, /v1/operations and /v1/clouds for deploy."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    operation: dict[str, Any] = field(default_factory=lambda: {"status": "Running"})
    events: list[dict[str, Any]] = field(default_factory=list)
    conflicts: int = 0
    #: Events recorded once a PATCH is accepted.
    later_events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = json.loads(request.content) if request.content else {}
        self.requests.append((request.method, request.url.path, dict(request.headers), body))
        path, method = request.url.path, request.method
        accepted = {"Operation-Location": "/v1/operations/op_1"}
        if path == "/v1/clouds":
            return httpx.Response(200, json={"items": [{"id": "cld_1", "name": "local"}], "next_cursor": None})
        if path == "/v1/services" and method == "GET":
            return httpx.Response(200, json={"items": list(self.services.values()), "next_cursor": None})
        if path == "/v1/services" and method == "POST":
            s = service(state="PENDING", active_version=None, endpoint_url=None, applications=[], serve=body["serve"])
            self.services[s["id"]] = s
            return httpx.Response(202, json=s, headers=accepted)
        if path.endswith(":rollback") and method == "POST":
            s = self.services[path.rsplit("/", 1)[-1].removesuffix(":rollback")]
            s.update(state="RUNNING", pending_version=None, traffic_percent=0, version=s["active_version"])
            return httpx.Response(202, json=s, headers=accepted)
        if path.startswith("/v1/services/") and path.endswith("/events"):
            return httpx.Response(200, json={"items": self.events, "next_cursor": None})
        if path.startswith("/v1/services/"):
            s = self.services[path.rsplit("/", 1)[-1]]
            if method == "PATCH":
                if self.conflicts:
                    self.conflicts -= 1
                    s["generation"] += 1  # someone else changed it
                    return httpx.Response(412, json={"title": "Precondition failed", "detail": "stale ETag"})
                assert request.headers["If-Match"] == f'"{s["generation"]}"'
                s["generation"] += 1
                self.events += self.later_events
                if "image" in body:
                    s.update(version=s["version"] + 1, pending_version=s["version"] + 1, state="ROLLING_OUT")
                    s["spec"]["image"] = body["image"]
                return httpx.Response(202, json=s, headers=accepted)
            return httpx.Response(200, json=s, headers={"ETag": f'"{s["generation"]}"'})
        if path == "/v1/operations/op_1":
            return httpx.Response(200, json={"id": "op_1", "kind": "update", **self.operation})
        return httpx.Response(404, json={"title": "Not found", "detail": path})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    api = FakeApi()
    monkeypatch.setattr(
        services, "client", lambda: RayplaneClient("http://api", "rpk_x", transport=httpx.MockTransport(api))
    )
    monkeypatch.setattr(watch, "POLL_SECONDS", 0.01)
    return api


def sent(api: FakeApi) -> list[tuple[str, str, Any]]:
    """The requests that change something."""
    return [(m, p, b) for m, p, _, b in api.requests if m in ("POST", "PATCH", "DELETE")]


def test_deploy_creates_then_sends_only_what_differs_with_if_match(
    fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(FILE)
    services.deploy(file=str(path), output=OutputFormat.json)
    assert [(m, p) for m, p, _ in sent(fake)] == [("POST", "/v1/services")]
    post = next(r for r in fake.requests if r[0] == "POST")
    assert post[3] == yaml.safe_load(FILE)
    assert post[2]["idempotency-key"]
    created = json.loads(capsys.readouterr().out)
    assert created["state"] == "PENDING"

    fake.requests.clear()
    services.deploy(file=str(path), output=OutputFormat.json)  # the same file again: nothing to send
    assert sent(fake) == []
    assert "already runs what" in capsys.readouterr().err

    path.write_text(FILE + "image: rayproject/ray:2.60.0-py312\n")
    fake.conflicts = 1  # changed by someone else between the read and the PATCH: read again, retry once
    services.deploy(file=str(path), output=OutputFormat.json)
    assert sent(fake) == [("PATCH", f"/v1/services/{created['id']}", {"image": "rayproject/ray:2.60.0-py312"})] * 2
    err = capsys.readouterr().err
    assert "the service changed meanwhile" in err
    assert f"Updating service hello ({created['id']}): image; version 2 rolls out (incremental)" in err


def test_deploy_refuses_a_change_a_live_service_cannot_take(
    fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.services["svc_1"] = service(id="svc_1")
    (tmp_path / "service.yaml").write_text(FILE + "cloud: elsewhere\n")
    with pytest.raises(typer.Exit) as exited:
        services.deploy(file=str(tmp_path / "service.yaml"), output=OutputFormat.json)
    assert exited.value.exit_code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {tmp_path / 'service.yaml'} asks for a change that needs a new service; delete hello and deploy again",
        "  cloud: the service runs on local; a service cannot move to another cloud",
    ]
    assert sent(fake) == []


def test_deploy_wait_prints_events_and_exits_1_when_the_operation_fails(
    fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.services["svc_1"] = service(id="svc_1")
    (tmp_path / "service.yaml").write_text(FILE + "image: broken:1\n")
    fake.later_events = [
        {
            "id": "evt_9",
            "at": "2026-01-01T12:00:00Z",
            "kind": "service",
            "from_state": "ROLLING_OUT",
            "to_state": "ROLLING_BACK",
            "reason": "version 2 not healthy within 10m",
            "code": "RolledBack",
            "detail": None,
        }
    ]
    fake.operation = {"status": "Failed", "error_code": "RolloutFailed", "error_message": "version 2 was rolled back"}
    fake.services["svc_1"]["failure"] = "Deploying app 'hello' failed: ImportError"
    with pytest.raises(typer.Exit) as exited:
        services.deploy(file=str(tmp_path / "service.yaml"), wait_=True, timeout=30, output=OutputFormat.json)
    assert exited.value.exit_code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert any(
        line.endswith("ROLLING_OUT → ROLLING_BACK  version 2 not healthy within 10m [RolledBack]") for line in lines
    )
    assert lines[-1] == (
        "error: service hello update failed: version 2 was rolled back [RolloutFailed]"
        " (Deploying app 'hello' failed: ImportError)"
    )


def test_rollback_without_a_rollout_sends_nothing_and_with_one_asks_for_it(
    fake: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.services["svc_1"] = service(id="svc_1")
    services.rollback("hello", output=OutputFormat.json)
    assert sent(fake) == []
    assert capsys.readouterr().err.splitlines() == [
        "service 'hello' (svc_1) has no rollout to roll back; version 1 serves all traffic"
    ]
    fake.services["svc_1"].update(ROLLING)
    fake.operation = {"status": "Succeeded"}
    services.rollback("svc_1", wait_=True, timeout=30, output=OutputFormat.json)
    assert sent(fake) == [("POST", "/v1/services/svc_1:rollback", {})]
    captured = capsys.readouterr()
    assert json.loads(captured.out)["active_version"] == 1
    assert captured.err.splitlines()[0] == "Rollback requested for hello (svc_1)"
    assert captured.err.splitlines()[-1] == "hello is RUNNING"


def test_endpoint_prints_the_url_only(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    fake.services["svc_1"] = service(id="svc_1")
    services.endpoint("hello")
    assert capsys.readouterr().out == "http://127.0.0.1:41234\n"
    fake.services["svc_1"].update(state="STOPPED", endpoint_url=None)
    with pytest.raises(typer.Exit) as exited:
        services.endpoint("hello")
    assert exited.value.exit_code == 4
    assert capsys.readouterr().err.strip() == "error: service hello has no endpoint while STOPPED"
    with pytest.raises(typer.Exit) as missing:
        services.endpoint("nope")
    assert missing.value.exit_code == 3
    assert capsys.readouterr().err.strip() == "error: no service named 'nope' (see `rayplane services list`)"


@pytest.mark.parametrize(
    ("action", "state", "desired", "said"),
    [
        ("delete", "DELETED", "deleted", "already deleted"),
        ("delete", "DELETING", "deleted", "already being deleted"),
        ("delete", "RUNNING", "deleted", "already being deleted"),  # accepted, not picked up yet
        ("delete", "RUNNING", "running", None),
        ("stop", "STOPPED", "stopped", "already stopped"),
        ("stop", "RUNNING", "stopped", "already stopping"),
        ("stop", "STOPPED", "running", None),  # a start is pending: stopping again is a request
        ("start", "RUNNING", "running", "already running"),
        ("start", "FAILED", "running", None),
        ("retry", "FAILED", "running", None),
    ],
)
def test_what_has_nothing_to_do(action: str, state: str, desired: str, said: str | None) -> None:
    assert already_there(action, state, desired) == said
