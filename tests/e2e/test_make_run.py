"""The README's first command, as a newcomer runs it: ``make run`` in a fresh copy of the repo.

It creates its own .venv, starts embedded Postgres and Redis, migrates, bootstraps the dev
tenant and key, and runs the API, a worker and beat. Ctrl-C (SIGINT to the foreground
process group) must stop every process it started; a second start keeps the data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from rayplane.identity.bootstrap import read_env_file

ROOT = Path(__file__).resolve().parents[2]
# Whole-system tests: minutes each on a 2-core machine, more when it is busy.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def fresh_copy(dest: Path) -> None:
    """What a clone of this tree holds: tracked files plus new, unignored ones."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: object, timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"make run exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def descendants(pid: int) -> list[psutil.Process]:
    try:
        children: list[psutil.Process] = psutil.Process(pid).children(recursive=True)
        return children
    except psutil.NoSuchProcess:
        return []


def postmaster_pid(workdir: Path) -> int:
    return int((workdir / ".rayplane" / "postgres" / "postmaster.pid").read_text().splitlines()[0])


def gone(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def start(workdir: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            ["make", "run"], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def ctrl_c(proc: subprocess.Popen[bytes], workdir: Path) -> None:
    """Press Ctrl-C, then check that nothing started by this run is left."""
    started = [p.pid for p in descendants(proc.pid)] + [postmaster_pid(workdir)]
    assert len(started) >= 5  # make, rayplane dev, uvicorn, celery worker (+pool), beat, redis, postgres
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=90)
    deadline = time.monotonic() + 30
    while gone(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone(started) == [], "processes outlived the supervisor"


def test_make_run_in_a_fresh_clone_survives_a_restart(tmp_path: Path) -> None:
    workdir = tmp_path / "rayplane"
    fresh_copy(workdir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAYPLANE_") and k not in ("VIRTUAL_ENV", "MAKEFLAGS")
    }
    env["RAYPLANE_API_PORT"] = str(port)
    log = tmp_path / "make-run.log"

    first = start(workdir, env, log)
    try:
        wait_until(lambda: ready(url), 900, "/readyz", first, log)
        dev_env = workdir / ".rayplane" / "dev.env"
        assert oct(dev_env.stat().st_mode & 0o777) == "0o600"
        values = read_env_file(dev_env)
        assert values["RAYPLANE_API_URL"] == url
        key = values["RAYPLANE_API_KEY"]
        wait_until(lambda: key in log.read_text(), 30, "the banner with the key", first, log)
        logs = workdir / ".rayplane" / "logs"
        assert f"Logs      {logs}/" in log.read_text()
        for service in ("supervisor", "postgres", "redis", "api", "worker", "beat"):
            assert (logs / f"{service}.log").is_file(), service
        r = httpx.get(url + "/v1/tenant", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 200
        assert r.json()["name"] == "dev"
        created = httpx.post(
            url + "/v1/api-keys", headers={"Authorization": f"Bearer {key}"}, json={"name": "kept"}, timeout=10
        )
        assert created.status_code == 201
        ctrl_c(first, workdir)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)

    log_after_first = log.read_text()
    second = start(workdir, env, log)
    try:
        wait_until(lambda: ready(url), 300, "/readyz after restart", second, log)
        r = httpx.get(url + "/v1/tenant", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 200
        names = [
            k["name"]
            for k in httpx.get(url + "/v1/api-keys", headers={"Authorization": f"Bearer {key}"}).json()["items"]
        ]
        assert "kept" in names
        assert read_env_file(workdir / ".rayplane" / "dev.env")["RAYPLANE_API_KEY"] == key
        # the key is printed once, on the first start only; where it is, on every start
        wait_until(lambda: "Press Ctrl-C" in log.read_text()[len(log_after_first) :], 60, "the banner", second, log)
        assert key not in log.read_text()[len(log_after_first) :]
        assert f"API key   in {workdir / '.rayplane' / 'dev.env'}" in log.read_text()[len(log_after_first) :]
        ctrl_c(second, workdir)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    # The terminal had the banner and readable lines, never the services' JSON; and neither it
    # nor the files have the warnings the embedded Postgres wheel (platformdirs, on no
    # XDG_RUNTIME_DIR) and Celery (run as root) give when nothing prevents them.
    assert not [line for line in log.read_text().splitlines() if line.startswith("{")], log.read_text()[-3000:]
    for text in [log.read_text()] + [f.read_text() for f in (workdir / ".rayplane" / "logs").glob("*.log")]:
        assert "XDG_RUNTIME_DIR" not in text
        assert "superuser privileges" not in text
