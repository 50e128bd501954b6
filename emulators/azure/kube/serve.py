"""Ray Serve of the simulated head dashboards: ``PUT``/``GET /api/serve/applications/``.

Modelled on Ray 2.x's Serve REST API (``ServeDeploySchema`` in, ``ServeInstanceDetails``
out). A Serve instance belongs to a *scope* (:func:`emulators.azure.kube.dashboard.scope_of`):
the head pod without GCS fault tolerance (a new head starts with no applications, as a real
head that lost its GCS does), the RayCluster with it (the applications survive the head).

``PUT`` takes ``{applications: [{name, import_path, route_prefix, runtime_env, deployments}],
target_capacity?, http_options?, proxy_location?}`` and answers 200 with an empty body.
Each application of the config goes ``DEPLOYING`` (its deployments ``UPDATING``) and then,
after ``serve_deploy_seconds``, ``RUNNING`` (deployments ``HEALTHY``), unless the module of
its ``import_path`` cannot be found -- looked up without importing anything, on the
emulator's Python path plus the ``runtime_env.working_dir``: a local directory (the emulator's
nodes share its disk), or an ``http(s)://`` zip fetched and unpacked as a node does
(``kube/packages.py``; a download that fails is Ray's ``RuntimeEnvSetupError``); any other
remote ``working_dir`` is taken to hold the module -- in which case it goes
``DEPLOY_FAILED`` with the traceback Ray writes, ending ``ModuleNotFoundError: No module named
'x'``. An application dropped from the config is ``DELETING`` until the delay passes, then
gone. An application whose config did not change keeps its state.

When the head of a GCS-fault-tolerant scope changes (the head pod was replaced), the Serve
controller recovers its applications from the GCS: they go ``DEPLOYING`` again and then
``RUNNING``.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from emulators.azure.kube.packages import FetchError, unpacked

Obj = dict[str, Any]
_TRACEBACK = (
    "Deploying app '{app}' failed with exception:\n"
    "Traceback (most recent call last):\n"
    '  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/serve/_private/application_state.py", '
    "line 1218, in build_serve_application\n"
    "    app = call_user_app_builder_with_args_if_necessary(import_attr(import_path), args)\n"
    '  File "/home/ray/anaconda3/lib/python3.11/site-packages/ray/_private/utils.py", line 1175, in import_attr\n'
    "    module = importlib.import_module(module_name)\n"
    '  File "/home/ray/anaconda3/lib/python3.11/importlib/__init__.py", line 126, in import_module\n'
    "    return _bootstrap._gcd_import(name[level:], package, level)\n"
    "ModuleNotFoundError: No module named '{module}'\n"
)


class ServeError(Exception):
    """A refused ``PUT``: Ray answers 400 with a text body."""


def module_missing(import_path: str, runtime_env: Obj | None) -> str | None:
    """The first missing (dotted) module of ``import_path``'s module part, or None if found.
    Nothing is imported: packages are walked with the path finder."""
    text = import_path.strip()
    module = text.split(":", 1)[0] if ":" in text else text.rsplit(".", 1)[0]
    if not module:
        return text
    working_dir = str((runtime_env or {}).get("working_dir") or "")
    if working_dir.startswith(("http://", "https://")):
        local = str(unpacked(working_dir))  # FetchError: the caller reports it
    elif "://" in working_dir and not working_dir.startswith("file://"):
        return None  # a remote package out of reach: taken to hold the module
    else:
        local = working_dir.removeprefix("file://")
    search = ([local] if local and os.path.isdir(local) else []) + list(sys.path)
    parts = module.split(".")
    spec = importlib.machinery.PathFinder.find_spec(parts[0], search)
    if spec is None:
        try:
            spec = importlib.util.find_spec(parts[0])
        except (ImportError, ValueError):
            spec = None
    if spec is None:
        return parts[0]
    for i in range(1, len(parts)):
        locations = list(spec.submodule_search_locations or [])
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), locations) if locations else None
        if spec is None:
            return ".".join(parts[: i + 1])
    return None


@dataclass
class App:
    name: str
    config: Obj
    status: str
    due: float
    failure: str = ""
    deployed_at: float = field(default_factory=time.time)

    @property
    def deployments(self) -> list[str]:
        names = [str(d.get("name")) for d in self.config.get("deployments") or [] if d.get("name")]
        if names:
            return names
        path = str(self.config.get("import_path") or "app")
        return [path.replace(":", ".").rsplit(".", 1)[-1] or "app"]


@dataclass
class Instance:
    apps: dict[str, App] = field(default_factory=dict)
    head: str = ""
    target_capacity: float | None = None
    http_options: Obj = field(default_factory=dict)
    proxy_location: str = "EveryNode"
    deployed: bool = False


class ServeManager:
    """Serve instances of every simulated Ray cluster, by scope."""

    def __init__(self, delay: Any) -> None:
        self.delay = delay  # () -> seconds from DEPLOYING to RUNNING
        self.instances: dict[str, Instance] = {}

    def _instance(self, scope: str, head_uid: str, now: float) -> Instance:
        inst = self.instances.setdefault(scope, Instance(head=head_uid))
        if inst.head != head_uid:
            # A new head of a fault-tolerant scope: the Serve controller recovers the apps.
            inst.head = head_uid
            for app in inst.apps.values():
                if app.status != "DELETING":
                    app.status, app.due = "DEPLOYING", now + float(self.delay())
        self._advance(inst, now)
        return inst

    def _advance(self, inst: Instance, now: float) -> None:
        for name, app in list(inst.apps.items()):
            if app.due > now:
                continue
            if app.status == "DELETING":
                del inst.apps[name]
            elif app.status == "DEPLOYING":
                app.status = "DEPLOY_FAILED" if app.failure else "RUNNING"

    def put(self, scope: str, head_uid: str, body: Any, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if not isinstance(body, dict) or not isinstance(body.get("applications", []), list):
            raise ServeError("Invalid Serve config: 'applications' must be a list of applications.")
        inst = self._instance(scope, head_uid, now)
        inst.deployed = True
        seen: set[str] = set()
        for raw in body.get("applications") or []:
            if not isinstance(raw, dict) or not raw.get("import_path"):
                raise ServeError("Invalid Serve config: every application needs an 'import_path'.")
            name = str(raw.get("name") or "default")
            if name in seen:
                raise ServeError(f"Found multiple configs for application {name}.")
            seen.add(name)
        target = body.get("target_capacity")
        inst.target_capacity = None if target is None else float(target)
        inst.http_options = dict(body.get("http_options") or {})
        inst.proxy_location = str(body.get("proxy_location") or "EveryNode")
        for raw in body.get("applications") or []:
            name = str(raw.get("name") or "default")
            old = inst.apps.get(name)
            if old is not None and old.config == raw and old.status != "DELETING":
                continue
            try:
                missing = module_missing(str(raw["import_path"]), raw.get("runtime_env"))
                failure = _TRACEBACK.format(app=name, module=missing) if missing else ""
            except FetchError as exc:
                failure = f"Deploying app '{name}' failed with exception:\nRuntimeEnvSetupError: {exc}\n"
            inst.apps[name] = App(name, raw, "DEPLOYING", now + float(self.delay()), failure)
        for name, app in inst.apps.items():
            if name not in seen and app.status != "DELETING":
                app.status, app.due = "DELETING", now + float(self.delay())

    def statuses(self, scope: str, head_uid: str, now: float | None = None) -> dict[str, Obj]:
        """``{app: {status, message, deployments: {name: {status, message}}}}`` (KubeRay's view)."""
        now = time.time() if now is None else now
        inst = self._instance(scope, head_uid, now)
        return {name: _app_status(app) for name, app in inst.apps.items()}

    def proxy_healthy(self, scope: str, head_uid: str) -> bool:
        """Whether the head's Serve proxy answers ``/-/healthz``: Serve was started there."""
        inst = self.instances.get(scope)
        return inst is not None and inst.deployed and inst.head == head_uid

    def forget(self, scope: str) -> None:
        self.instances.pop(scope, None)

    def details(self, scope: str, head: Obj, nodes: list[Obj], now: float | None = None) -> Obj:
        """``ServeInstanceDetails`` as ``GET /api/serve/applications/`` answers it."""
        now = time.time() if now is None else now
        inst = self._instance(scope, str(head["metadata"]["uid"]), now)
        head_row = next((n for n in nodes if n.get("is_head_node")), nodes[0] if nodes else {})
        alive = [n for n in nodes if n.get("state") == "ALIVE"]
        port = int(inst.http_options.get("port") or 8000)
        any_host = "0.0.0.0"  # noqa: S104 (the value Ray reports, nothing binds)
        http = {"host": any_host, "port": port, "root_path": "", "request_timeout_s": None, "keep_alive_timeout_s": 5}
        http.update({k: v for k, v in inst.http_options.items() if k in http})
        out: Obj = {
            "controller_info": _actor(head_row, "SERVE_CONTROLLER_ACTOR", "controller"),
            "proxy_location": inst.proxy_location,
            "http_options": http,
            "grpc_options": {"port": 9000, "grpc_servicer_functions": [], "request_timeout_s": None},
            "proxies": {},
            "deploy_mode": "MULTI_APP",
            "applications": {},
            "target_capacity": inst.target_capacity,
            "target_groups": [],
        }
        if not inst.deployed:
            out["controller_info"] = {}
            return out
        for node in alive:
            proxy = _actor(node, f"SERVE_PROXY_ACTOR-{node.get('node_id', '')}", "proxy")
            out["proxies"][node.get("node_id", "")] = {**proxy, "status": "HEALTHY"}
        prefixes = [a.config.get("route_prefix", f"/{a.name}") for a in inst.apps.values()]
        if prefixes:
            out["target_groups"] = [
                {
                    "targets": [{"ip": n.get("node_ip"), "port": port, "instance_id": "", "name": ""} for n in alive],
                    "route_prefix": "/",
                    "protocol": "HTTP",
                    "app_name": "",
                }
            ]
        for name, app in inst.apps.items():
            out["applications"][name] = _app_details(app, head_row)
        return out


def _actor(node: Obj, name: str, salt: str) -> Obj:
    node_id = str(node.get("node_id", ""))
    digest = hashlib.sha256(f"{node_id}:{salt}".encode()).hexdigest()
    return {
        "node_id": node_id,
        "node_ip": node.get("node_ip", ""),
        "node_instance_id": "",
        "actor_id": digest[:32],
        "actor_name": name,
        "worker_id": hashlib.sha224(digest.encode()).hexdigest()[:56],
        "log_file_path": f"/serve/{salt}_{node.get('node_ip', '')}.log",
    }


def _deployment_state(app: App) -> tuple[str, str, str]:
    """(status, status_trigger, message) of each deployment of ``app``."""
    if app.status == "RUNNING":
        return "HEALTHY", "CONFIG_UPDATE_COMPLETED", ""
    if app.status == "DELETING":
        return "HEALTHY", "DELETING", ""
    if app.status == "DEPLOY_FAILED":
        return "UNHEALTHY", "REPLICA_STARTUP_FAILED", ""
    return "UPDATING", "CONFIG_UPDATE_STARTED", ""


def _app_message(app: App) -> str:
    if app.status == "DEPLOY_FAILED":
        return app.failure
    if app.status == "DEPLOYING":
        return "Deploying app '" + app.name + "'."
    return ""


def _app_status(app: App) -> Obj:
    status, _, message = _deployment_state(app)
    deployments = {d: {"status": status, "message": message} for d in app.deployments}
    if app.status == "DEPLOY_FAILED":
        deployments = {}  # the app never got to build its deployments
    return {"status": app.status, "message": _app_message(app), "deployments": deployments}


def _app_details(app: App, head: Obj) -> Obj:
    status, trigger, message = _deployment_state(app)
    by_name = {str(d.get("name")): d for d in app.config.get("deployments") or []}
    deployments: Obj = {}
    if app.status != "DEPLOY_FAILED":
        for name in app.deployments:
            conf = by_name.get(name, {})
            replicas = int(conf.get("num_replicas") or 1) if str(conf.get("num_replicas", "")) != "auto" else 1
            state = "RUNNING" if status == "HEALTHY" else "STARTING"
            deployments[name] = {
                "name": name,
                "status": status,
                "status_trigger": trigger,
                "message": message,
                "deployment_config": {k: v for k, v in conf.items() if k != "name"},
                "target_num_replicas": replicas,
                "required_resources": {"CPU": float((conf.get("ray_actor_options") or {}).get("num_cpus", 1))},
                "replica_states": {state: replicas},
                "replicas": [
                    {
                        "replica_id": hashlib.sha256(f"{app.name}:{name}:{i}".encode()).hexdigest()[:8],
                        "state": state,
                        "node_id": head.get("node_id", ""),
                        "node_ip": head.get("node_ip", ""),
                        "pid": None,
                        "start_time_s": app.deployed_at,
                    }
                    for i in range(replicas)
                ],
            }
    return {
        "name": app.name,
        "route_prefix": app.config.get("route_prefix", "/" if app.name == "default" else f"/{app.name}"),
        "docs_path": None,
        "status": app.status,
        "message": _app_message(app),
        "last_deployed_time_s": app.deployed_at,
        "deployed_app_config": json.loads(json.dumps(app.config)),
        "source": "declarative",
        "deployments": deployments,
    }
