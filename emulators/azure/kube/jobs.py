"""Ray jobs of the simulated head dashboards: records, packages and real subprocesses.

A *scope* is one Ray cluster's job table: the head pod's uid (a new head pod is a new Ray
cluster with an empty table, as without GCS fault tolerance), or the RayCluster's uid when
``gcsFaultToleranceOptions`` keeps the table across head restarts.

A job really runs: its entrypoint is ``/bin/sh -c <entrypoint>`` in a new session (its own
process group), with stdout and stderr in ``DATA_DIR/kube/ray/<scope>/jobs/<id>/driver.log``
and its working directory under that job's directory -- the extracted
``runtime_env.working_dir`` package (``gcs://<name>.zip`` uploaded with
``PUT /api/packages/gcs/<name>.zip``) or an empty directory. ``runtime_env.env_vars`` are set,
``py_modules`` packages are extracted and put on ``PYTHONPATH`` with the working dir, and the
emulator's own interpreter directory leads ``PATH`` (the cluster's Python). Other runtime_env
fields (pip, conda, container...) are accepted and ignored.

Statuses follow Ray 2.x: ``PENDING`` until the entrypoint resources (``entrypoint_num_cpus``,
``_gpus``, ``_memory``, ``_resources``) fit one alive node net of running jobs' reservations,
``RUNNING``, then ``SUCCEEDED``/``FAILED`` from the exit code, or ``STOPPED`` (SIGTERM to
the group, SIGKILL after ``job_stop_grace_seconds``). Records are documents ``kube.rayjob``;
a job that was ``PENDING``/``RUNNING`` when the emulator stopped is ``FAILED`` after restart
(its leftover process group is killed if it still carries the job's marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import string
import sys
import time
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emulators.azure.kube.config import KubeConfig
from emulators.azure.store import DocumentStore

_KIND = "kube.rayjob"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
MARKER_ENV = "RAYPLANE_EMULATOR_JOB"
_LOG_TAIL = 20_000
_ALLOWED = {
    *("entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus"),
    *("entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources", "entrypoint_label_selector"),
}
MESSAGES = {
    "PENDING": (
        "Job has not started yet. It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become "
        "available. It may be waiting for the runtime environment to be set up."
    ),
    "RUNNING": "Job is currently running.",
    "SUCCEEDED": "Job finished successfully.",
    "STOPPED": "Job was intentionally stopped.",
}


class JobError(Exception):
    """An HTTP error of the Jobs API (text body, as Ray's dashboard answers)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now_ms() -> int:
    return int(time.time() * 1000)


def _extract(package: Path, target: Path) -> None:
    """Unzip ``package`` into ``target``, refusing members that would land outside it."""
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with zipfile.ZipFile(package) as archive:
        for member in archive.infolist():
            dest = (target / member.filename).resolve()
            if not dest.is_relative_to(root):
                raise ValueError(f"package member {member.filename!r} escapes the working directory")
            archive.extract(member, target)


def bundle_of(job: Mapping[str, Any]) -> dict[str, float]:
    """The entrypoint's resource request in Ray's terms (what the driver reserves)."""
    out = {str(k): float(v) for k, v in (job.get("entrypoint_resources") or {}).items()}
    for field, key in (("entrypoint_num_cpus", "CPU"), ("entrypoint_num_gpus", "GPU"), ("entrypoint_memory", "memory")):
        if job.get(field):
            out[key] = float(job[field])
    return {k: v for k, v in out.items() if v > 0}


class JobManager:
    """Every scope's jobs; see the module docstring for the contract."""

    def __init__(self, store: DocumentStore, data_dir: Path, config: KubeConfig) -> None:
        self.store = store
        self.root = data_dir / "kube" / "ray"
        self.config = config
        self.jobs: dict[str, dict[str, dict[str, Any]]] = {}
        self._procs: dict[tuple[str, str], asyncio.subprocess.Process] = {}
        # Jobs whose start is under way: ``tick`` runs from the controller loop and after
        # writes, and starting awaits the subprocess, so two ticks could both see PENDING.
        self._starting: set[tuple[str, str]] = set()
        self._stopping: set[tuple[str, str]] = set()
        for key, doc in store.scan(_KIND):
            scope, sid = key.split("|", 1)
            if doc["status"] not in TERMINAL:
                self._kill_leftover(doc)
                doc.update(
                    status="FAILED",
                    end_time=_now_ms(),
                    error_type="JOB_SUPERVISOR_ACTOR_DIED",
                    message="Job supervisor actor died: the Ray head's dashboard restarted (emulator restart).",
                )
                store.put(_KIND, key, doc)
            self.jobs.setdefault(scope, {})[sid] = doc

    # -- files ---------------------------------------------------------------------------------
    def scope_dir(self, scope: str) -> Path:
        return self.root / hashlib.sha256(scope.encode()).hexdigest()[:16]

    def put_package(self, scope: str, name: str, data: bytes) -> None:
        path = self.scope_dir(scope) / "packages" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def has_package(self, scope: str, name: str) -> bool:
        return (self.scope_dir(scope) / "packages" / name).is_file()

    # -- API -------------------------------------------------------------------------------------
    def find(self, scope: str, job_id: str) -> dict[str, Any]:
        table = self.jobs.get(scope, {})
        job = table.get(job_id) or next((j for j in table.values() if j.get("job_id") == job_id), None)
        if job is None:
            raise JobError(404, f"Job {job_id} does not exist")
        return job

    def table(self, scope: str) -> list[dict[str, Any]]:
        return [public(j) for j in self.jobs.get(scope, {}).values()]

    def submit(self, scope: str, body: Any, owner: Mapping[str, str]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise JobError(400, "Request body must be a JSON object")
        unknown = sorted(set(body) - _ALLOWED)
        if unknown:
            raise JobError(400, f"JobSubmitRequest.__init__() got an unexpected keyword argument '{unknown[0]}'")
        entrypoint = body.get("entrypoint")
        if not isinstance(entrypoint, str) or not entrypoint:
            raise JobError(400, "entrypoint must be a non-empty string")
        for field in ("runtime_env", "metadata", "entrypoint_resources"):
            if body.get(field) is not None and not isinstance(body[field], dict):
                raise JobError(400, f"{field} must be a dict, got {type(body[field]).__name__}")
        for field in ("entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory"):
            value = body.get(field)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise JobError(400, f"{field} must be a non-negative number, got {value!r}")
        sid = body.get("submission_id") or body.get("job_id")
        if sid is None:
            sid = "raysubmit_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
        table = self.jobs.setdefault(scope, {})
        if sid in table:
            raise JobError(400, f"Job with submission_id {sid} already exists. Please use a different submission_id.")
        job: dict[str, Any] = {
            "type": "SUBMISSION",
            "job_id": None,
            "submission_id": str(sid),
            "driver_info": None,
            "status": "PENDING",
            "entrypoint": entrypoint,
            "message": MESSAGES["PENDING"],
            "error_type": None,
            "start_time": _now_ms(),
            "end_time": None,
            "metadata": {str(k): str(v) for k, v in (body.get("metadata") or {}).items()},
            "runtime_env": body.get("runtime_env") or {},
            "driver_agent_http_address": None,
            "driver_node_id": None,
            "driver_exit_code": None,
            "entrypoint_num_cpus": body.get("entrypoint_num_cpus"),
            "entrypoint_num_gpus": body.get("entrypoint_num_gpus"),
            "entrypoint_memory": body.get("entrypoint_memory"),
            "entrypoint_resources": body.get("entrypoint_resources"),
            "_scope": scope,
            "_owner": dict(owner),
            # Ray's job ids count up per Ray cluster (one past the highest still on record).
            "_serial": max((int(j.get("_serial", 0)) for j in table.values()), default=0) + 1,
        }
        table[job["submission_id"]] = job
        self._save(job)
        return job

    def logs(self, scope: str, job_id: str) -> str:
        job = self.find(scope, job_id)
        path = self._job_dir(job) / "driver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, scope: str, job_id: str) -> bool:
        job = self.find(scope, job_id)
        if job["status"] in TERMINAL:
            return False
        key = (scope, job["submission_id"])
        proc = self._procs.get(key)
        if proc is None:
            self._finish(job, "STOPPED", None)
            return True
        self._stopping.add(key)
        _signal(proc.pid, signal.SIGTERM)
        asyncio.get_running_loop().call_later(self.config.job_stop_grace_seconds, _signal, proc.pid, signal.SIGKILL)
        return True

    def delete(self, scope: str, job_id: str) -> bool:
        job = self.find(scope, job_id)
        if job["status"] not in TERMINAL:
            raise JobError(
                400, f"Attempted to delete job '{job_id}', but it is in a non-terminal state {job['status']}."
            )
        del self.jobs[scope][job["submission_id"]]
        self.store.delete(_KIND, f"{scope}|{job['submission_id']}")
        shutil.rmtree(self._job_dir(job), ignore_errors=True)
        return True

    # -- scheduling -----------------------------------------------------------------------------
    def pending_scopes(self) -> list[str]:
        return [s for s, table in self.jobs.items() if any(j["status"] == "PENDING" for j in table.values())]

    def owner(self, scope: str) -> dict[str, str] | None:
        job = next((j for j in self.jobs.get(scope, {}).values() if j["status"] == "PENDING"), None)
        return None if job is None else dict(job["_owner"])

    def pending_bundles(self, scope: str) -> list[dict[str, float]]:
        return [bundle_of(j) for j in self.jobs.get(scope, {}).values() if j["status"] == "PENDING"]

    def reservations(self, scope: str) -> dict[str, dict[str, float]]:
        """node id -> resources reserved by running jobs' entrypoints."""
        out: dict[str, dict[str, float]] = {}
        for job in self.jobs.get(scope, {}).values():
            if job["status"] == "RUNNING" and job.get("driver_node_id"):
                used = out.setdefault(job["driver_node_id"], {})
                for key, amount in bundle_of(job).items():
                    used[key] = used.get(key, 0.0) + amount
        return out

    async def tick(self, scope: str, nodes: Sequence[Mapping[str, Any]], head_ip: str) -> None:
        """Start the scope's pending jobs that fit an alive node now; time out stale ones.

        ``nodes`` are the dashboard's node rows (``node_id``, ``is_head_node``,
        ``resources_total``)."""
        reserved = self.reservations(scope)
        pending = [
            j
            for j in self.jobs.get(scope, {}).values()
            if j["status"] == "PENDING" and (scope, str(j["submission_id"])) not in self._starting
        ]
        for job in pending:
            bundle = bundle_of(job)
            node = _fit(bundle, nodes, reserved)
            if node is None:
                if _now_ms() - job["start_time"] > self.config.job_start_timeout_seconds * 1000:
                    message = (
                        f"Job supervisor actor failed to start within {self.config.job_start_timeout_seconds} seconds. "
                        "This timeout can be configured by setting the environment variable "
                        "RAY_JOB_START_TIMEOUT_SECONDS."
                    )
                    self._finish(job, "FAILED", None, message=message, error_type="JOB_SUPERVISOR_ACTOR_START_TIMEOUT")
                continue
            used = reserved.setdefault(str(node["node_id"]), {})
            for key, amount in bundle.items():
                used[key] = used.get(key, 0.0) + amount
            slot = (scope, str(job["submission_id"]))
            self._starting.add(slot)
            try:
                await self._start(job, node, head_ip)
            finally:
                self._starting.discard(slot)

    async def _start(self, job: dict[str, Any], node: Mapping[str, Any], head_ip: str) -> None:
        job_dir = self._job_dir(job)
        workdir = job_dir / "working_dir"
        runtime_env = job.get("runtime_env") or {}
        paths: list[str] = []
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
            working = runtime_env.get("working_dir")
            if working:
                _extract(self._package(job["_scope"], str(working)), workdir)
            else:
                workdir.mkdir(parents=True, exist_ok=True)
            paths.append(str(workdir))
            for i, module in enumerate(runtime_env.get("py_modules") or []):
                target = job_dir / f"py_modules_{i}"
                _extract(self._package(job["_scope"], str(module)), target)
                paths.append(str(target))
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            message = f"runtime_env setup failed: Failed to set up runtime environment.\n{exc}"
            self._finish(job, "FAILED", None, message=message, error_type="RUNTIME_ENV_SETUP_FAILED")
            return
        serial = int(job["_serial"])
        # Ray's JobID: a 4-byte little-endian counter, hex ("01000000" for the first job).
        job["job_id"] = serial.to_bytes(4, "little").hex()
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (runtime_env.get("env_vars") or {}).items()})
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["RAY_JOB_SUBMISSION_ID"] = job["submission_id"]
        marker = secrets.token_hex(8)
        env[MARKER_ENV] = marker
        # The child inherits the log descriptor; ours closes once the process is started.
        log = os.open(job_dir / "driver.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            try:
                proc = await asyncio.create_subprocess_exec(
                    "/bin/sh",
                    "-c",
                    job["entrypoint"],
                    cwd=workdir,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                self._finish(
                    job,
                    "FAILED",
                    None,
                    message=f"Failed to start the entrypoint: {exc}",
                    error_type="JOB_ENTRYPOINT_COMMAND_START_ERROR",
                )
                return
        finally:
            os.close(log)
        job.update(
            status="RUNNING",
            message=MESSAGES["RUNNING"],
            driver_node_id=node["node_id"],
            driver_agent_http_address=f"http://{head_ip}:52365",
            driver_info={
                "id": job["job_id"],
                "node_ip_address": str(node.get("node_ip", head_ip)),
                "pid": str(proc.pid),
            },
            _pid=proc.pid,
            _marker=marker,
        )
        self._save(job)
        key = (job["_scope"], job["submission_id"])
        self._procs[key] = proc
        asyncio.get_running_loop().create_task(self._wait(job, proc))

    async def _wait(self, job: dict[str, Any], proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        key = (job["_scope"], job["submission_id"])
        self._procs.pop(key, None)
        stopped = key in self._stopping
        self._stopping.discard(key)
        if job["status"] in TERMINAL:
            return
        if stopped:
            self._finish(job, "STOPPED", code)
        elif code == 0:
            self._finish(job, "SUCCEEDED", 0)
        else:
            tail = ""
            path = self._job_dir(job) / "driver.log"
            if path.exists():
                tail = path.read_text(errors="replace")[-_LOG_TAIL:]
            message = (
                f"Job entrypoint command failed with exit code {code}, "
                f"last available logs (truncated to 20,000 chars):\n{tail}"
            )
            self._finish(job, "FAILED", code, message=message, error_type="JOB_ENTRYPOINT_COMMAND_ERROR")

    def _finish(
        self,
        job: dict[str, Any],
        status: str,
        code: int | None,
        *,
        message: str | None = None,
        error_type: str | None = None,
    ) -> None:
        job.update(
            status=status, end_time=_now_ms(), driver_exit_code=code, message=message or MESSAGES.get(status, "")
        )
        if error_type:
            job["error_type"] = error_type
        self._save(job)

    # -- lifecycle ------------------------------------------------------------------------------
    def head_lost(self, scope: str, *, keep: bool) -> None:
        """The Ray head of ``scope`` died: its running drivers die with it. With ``keep``
        (GCS fault tolerance) the table survives with those jobs FAILED; else it is dropped."""
        for job in list(self.jobs.get(scope, {}).values()):
            key = (scope, job["submission_id"])
            proc = self._procs.pop(key, None)
            if proc is not None:
                _signal(proc.pid, signal.SIGKILL)
            if job["status"] not in TERMINAL:
                message = (
                    "Job supervisor actor died: The actor died unexpectedly before finishing this task "
                    "(the head pod is gone)."
                )
                self._finish(job, "FAILED", None, message=message, error_type="JOB_SUPERVISOR_ACTOR_DIED")
        if not keep:
            for sid in list(self.jobs.pop(scope, {})):
                self.store.delete(_KIND, f"{scope}|{sid}")
            shutil.rmtree(self.scope_dir(scope), ignore_errors=True)

    def scopes(self) -> list[str]:
        return list(self.jobs)

    def shutdown(self) -> None:
        """Kill every running job's process group (the emulator is stopping)."""
        for proc in list(self._procs.values()):
            _signal(proc.pid, signal.SIGKILL)
        self._procs.clear()

    # -- internals ------------------------------------------------------------------------------
    def _job_dir(self, job: Mapping[str, Any]) -> Path:
        return self.scope_dir(str(job["_scope"])) / "jobs" / str(job["submission_id"])

    def _package(self, scope: str, uri: str) -> Path:
        if not uri.startswith("gcs://"):
            raise ValueError(f"only gcs:// packages are served by this emulator, got {uri!r}")
        path = self.scope_dir(scope) / "packages" / uri[len("gcs://") :]
        if not path.is_file():
            raise ValueError(f"The package {uri} was not found in the GCS; upload it with PUT /api/packages/gcs/...")
        return path

    def _save(self, job: Mapping[str, Any]) -> None:
        self.store.put(_KIND, f"{job['_scope']}|{job['submission_id']}", dict(job))

    @staticmethod
    def _kill_leftover(doc: Mapping[str, Any]) -> None:
        pid, marker = doc.get("_pid"), doc.get("_marker")
        if not pid or not marker:
            return
        try:
            environ = Path(f"/proc/{int(pid)}/environ").read_bytes()
        except OSError:
            return
        if f"{MARKER_ENV}={marker}".encode() in environ.split(b"\0"):
            _signal(int(pid), signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _fit(
    bundle: Mapping[str, float], nodes: Sequence[Mapping[str, Any]], reserved: Mapping[str, Mapping[str, float]]
) -> Mapping[str, Any] | None:
    """The first alive node (head first) whose free resources hold ``bundle``."""
    for node in sorted(nodes, key=lambda n: not n.get("is_head_node")):
        if node.get("state") != "ALIVE":
            continue
        total = node.get("resources_total") or {}
        used = reserved.get(str(node["node_id"]), {})
        if all(float(total.get(k, 0.0)) - used.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items()):
            return node
    return None


def public(job: Mapping[str, Any]) -> dict[str, Any]:
    """The JobDetails fields Ray's API returns (internal ``_`` fields dropped)."""
    return {k: v for k, v in job.items() if not k.startswith("_")}
