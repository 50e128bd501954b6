"""``rayplane services`` without a server: how a service reads in a table, JSON and YAML,
its status, rollout and events."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

import cli.services as services
from cli.output import render_list, render_one
from cli.views import SERVICE_COLUMNS, code_style, event_text, rollout_fields, service_fields, traffic_text
from tests.cli.services_data import ROLLING, service


# ---- rendering -----------------------------------------------------------------------------
def test_service_table_shows_versions_traffic_and_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    render_list([service(), service(name="other", **ROLLING)], SERVICE_COLUMNS, "table")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "VERSION", "TRAFFIC", "ENDPOINT", "AGE", "ID"]
    assert lines[1].split() == ["hello", "RUNNING", "1", "-", "http://127.0.0.1:41234", "4m", service()["id"]]
    assert "other  ROLLING_OUT  1 → 2    version 1: 80 %, version 2: 20 %  http://127.0.0.1:41234" in lines[2]
    assert all(line == line.rstrip() for line in lines)


def test_json_and_yaml_are_the_api_answer(capsys: pytest.CaptureFixture[str]) -> None:
    s = service(**ROLLING)
    render_one(s, service_fields, "json")
    assert json.loads(capsys.readouterr().out) == s
    render_one(s, service_fields, "yaml")
    assert yaml.safe_load(capsys.readouterr().out) == s
    services.render_status(s, "json")  # type: ignore[arg-type]
    assert json.loads(capsys.readouterr().out) == s
    render_list([s], SERVICE_COLUMNS, "yaml")
    assert yaml.safe_load(capsys.readouterr().out) == [s]


def test_get_view(capsys: pytest.CaptureFixture[str]) -> None:
    render_one(service(**ROLLING, labels={"team": "web"}), service_fields, "table")
    out = capsys.readouterr().out
    for line in (
        "State         ROLLING_OUT",
        "Endpoint      http://127.0.0.1:41234",
        "Version       1 → 2",
        "Traffic       version 1: 80 %, version 2: 20 %",
        "Applications  hello  /hello  app:deployment",
        "              echo  /echo  echo:app",
        "Rollout       incremental: 50 % every 5s, healthy within 10m, surge 100 %",
        "Workers       cpu (1-2)  Standard_D2s_v5",
        "Nodes         version 1: head up, cpu 1/1",
        "              version 2: head up, cpu 0/1",
        "Labels        team=web",
    ):
        assert line in out, out
    assert "Last failure" not in out
    assert "Image" not in out  # none was asked for


def test_get_view_says_a_version_was_rolled_back(capsys: pytest.CaptureFixture[str]) -> None:
    s = service(version=2, failure="Deploying app 'hello' failed: ModuleNotFoundError: No module named 'nope'")
    render_one(s, service_fields, "table")
    out = capsys.readouterr().out
    assert "Version       1  (version 2 was rolled back)" in out
    assert "Last failure  Deploying app 'hello' failed: ModuleNotFoundError: No module named 'nope'" in out


def test_status_lists_each_versions_applications(capsys: pytest.CaptureFixture[str]) -> None:
    services.render_status(service(**ROLLING), "table")  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Service   hello (svc_")
    assert lines[1] == "State     ROLLING_OUT"
    assert lines[2] == "Endpoint  http://127.0.0.1:41234"
    assert lines[3] == "Traffic   version 1: 80 %, version 2: 20 %"
    assert lines[4:6] == ["Nodes     version 1: head up, cpu 1/1", "          version 2: head up, cpu 0/1"]
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["VERSION", "APPLICATION", "STATUS", "MESSAGE"]
    assert table[1].split() == ["1", "hello", "RUNNING", "-"]  # the active version first
    assert table[2].split() == ["2", "hello", "DEPLOYING", "Deploying", "app", "'hello'.", "waiting"]


def test_status_before_any_application_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    first = service(state="PROVISIONING", active_version=None, endpoint_url=None, applications=[], nodes={})
    services.render_status(first, "table")  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "Traffic   none yet" in out
    assert "Endpoint  -" in out
    assert out.rstrip().endswith("No applications reported yet.")


@pytest.mark.parametrize(
    ("changes", "rollout", "traffic"),
    [
        ({}, "no rollout running", "version 1: 100 %"),
        (ROLLING, "version 2 takes 20 % of new requests", "version 1: 80 %, version 2: 20 %"),
        ({**ROLLING, "state": "ROLLING_BACK"}, "rolling back version 2", "version 1: 80 %, version 2: 20 %"),
    ],
)
def test_rollout_status_fields(changes: dict[str, Any], rollout: str, traffic: str) -> None:
    rows = dict(rollout_fields(service(**changes)))  # type: ignore[arg-type]
    assert rows["Rollout"] == rollout
    assert rows["Traffic"] == traffic
    assert traffic_text(service(**changes)) == traffic  # type: ignore[arg-type]


def test_service_events_are_not_shown_as_errors() -> None:
    moved = {
        "id": "evt_1",
        "at": "2026-01-01T12:00:00Z",
        "kind": "service",
        "from_state": None,
        "to_state": None,
        "reason": "version 2 takes 50 % of new requests",
        "code": "TrafficMoved",
        "detail": None,
    }
    line = event_text(moved)  # type: ignore[arg-type]
    assert line.plain == "12:00:00  service           version 2 takes 50 % of new requests [TrafficMoved]".replace(
        "12:00:00", line.plain[:8]
    )
    assert [span.style for span in line.spans][-1] == "cyan"
    assert code_style("RolledBack") == "yellow"
    assert code_style("QuotaExceeded") == "red"
