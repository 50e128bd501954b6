"""The CLI as a user runs it (``python -m cli`` subprocesses) against the whole control
plane on the local provider: real API, Celery worker and beat, Postgres, Redis and Ray.

One cluster (1-CPU head, 1-2 one-CPU workers) carries the cluster and job tests in file order;
the session's stack (tests/cli/conftest.py) deletes every cluster and waits for it before it stops.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulators.azure.server import EmulatorProcess
from tests.cli.support import Cli, Result, assert_clean_failure, explain
from tests.e2e.stack import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

AUDIENCE = "api://rayplane-cli-test"
NAME = f"cli-{uuid.uuid4().hex[:6]}"
SHAPE = ["--head", "Standard_D2s_v5", "--workers", "cpu=Standard_D2s_v5:1-2"]


def ok(result: Result) -> Result:
    assert result.returncode == 0, explain(result)
    assert "Traceback" not in result.stderr
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


# ---- login -------------------------------------------------------------------------------
def test_login_with_api_key_writes_a_private_profile(stack: Stack, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    refused = cli("login", "--api-url", stack.url, stdin="rpk_aaaaaaaaaaaa_" + "b" * 40 + "\n", timeout=60)
    assert_clean_failure(refused)
    assert refused.returncode == 2
    assert "refused the credential" in refused.stderr
    assert not cli.config.exists()

    key = stack.headers["Authorization"].removeprefix("Bearer ")
    ok(cli("login", "--api-url", stack.url, stdin=key + "\n", timeout=60))
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    saved = yaml.safe_load(cli.config.read_text())
    assert saved["profiles"]["default"] == {"api_url": stack.url, "api_key": key}
    assert as_json(cli("tenant", "get", "-o", "json"))["name"] == "dev"

    ok(cli("login", "--api-url", stack.url, "--api-key", key, "--profile", "second"))
    assert yaml.safe_load(cli.config.read_text())["current_profile"] == "second"
    ok(cli("logout", "--profile", "second"))
    logged_out = cli("--profile", "second", "clusters", "list")
    assert_clean_failure(logged_out)
    assert logged_out.returncode == 2


def test_device_code_login_with_entra(stack: Stack, emulator: EmulatorProcess, tmp_path: Path) -> None:
    tid, oid = str(uuid.uuid4()), str(uuid.uuid4())
    assert stack.request("PATCH", "/v1/tenant", json={"entra_tenant_id": tid}).status_code == 200
    member = stack.request("POST", "/v1/members", json={"oid": oid, "role": "member", "email": "ada@example.com"})
    assert member.status_code == 201, member.text
    admin = httpx.Client(base_url=emulator.origin + "/_emulator/entra", verify=emulator.ssl_context() or True)
    interval = admin.get("/config").json()["device_code_interval"]
    admin.post("/config", json={"device_code_interval": 1})
    cli = Cli(tmp_path, {"REQUESTS_CA_BUNDLE": str(emulator.ca_path)})
    argv = cli.argv(
        *("login", "--device-code", "--api-url", stack.url, "--authority", f"{emulator.origin}/{tid}"),
        *("--client-id", str(uuid.uuid4()), "--scope", f"{AUDIENCE}/.default"),
    )
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=cli.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        seen = ""
        while not (code := re.search(r"enter the code (\w+)", seen)) and proc.poll() is None:
            seen += proc.stderr.readline()
        assert code, seen
        approved = admin.post("/devicecode/approve", json={"user_code": code[1], "claims": {"tid": tid, "oid": oid}})
        assert approved.status_code == 200
        out, err = proc.communicate(timeout=120)
    finally:
        admin.post("/config", json={"device_code_interval": interval})
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Logged in to tenant 'dev'" in out
    profile = yaml.safe_load(cli.config.read_text())["profiles"]["default"]
    assert profile["auth"] == "entra"
    assert "api_key" not in profile
    assert stat.S_IMODE((cli.config.parent / "msal-cache.json").stat().st_mode) == 0o600
    # a later command gets its token from the MSAL cache, silently
    assert "ada@example.com" in [m["email"] for m in as_json(cli("members", "list", "-o", "json"))]


# ---- clusters ----------------------------------------------------------------------------
def test_bad_spec_names_the_field_on_one_line(cli: Cli) -> None:
    result = cli(
        "clusters", "create", "--name", "bad", "--head", "Standard_D2s_v5", "--workers", "cpu=Standard_Nope_v9:1-2"
    )
    assert_clean_failure(result)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: Invalid input"
    assert lines[1].startswith("  worker_groups[0].vm_size: unknown VM size 'Standard_Nope_v9'")
    assert len(lines) == 2
    assert as_json(cli("clusters", "list", "-o", "json")) == []


def test_a_spec_file_is_answered_with_its_yaml_paths_and_rules_in_words(cli: Cli) -> None:
    (cli.home / "spec.yaml").write_text(
        "name: Bad_Name\nhead: {vm_size: Standard_D2s_v5}\n"
        "worker_groups:\n  - {name: cpu, vm_size: Standard_D2s_v5, min_nodes: 0, max_nodes: 5000}\n"
    )
    result = cli("clusters", "create", "-f", "spec.yaml")
    assert_clean_failure(result)
    assert result.returncode == 2
    fields = dict(line.strip().split(": ", 1) for line in result.stderr.splitlines()[1:])
    assert (
        fields["name"]
        == "must be lower-case letters, digits and '-', starting with a letter, ending with a letter or digit"
    )
    assert "worker_groups[0].max_nodes" in fields
    assert "body." not in result.stderr
    assert "[a-z]" not in result.stderr


def test_estimate_prices_a_spec_and_creates_nothing(cli: Cli) -> None:
    shape = ["--name", "priced", "--head", "Standard_D2s_v5", "--workers", "cpu=Standard_D8s_v5:0-4"]
    estimate = as_json(cli("clusters", "create", *shape, "--estimate", "-o", "json"))
    assert [(x["group"], x["vm_size"], x["min_nodes"], x["max_nodes"]) for x in estimate["lines"]] == [
        ("head", "Standard_D2s_v5", 1, 1),
        ("cpu", "Standard_D8s_v5", 0, 4),
    ]
    assert estimate["complete"] is True  # both sizes have a catalog price
    # The live stack's tenant has no Marketplace plan: every plan's fee, per dimension.
    assert {(f["plan_id"], f["dimension"]) for f in estimate["fees"]} >= {("starter", "vcpu_hours")}
    table = ok(cli("clusters", "create", *shape, "--estimate"))
    assert table.stdout.splitlines()[0].split()[:3] == ["GROUP", "VM", "SIZE"]
    assert "Total: " in table.stdout
    assert "Rayplane fee by plan" in table.stdout
    assert "per vCPU hour" in table.stdout
    assert "Nothing was created" in table.stderr
    assert as_json(cli("clusters", "list", "-o", "json")) == []


@pytest.fixture(scope="module")
def created(cli: Cli) -> tuple[Result, dict[str, Any]]:
    started = time.monotonic()
    result = cli(
        "clusters",
        "create",
        "--name",
        NAME,
        *SHAPE,
        "--label",
        "suite=cli",
        "--wait",
        "--timeout",
        "420",
        "-o",
        "json",
        timeout=480,
    )
    print(f"clusters create --wait took {time.monotonic() - started:.0f}s")
    return result, as_json(result)


def test_create_with_wait_reaches_running(created: tuple[Result, dict[str, Any]]) -> None:
    result, cluster = created
    assert cluster["state"] == "RUNNING"
    assert cluster["name"] == NAME
    assert cluster["dashboard_url"].startswith("http://127.0.0.1:")
    assert f"Creating cluster {NAME}" in result.stderr
    assert "PENDING → PROVISIONING" in result.stderr
    assert "PROVISIONING → RUNNING" in result.stderr
    assert result.stderr.rstrip().endswith(f"{NAME} is RUNNING")


def test_list_get_and_dashboard_by_name_or_id(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    cid = created[1]["id"]
    listed = as_json(cli("clusters", "list", "--label", "suite=cli", "--state", "RUNNING", "-o", "json"))
    assert [c["id"] for c in listed] == [cid]
    assert as_json(cli("-o", "json", "clusters", "get", NAME))["id"] == cid
    assert yaml.safe_load(ok(cli("clusters", "get", cid, "-o", "yaml")).stdout)["name"] == NAME
    table = ok(cli("clusters", "list")).stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "STATE", "HEAD"]
    assert table[1].split()[:2] == [NAME, "RUNNING"]
    url, token_line = ok(cli("clusters", "dashboard", NAME)).stdout.strip().splitlines()
    assert url == created[1]["dashboard_url"]
    token = ok(cli("clusters", "dashboard", NAME, "--token")).stdout.strip()
    assert token_line == f"Ray token: {token}"
    # The cluster runs with Ray's token authentication, and the token the CLI got opens it.
    assert httpx.get(url + "/api/v0/nodes", timeout=30).status_code == 401
    assert httpx.get(url + "/api/v0/nodes", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
    missing = cli("clusters", "get", "no-such-cluster")
    assert_clean_failure(missing)
    assert missing.returncode == 3


def test_job_follow_prints_output_and_exits_zero(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    result = ok(cli("jobs", "submit", "--cluster", NAME, "--follow", "--", "python", "-c", "print('hi from cli')"))
    assert "hi from cli" in result.stdout.splitlines()
    assert re.search(r"job job_\w+ SUCCEEDED", result.stderr), result.stderr


def test_failing_job_exits_non_zero(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    result = cli("jobs", "submit", "-c", NAME, "--follow", "--", "python", "-c", "import sys; sys.exit(3)")
    assert result.returncode == 1, explain(result)
    assert "Traceback" not in result.stderr
    assert re.search(r"job job_\w+ FAILED \(exit code 3\)", result.stderr), result.stderr


def test_working_dir_is_uploaded(cli: Cli, created: tuple[Result, dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "greet.py").write_text("def greet(who):\n    return f'hello {who}'\n")
    (tmp_path / "train.py").write_text(
        "import os\nfrom lib.greet import greet\nprint(greet(os.environ['WHO']), sorted(os.listdir('.')))\n"
    )
    for skipped in (".git", "__pycache__", ".venv"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "junk").write_text("x")
    result = ok(
        cli(
            *("jobs", "submit", "--cluster", created[1]["id"], "--working-dir", str(tmp_path)),
            *("--env", "WHO=rayplane", "--follow", "--", "python", "train.py"),
        )
    )
    assert "hello rayplane ['lib', 'train.py']" in result.stdout


def test_jobs_list_get_and_logs(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    jobs = as_json(cli("jobs", "list", "--cluster", NAME, "-o", "json"))
    assert [j["status"] for j in jobs] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    first = jobs[0]["id"]
    assert "hi from cli" in ok(cli("jobs", "logs", "--cluster", NAME, first)).stdout
    assert as_json(cli("jobs", "get", "-c", NAME, first, "-o", "json"))["driver_exit_code"] == 0
    assert ok(cli("jobs", "list", "-c", NAME)).stdout.splitlines()[0].split()[:2] == ["ID", "STATUS"]


def test_follow_with_a_timeout_exits_5_at_the_deadline(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    started = time.monotonic()
    result = cli(*("jobs", "submit", "-c", NAME, "--follow", "--timeout", "3"), *("--", "sleep", "120"))
    elapsed = time.monotonic() - started
    assert result.returncode == 5, explain(result)
    assert "timed out after 3s following job" in result.stderr
    assert elapsed < 20, f"took {elapsed:.0f}s"  # the CLI's start and the submit, plus the 3 s
    job = re.search(r"Submitted (job_\w+)", result.stderr)
    assert job, result.stderr
    stopped = as_json(cli("jobs", "stop", "-c", NAME, job[1], "--wait", "-o", "json"))
    assert stopped["status"] == "STOPPED"


def test_scale_updates_one_group_with_if_match(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    result = cli(
        "clusters", "scale", NAME, "cpu", "--min", "0", "--max", "1", "--wait", "--timeout", "300", "-o", "json"
    )
    cluster = as_json(result)
    group = cluster["spec"]["worker_groups"][0]
    assert (group["name"], group["min_nodes"], group["max_nodes"]) == ("cpu", 0, 1)
    assert group["vm_size"] == "Standard_D2s_v5"
    assert cluster["state"] == "RUNNING"
    assert cluster["observed_generation"] >= 2
    assert "RUNNING → UPDATING" in result.stderr
    assert "PENDING → PROVISIONING" not in result.stderr  # only events after the change
    unknown = cli("clusters", "scale", NAME, "gpu", "--max", "2")
    assert_clean_failure(unknown)
    assert unknown.returncode == 3


def test_events_as_json(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    events = as_json(cli("clusters", "events", NAME, "-o", "json"))
    kinds = [(e["kind"], e["to_state"]) for e in events]
    assert kinds[0] == ("created", "PENDING")
    assert ("state_changed", "RUNNING") in kinds
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_a_closed_pipe_ends_the_listing_quietly(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `rayplane clusters list | head -1`, after head has exited
    try:
        proc = subprocess.run(
            cli.argv("clusters", "list"),
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=cli.environ(),
            cwd=cli.home,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 1


def test_ctrl_c_during_wait_says_the_stop_goes_on_and_a_second_stop_says_already(
    cli: Cli, created: tuple[Result, dict[str, Any]]
) -> None:
    proc = subprocess.Popen(
        cli.argv("clusters", "stop", NAME, "--wait"),
        cwd=cli.home,
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith(f"Stop requested for {NAME}"), first
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"error: stopped waiting; the stop of {NAME} goes on. Follow it with: rayplane clusters wait {NAME}"
        f" --state STOPPED (or look: rayplane clusters get {NAME})"
    )
    ok(cli("clusters", "wait", NAME, "--state", "STOPPED", "--timeout", "300"))
    again = [ok(cli("clusters", "stop", NAME)) for _ in range(2)]
    assert again[0].stderr.splitlines()[0] == f"cluster {NAME!r} ({created[1]['id']}) is already stopped"
    assert again[0].stderr == again[1].stderr


def test_doctor_reports_a_cluster_busy_too_long(cli: Cli, stack: Stack, created: tuple[Result, dict[str, Any]]) -> None:
    cid = created[1]["id"]
    ok(cli("clusters", "start", NAME))
    wait_for(lambda: stack.cluster(cid)["state"] == "STARTING", 60, "the cluster to be STARTING", interval=0.1)
    doctor = cli("doctor", "--stuck-minutes", "0")
    assert doctor.returncode == 1, explain(doctor)
    found = re.search(rf"FAIL\s+clusters\s+busy longer than 0 min: {NAME} STARTING for \d+s", doctor.stdout)
    assert found, doctor.stdout
    assert "see why with `rayplane clusters events NAME`" in doctor.stdout
    ok(cli("clusters", "wait", NAME, "--state", "RUNNING", "--timeout", "300"))


def test_delete_with_yes_and_wait(cli: Cli, created: tuple[Result, dict[str, Any]]) -> None:
    refused = cli("clusters", "delete", NAME)  # no terminal to confirm on, no --yes
    assert_clean_failure(refused)
    assert refused.returncode == 2
    result = cli("clusters", "delete", NAME, "--yes", "--wait", "--timeout", "300", "-o", "json")
    deleted = as_json(result)
    assert deleted["state"] == "DELETED"
    assert "DELETING → DELETED" in result.stderr
    assert "UPDATING" not in result.stderr  # nothing is updated on the way to DELETED
    assert as_json(cli("clusters", "list", "-o", "json")) == []
    assert as_json(cli("clusters", "get", NAME, "-o", "json"))["state"] == "DELETED"
    assert "Generation" not in ok(cli("clusters", "get", NAME)).stdout
    # jobs and their logs outlive the cluster
    assert len(as_json(cli("jobs", "list", "-c", NAME, "-o", "json"))) == 4
    # deleting again answers the same way each time, naming what was typed
    twice = [ok(cli("clusters", "delete", NAME, "--yes")) for _ in range(2)]
    assert twice[0].stderr.splitlines()[0] == f"cluster {NAME!r} ({deleted['id']}) is already deleted"
    assert twice[0].stderr == twice[1].stderr
    by_id = ok(cli("clusters", "delete", deleted["id"], "--yes"))
    assert by_id.stderr.splitlines()[0] == f"cluster {deleted['id']!r} is already deleted"
