"""Rendering: short tables, JSON and YAML that parse, one-line errors (no server needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from cli.client import ApiError
from cli.context import exit_code_for, problem_line
from cli.jobs import entrypoint_text
from cli.output import age, cell, duration, print_error, render_list, render_one
from cli.views import CLUSTER_COLUMNS, cluster_fields, event_text


def cluster(name: str = "demo", state: str = "RUNNING") -> dict[str, Any]:
    created = (datetime.now(UTC) - timedelta(minutes=3)).isoformat()
    return {
        "id": "cls_01jd3w5z8k2m4n6p8r0t2v4x6y",
        "name": name,
        "cloud_id": "cld_1",
        "state": state,
        "state_reason": None,
        "state_code": None,
        "desired_state": "running",
        "spec": {
            "name": name,
            "ray_version": "2.60.0",
            "head": {"vm_size": "Standard_D4s_v5"},
            "worker_groups": [
                {"name": "cpu", "vm_size": "Standard_D8s_v5", "min_nodes": 0, "max_nodes": 4, "spot": True}
            ],
        },
        "labels": {"team": "ml"},
        "observed": {"groups": {"cpu": {"ready": 1, "wanted": 2}}},
        "dashboard_url": "http://127.0.0.1:8265",
        "generation": 2,
        "observed_generation": 2,
        "created_at": created,
        "updated_at": created,
    }


def test_cluster_table_is_short_and_readable(capsys: pytest.CaptureFixture[str]) -> None:
    render_list([cluster(), cluster("other", "FAILED")], CLUSTER_COLUMNS, "table")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "HEAD", "WORKERS", "(ready/wanted)", "AGE", "ID"]
    assert lines[1].split()[:3] == ["demo", "RUNNING", "Standard_D4s_v5"]
    assert "cpu 1/2 (0-4 spot)" in lines[1]
    assert "3m" in lines[1]
    assert len(lines) == 3
    assert all(line == line.rstrip() for line in lines)


def test_json_and_yaml_parse(capsys: pytest.CaptureFixture[str]) -> None:
    items = [cluster(), cluster("b")]
    render_list(items, CLUSTER_COLUMNS, "json")
    assert json.loads(capsys.readouterr().out) == items
    render_list(items, CLUSTER_COLUMNS, "yaml")
    assert yaml.safe_load(capsys.readouterr().out) == items
    render_one(items[0], cluster_fields, "json")
    assert json.loads(capsys.readouterr().out) == items[0]


def test_empty_list_is_a_note_on_stderr_but_an_empty_json_array(capsys: pytest.CaptureFixture[str]) -> None:
    render_list([], CLUSTER_COLUMNS, "table", empty="No clusters.")
    captured = capsys.readouterr()
    assert (captured.out, captured.err.strip()) == ("", "No clusters.")
    render_list([], CLUSTER_COLUMNS, "json")
    assert json.loads(capsys.readouterr().out) == []


def test_details_view(capsys: pytest.CaptureFixture[str]) -> None:
    render_one(cluster(), cluster_fields, "table")
    out = capsys.readouterr().out
    assert "Dashboard     http://127.0.0.1:8265" in out
    assert "cpu 1/2 (0-4 spot)  Standard_D8s_v5" in out
    assert "Labels        team=ml" in out


def test_error_is_one_line_plus_field_lines(capsys: pytest.CaptureFixture[str]) -> None:
    long_message = "unknown VM size 'Standard_Nope_v9'; did you mean " + ", ".join(["Standard_E8s_v5"] * 20)
    problem = {
        "type": "https://rayplane.dev/problems/invalid-input",
        "title": "Invalid input",
        "status": 422,
        "detail": f"body.worker_groups.0.vm_size: {long_message}",
        "errors": [{"field": "body.worker_groups.0.vm_size", "message": long_message}],
    }
    exc = ApiError(422, problem)
    print_error(problem_line(exc), exc.field_errors)
    assert capsys.readouterr().err.splitlines() == [
        "error: Invalid input",
        f"  body.worker_groups.0.vm_size: {long_message}",
    ]
    conflict = ApiError(409, {"title": "Conflict", "detail": "cluster demo is DELETING"})
    assert problem_line(conflict) == "Conflict: cluster demo is DELETING"
    assert ApiError(502, {"title": "HTTP 502", "detail": "Bad Gateway"}, "r1").field_errors == []


@pytest.mark.parametrize(
    ("status", "code"), [(404, 3), (409, 4), (412, 4), (422, 2), (401, 2), (403, 1), (500, 1), (503, 1)]
)
def test_exit_codes_by_status(status: int, code: int) -> None:
    assert exit_code_for(status) == code


def test_cells_and_durations() -> None:
    assert cell(None) == "-"
    assert cell({"a": 1, "b": "x"}) == "a=1,b=x"
    assert cell(["x", "y"]) == "x, y"
    assert cell(True) == "yes"
    assert [duration(s) for s in (5, 59, 90, 600, 7200, 86400 * 3)] == ["5s", "59s", "1m30s", "10m", "2h", "3d"]
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert age("2026-01-01T11:58:00Z", now) == "2m"
    assert age(None) == "-"


def test_entrypoint_quoting() -> None:
    assert entrypoint_text(["python", "train.py", "--epochs", "3"]) == "python train.py --epochs 3"
    assert entrypoint_text(["python", "-c", "print('hi from cli')"]) == "python -c \"print('hi from cli')\""
    assert entrypoint_text(["echo", "$HOME's"]) == "echo '$HOME'\"'\"'s'"
    assert entrypoint_text(["python train.py && echo done"]) == "python train.py && echo done"


def test_event_line() -> None:
    event = {
        "id": "evt_1",
        "at": "2026-01-01T12:00:00Z",
        "kind": "state_changed",
        "from_state": "PROVISIONING",
        "to_state": "FAILED",
        "reason": "quota exceeded",
        "code": "QuotaExceeded",
        "detail": None,
    }
    line = event_text(event).plain  # type: ignore[arg-type]
    assert line.endswith("state_changed   PROVISIONING → FAILED  quota exceeded [QuotaExceeded]")
    same = {**event, "kind": "job_finished", "from_state": "RUNNING", "to_state": "RUNNING", "code": None}
    assert event_text(same).plain.endswith("job_finished    RUNNING  quota exceeded")  # type: ignore[arg-type]
