"""The Serve client without Ray: config values, status parsing and errors (httpx's MockTransport).

The same calls against real Ray are in test_local_serve.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from rayplane.clusters.serve import ServeSpec
from rayplane.providers.local.serve import (
    ApplicationStatus,
    DeploymentStatus,
    ServeClient,
    ServeError,
    parse_status,
    zip_directory,
)
from rayplane.providers.local.serve_config import ProxyLocation, ServeConfig, ServeConfigError

APP = {
    "name": "echo",
    "import_path": "echo:app",
    "route_prefix": "/echo",
    "runtime_env": {"working_dir": "gcs://x.zip"},
}


def test_from_spec_keeps_the_wire_spelling_and_serves_head_only() -> None:
    raw = {
        "applications": [
            {**APP, "deployments": [{"name": "Echo", "num_replicas": 2, "user_config": {"greeting": "hi"}}]},
            {
                "name": "counter",
                "import_path": "counter.app",
                "deployments": [{"name": "Counter", "autoscaling_config": {"min_replicas": 1, "max_replicas": 3}}],
            },
        ],
        "http_options": {"host": "127.0.0.1", "port": 21000},
    }
    config = ServeConfig.from_spec(raw)
    assert config.proxy_location is ProxyLocation.HEAD_ONLY
    body = config.to_json()
    assert body["proxy_location"] == "HeadOnly"
    assert body["http_options"] == {"host": "127.0.0.1", "port": 21000}
    assert body["applications"][0]["deployments"] == [
        {"name": "Echo", "num_replicas": 2, "user_config": {"greeting": "hi"}}
    ]
    assert body["applications"][1]["route_prefix"] == "/"
    assert config.with_http("127.0.0.1", 22000).to_json()["http_options"]["port"] == 22000
    json.dumps(body)  # plain JSON


def test_the_services_serve_spec_body_is_a_serve_config() -> None:
    """``clusters.serve.ServeSpec.deploy_config`` (the services domain) builds what ``from_spec``
    takes, unchanged."""
    spec = ServeSpec.from_json(
        {
            "applications": [
                {**APP, "deployments": [{"name": "Echo", "autoscaling_config": {"min_replicas": 1, "max_replicas": 4}}]}
            ]
        }
    )
    body = spec.deploy_config(http_host="127.0.0.1", http_port=23000)
    assert ServeConfig.from_spec(body).to_json() == body


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"import_path": "echo"}, "applications.0.import_path"),
        ({"route_prefix": "echo"}, "applications.0.route_prefix"),
        ({"runtime_env": {"working_dir": "/srv/app"}}, "applications.0.runtime_env"),
        ({"deployments": [{"name": "E", "num_replicas": 1, "autoscaling_config": {}}]}, "applications.0.deployments.0"),
        ({"deployments": [{"name": "E", "num_replicas": 0}]}, "applications.0.deployments.0.num_replicas"),
        ({"deployments": [{"name": "E"}, {"name": "E"}]}, "applications.0.deployments.1.name"),
        ({"name": ""}, "applications.0.name"),
    ],
)
def test_from_spec_names_the_field_at_fault(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ServeConfigError) as bad:
        ServeConfig.from_spec({"applications": [{**APP, **change}]})
    assert bad.value.field.startswith(field)


def test_from_spec_refuses_two_apps_on_one_prefix_and_a_bad_port() -> None:
    with pytest.raises(ServeConfigError, match=r"applications\.1\.route_prefix"):
        ServeConfig.from_spec({"applications": [APP, {**APP, "name": "other"}]})
    with pytest.raises(ServeConfigError, match=r"http_options\.port"):
        ServeConfig.from_spec({"applications": [APP], "http_options": {"port": 70000}})
    with pytest.raises(ServeConfigError, match="proxy_location"):
        ServeConfig.from_spec({"applications": [APP], "proxy_location": "Somewhere"})


# A GET /api/serve/applications/ answer, cut down from ServeInstanceDetails (ray/serve/schema.py).
DETAILS = {
    "controller_info": {"node_id": "n1"},
    "proxy_location": "HeadOnly",
    "http_options": {"host": "127.0.0.1", "port": 21000},
    "proxies": {"n1": {"status": "HEALTHY", "node_id": "n1"}},
    "applications": {
        "echo": {
            "name": "echo",
            "route_prefix": "/echo",
            "status": "RUNNING",
            "message": "",
            "deployments": {
                "Echo": {
                    "name": "Echo",
                    "status": "UPSCALING",
                    "status_trigger": "CONFIG_UPDATE_STARTED",
                    "message": "Upscaling from 1 to 2 replicas.",
                    "target_num_replicas": 2,
                    "replicas": [
                        {"replica_id": "b", "state": "RUNNING"},
                        {"replica_id": "a", "state": "STARTING"},
                    ],
                }
            },
        },
        "broken": {
            "name": "broken",
            "route_prefix": "/broken",
            "status": "DEPLOY_FAILED",
            "message": "Deploying app 'broken' failed with exception: ModuleNotFoundError ...",
            "deployments": {},
        },
    },
}


def test_parse_status() -> None:
    status = parse_status(DETAILS)
    assert (status.http_host, status.http_port) == ("127.0.0.1", 21000)
    assert status.proxies == {"n1": "HEALTHY"}
    echo = status.applications["echo"].deployments["Echo"]
    assert echo.status is DeploymentStatus.UPSCALING
    assert (echo.target_replicas, echo.running_replicas, dict(echo.replicas)) == (2, 1, {"RUNNING": 1, "STARTING": 1})
    assert echo.replica_ids == ("a", "b")
    assert status.applications["broken"].status is ApplicationStatus.DEPLOY_FAILED
    assert status.all_running(["echo"])
    assert not status.all_running(["echo", "broken"])
    empty = parse_status({"controller_info": {}, "proxies": {}, "applications": {}, "target_capacity": None})
    assert (dict(empty.applications), empty.http_port) == ({}, None)


def test_a_status_this_ray_does_not_write_is_an_error() -> None:
    doc = json.loads(json.dumps(DETAILS))
    doc["applications"]["echo"]["status"] = "SOMETHING_NEW"
    with pytest.raises(ServeError, match="unexpected Serve status"):
        parse_status(doc)


def mock(handler: Any) -> ServeClient:
    return ServeClient("http://head:8265", token="tok", transport=httpx.MockTransport(handler))


def test_calls_carry_the_token_and_put_the_whole_config() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=DETAILS) if request.method == "GET" else httpx.Response(200)

    with mock(handler) as client:
        config = ServeConfig.from_spec({"applications": [APP]})
        client.deploy(config)
        assert client.status().applications["echo"].route_prefix == "/echo"
        client.delete_all()
    assert [(r.method, r.url.path) for r in seen] == [
        ("PUT", "/api/serve/applications/"),
        ("GET", "/api/serve/applications/"),
        ("DELETE", "/api/serve/applications/"),
    ]
    assert all(r.headers["X-Ray-Authorization"] == "Bearer tok" for r in seen)
    assert json.loads(seen[0].content) == config.to_json()


def test_errors_keep_the_dashboards_answer() -> None:
    refusal = "1 validation error for ServeDeploySchema\napplications.0.import_path ..."
    with mock(lambda r: httpx.Response(400, text=refusal)) as client, pytest.raises(ServeError) as bad:
        client.deploy(ServeConfig.from_spec({"applications": [APP]}))
    assert (bad.value.status, bad.value.text, bad.value.retriable) == (400, refusal, False)
    with mock(lambda r: httpx.Response(403, text="no")) as client, pytest.raises(ServeError, match="refused the"):
        client.status()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with mock(down) as client, pytest.raises(ServeError) as unreachable:
        client.delete_all()
    assert unreachable.value.status is None
    assert unreachable.value.retriable
    with mock(lambda r: httpx.Response(503, text="GCS down")) as client, pytest.raises(ServeError) as busy:
        client.status()
    assert busy.value.retriable


def test_upload_directory_sends_a_package_once(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "app.py").write_text("app = 1\n")
    (tmp_path / "pkg" / "mod.py").write_text("x = 2\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    stored: dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200 if request.url.path in stored else 404)
        stored[request.url.path] = request.content
        return httpx.Response(200)

    with mock(handler) as client:
        uri = client.upload_directory(tmp_path)
        assert client.upload_directory(tmp_path) == uri
    (path, data), *more = stored.items()
    assert more == []
    assert uri == "gcs://" + path.rsplit("/", 1)[1]
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["app.py", "pkg/mod.py"]
    assert zip_directory(tmp_path) == data  # the same files, the same bytes


def test_config_values_are_copies_and_null_leaves_the_codes_value() -> None:
    env_vars = {"A": "1"}
    raw = {
        **APP,
        "runtime_env": {"working_dir": "gcs://x.zip", "env_vars": env_vars},
        "deployments": [{"name": "Echo", "user_config": None}],
    }
    config = ServeConfig.from_spec({"applications": [raw]})
    env_vars["A"] = "2"
    body = config.to_json()
    assert body["applications"][0]["runtime_env"]["env_vars"] == {"A": "1"}
    assert body["applications"][0]["deployments"] == [{"name": "Echo"}]
    body["applications"][0]["runtime_env"]["env_vars"]["A"] = "3"
    assert config.applications[0].runtime_env["env_vars"] == {"A": "1"}
