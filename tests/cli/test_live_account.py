"""Billing, clouds and ``doctor`` through the CLI as a subprocess, against the session's live
stack (tests/cli/conftest.py), whose Azure is the emulator."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import Cli, Result, assert_clean_failure, explain
from tests.e2e.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def ok(result: Result) -> Result:
    assert result.returncode == 0, explain(result)
    assert "Traceback" not in result.stderr
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


# ---- billing -----------------------------------------------------------------------------
def test_usage_and_overview(cli: Cli) -> None:
    for by in ("day", "cluster", "dimension"):
        report = as_json(cli("usage", "--by", by, "-o", "json"))
        assert report["group_by"] == by
        assert {"vcpu_hours", "gpu_hours", "node_hours", "cost_usd"} <= set(report["totals"])
    table = ok(cli("usage"))
    assert "Total: " in table.stdout
    assert "vCPU-hours" in table.stdout
    assert "Rayplane fee by plan" in table.stdout  # the live stack's tenant has no plan
    bad = cli("usage", "--by", "week")
    assert_clean_failure(bad)
    assert bad.returncode == 2
    overview = as_json(cli("overview", "-o", "json"))
    assert {"clusters_total", "running_nodes", "spend", "recent_events"} <= set(overview)
    view = ok(cli("overview")).stdout
    for key in ("Clusters", "Nodes running", "Spend", "Budget"):
        assert key in view


def test_budget_get_set_and_delete(cli: Cli) -> None:
    missing = cli("budget", "get")
    assert_clean_failure(missing)
    assert missing.returncode == 3
    assert "no budget is set; set one with: rayplane budget set AMOUNT" in missing.stderr
    budget = as_json(cli("budget", "set", "100", "--hard-stop", "--alert", "75", "-o", "json"))
    assert (budget["amount_usd"], budget["hard_stop"], budget["alert_thresholds"]) == (100, True, [75])
    # what is left out stays as it was
    budget = as_json(cli("budget", "set", "150.5", "-o", "json"))
    assert (budget["amount_usd"], budget["hard_stop"], budget["alert_thresholds"]) == (150.5, True, [75])
    shown = ok(cli("budget", "get")).stdout
    assert "$150.50 a month" in shown
    assert "Hard stop" in shown
    assert as_json(cli("overview", "-o", "json"))["spend"]["budget_usd"] == 150.5
    ok(cli("budget", "delete", "--yes"))
    assert cli("budget", "get").returncode == 3


# ---- clouds ------------------------------------------------------------------------------
def _azure(*extra: str) -> list[str]:
    return [
        *("clouds", "add", "azure", "--subscription", str(uuid.uuid4()), "--region", "eastus2"),
        *("--tenant", str(uuid.uuid4()), *extra),
    ]


def test_clouds_add_azure_waits_for_ready_and_prints_the_consent_link(cli: Cli) -> None:
    result = cli(*_azure("--resource-group", "ML_Prod", "--wait", "-o", "json"))
    cloud = as_json(result)
    assert (cloud["name"], cloud["provider"], cloud["status"]) == ("azure-ml-prod", "azure", "READY")
    assert cloud["config"]["resource_group"] == "ML_Prod"
    assert "grants Rayplane access by opening this link:" in result.stderr
    assert cloud["admin_consent_url"] in result.stderr
    assert "cloud azure-ml-prod is READY" in result.stderr
    shown = ok(cli("clouds", "get", "azure-ml-prod")).stdout
    assert "Resource group" in shown
    assert "ML_Prod" in shown
    assert "azure-ml-prod" in [c["name"] for c in as_json(cli("clouds", "list", "-o", "json"))]
    ok(cli("clouds", "delete", "azure-ml-prod", "--yes"))


def test_clouds_add_azure_prints_azures_error_and_what_to_do(cli: Cli) -> None:
    argv = _azure("--resource-group", "rg-cli", "--aks-mode", "existing", "--aks-cluster", "nope")
    result = cli(*argv, "--name", "cli-broken", "--wait")
    assert_clean_failure(result)
    assert result.returncode == 1
    error = result.stderr.splitlines()[-1]
    expected = "error: cloud cli-broken cannot be used: ResourceNotFound: AKS cluster 'nope' was not found"
    assert error.startswith(expected), error
    assert error.endswith("When that is fixed: rayplane clouds validate cli-broken --wait")
    again = cli("clouds", "validate", "cli-broken", "--wait")
    assert again.returncode == 1
    assert again.stderr.splitlines()[-1] == error
    assert as_json(cli("clouds", "get", "cli-broken", "-o", "json"))["status"] == "ERROR"
    ok(cli("clouds", "delete", "cli-broken", "--yes"))
    gone = cli("clouds", "get", "cli-broken")
    assert_clean_failure(gone)
    assert gone.returncode == 3


def test_clouds_add_checks_its_input_in_words(cli: Cli) -> None:
    result = cli(*_azure("--resource-group", "rg", "--aks-mode", "existing"))
    assert_clean_failure(result)
    assert result.returncode == 2
    assert "--aks-mode existing needs --aks-cluster NAME" in result.stderr
    bad = cli(
        *("clouds", "add", "azure", "--subscription", "nope", "--resource-group", "rg", "--region", "East US"),
        *("--tenant", str(uuid.uuid4())),
    )
    assert bad.returncode == 2, explain(bad)
    fields = dict(line.strip().split(": ", 1) for line in bad.stderr.splitlines()[1:])
    assert fields["azure.subscription_id"].startswith("must be a GUID")
    assert fields["azure.region"] == "must be lower-case letters and digits only, like eastus2"


# ---- doctor ------------------------------------------------------------------------------
def test_doctor_says_all_is_well(cli: Cli, tmp_path: Path) -> None:
    result = cli("doctor", env={"HOME": str(tmp_path)})
    assert result.returncode == 0, explain(result)
    checks = [line.split()[:2] for line in result.stdout.splitlines()]
    assert {status for status, _ in checks} == {"ok"}
    assert ["ok", "api"] in checks
    assert "database ok, broker ok" in result.stdout


def test_doctor_names_each_problem_and_what_to_do(cli: Cli, stack: Stack, tmp_path: Path) -> None:
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x")
    env = {"HOME": str(tmp_path), "RAY_ADDRESS": "auto", "RAYPLANE_API_PORT": "1", "RAYPLANE_DEMO_AZURE": "1"}
    result = cli("doctor", "-o", "json", env=env)
    assert result.returncode == 1, explain(result)
    failed = {c["check"]: c for c in json.loads(result.stdout) if not c["ok"]}
    assert set(failed) == {"port", "ray token file", "ray environment", "azure emulator"}
    assert all(c["fix"] for c in failed.values())
    assert f"uses port {stack.port}" in failed["port"]["detail"]
    assert f"rm {tmp_path}/.ray/auth_token" in failed["ray token file"]["fix"]
    assert failed["ray environment"]["fix"] == "unset them unless you mean to change Ray's behaviour: unset RAY_ADDRESS"
    assert "RAYPLANE_DEMO_AZURE=1 make run" in failed["azure emulator"]["fix"]


def test_doctor_without_an_api(tmp_path: Path) -> None:
    result = Cli(tmp_path)("--api-url", "http://127.0.0.1:9", "--api-key", "rpk_x", "doctor", timeout=60)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    api = next(i for i, line in enumerate(lines) if line.split()[:2] == ["FAIL", "api"])
    assert "cannot reach the API at http://127.0.0.1:9" in lines[api]
    assert "start the control plane (`make run`, or `rayplane dev`)" in lines[api + 1]


def test_doctor_names_a_program_holding_the_api_port(tmp_path: Path) -> None:
    # Something that is not Rayplane listens where the CLI looks for the API: `make run` could
    # not start there, and doctor says so with a free port to use instead.
    class NotRayplane(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotRayplane)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = Cli(tmp_path)("--api-url", f"http://127.0.0.1:{port}", "--api-key", "rpk_x", "doctor", "-o", "json")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1, explain(result)
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert not checks["api"]["ok"]
    held = checks["free port"]
    assert not held["ok"]
    assert f"another program listens on port {port}" in held["detail"]
    suggested = re.search(r"RAYPLANE_API_PORT=(\d+) make run", held["fix"])
    assert suggested, held["fix"]
    assert int(suggested.group(1)) != port


def test_doctor_without_an_api_says_the_port_is_free(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = Cli(tmp_path)("--api-url", f"http://127.0.0.1:{port}", "--api-key", "rpk_x", "doctor", "-o", "json")
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["free port"]["ok"], result.stdout
    assert f"nothing listens on port {port}" in checks["free port"]["detail"]
