"""``rayplane services deploy``'s file: loading it (local code paths made absolute) and
comparing it with the live service, the API's defaults filled in, so that only what
differs is sent."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from cli.client import Service
from cli.specs import SpecError, load_spec_file

HELP_COMMAND = "rayplane services deploy --help"
PATCHABLE = ("serve", "rollout", "ray_version", "image", "head", "worker_groups", "labels")
IN_SPEC = frozenset({"ray_version", "image", "worker_groups", "head"})


def load_service_file(path: str) -> dict[str, Any]:
    """A service file (YAML/JSON, ``-`` for stdin) with its local working dirs made absolute.

    The API's workers read a local ``runtime_env.working_dir`` (or ``py_modules`` entry),
    not this shell: a relative path is taken relative to the file, as a user reads it.
    """
    body = load_spec_file(path, HELP_COMMAND)
    if not isinstance(body.get("name"), str) or not body["name"]:
        raise SpecError(f"{'standard input' if path == '-' else path}: a service needs a name: 'name:' in the file")
    base = Path.cwd() if path == "-" else Path(path).expanduser().resolve().parent
    serve = body.get("serve")
    for app_ in (serve.get("applications") or []) if isinstance(serve, dict) else []:
        env = app_.get("runtime_env") if isinstance(app_, dict) else None
        if not isinstance(env, dict):
            continue
        if _is_local(env.get("working_dir")):
            env["working_dir"] = str((base / env["working_dir"]).resolve())
        if isinstance(env.get("py_modules"), list):
            env["py_modules"] = [str((base / m).resolve()) if _is_local(m) else m for m in env["py_modules"]]
    return body


def _is_local(uri: object) -> bool:
    return isinstance(uri, str) and bool(uri) and "://" not in uri


def _has_local_code(serve: object) -> bool:
    """A Serve config whose code is read from a local directory (which may have changed)."""
    if not isinstance(serve, dict):
        return False
    for app_ in serve.get("applications") or []:
        env = (app_.get("runtime_env") if isinstance(app_, dict) else None) or {}
        if _is_local(env.get("working_dir")) or any(_is_local(m) for m in env.get("py_modules") or []):
            return True
    return False


#: The API's defaults (POST /v1/services) for what a file may leave out: a file without
#: them asks for what the service already has. Should they drift, a deploy sends a field
#: that did not change, which changes nothing.
ROLLOUT_DEFAULTS = {
    "strategy": "blue_green",
    "step_percent": 20,
    "interval_seconds": 30,
    "max_surge_percent": 100,
    "health_timeout_seconds": 600,
}
GROUP_DEFAULTS = {"min_nodes": 0, "max_nodes": 1, "spot": False, "fallback_to_on_demand": False}
#: A service's head always keeps its GCS in Redis (it survives a crash), asked for or not.
HEAD_DEFAULTS = {"vm_size": "Standard_D4s_v5", "gcs_fault_tolerance": True}
APP_DEFAULTS = {"route_prefix": "/", "runtime_env": {}, "deployments": []}
AUTOSCALING_DEFAULTS = {"min_replicas": 1, "max_replicas": 1}


def _plain(value: Any) -> Any:
    """``value`` without null, false or empty members: the API's defaults, which a file leaves out."""
    if isinstance(value, Mapping):
        kept = {k: _plain(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, False, {}, [])}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _normal(name: str, value: Any) -> Any:
    """A field's value with the API's defaults filled in, for comparing."""
    if name == "rollout" and isinstance(value, Mapping):
        value = {**ROLLOUT_DEFAULTS, **value}
    elif name == "head" and isinstance(value, Mapping):
        value = {**HEAD_DEFAULTS, **value}
    elif name == "worker_groups" and isinstance(value, list):
        value = [{**GROUP_DEFAULTS, **g} if isinstance(g, Mapping) else g for g in value]
    elif name == "serve" and isinstance(value, Mapping) and isinstance(value.get("applications"), list):
        value = {**value, "applications": [_normal_app(a) for a in value["applications"]]}
    return _plain(value)


def _normal_app(app_: Any) -> Any:
    if not isinstance(app_, Mapping):
        return app_
    deployments = app_.get("deployments")
    if isinstance(deployments, list):
        deployments = [_normal_deployment(d) for d in deployments]
    return {**APP_DEFAULTS, **app_, **({"deployments": deployments} if deployments is not None else {})}


def _normal_deployment(d: Any) -> Any:
    if isinstance(d, Mapping) and isinstance(d.get("autoscaling_config"), Mapping):
        return {**d, "autoscaling_config": {**AUTOSCALING_DEFAULTS, **d["autoscaling_config"]}}
    return d


def current_value(s: Service, name: str) -> Any:
    """The service's value of a file field (``ray_version`` and the like live in its ``spec``)."""
    source = (s.get("spec") or {}) if name in IN_SPEC else cast(Mapping[str, Any], s)
    return source.get(name)


def service_patch(wanted: Mapping[str, Any], current: Service) -> dict[str, Any]:
    """The body of ``PATCH /v1/services/{id}``: the file's updatable fields that differ.

    A field equal to the service's, but for the defaults the API fills in, is left out; a
    Serve config with local code is always sent (the code may have changed, its path not).
    Fields the API does not know are sent too, so that it names them.
    """
    patch: dict[str, Any] = {}
    for name, value in wanted.items():
        if name in ("name", "cloud"):
            continue
        if (
            name not in PATCHABLE
            or _normal(name, value) != _normal(name, current_value(current, name))
            or (name == "serve" and _has_local_code(value))
        ):
            patch[name] = value
    return patch


def fixed_field_errors(
    wanted: Mapping[str, Any], current: Service, cloud_names: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The file's fields that cannot change on a live service but differ from it (its cloud).

    ``cloud_names`` maps cloud ids to names (a file names its cloud either way).
    """
    cloud = wanted.get("cloud")
    cloud_id = current.get("cloud_id")
    if cloud and cloud != cloud_id and cloud != cloud_names.get(str(cloud_id)):
        shown = cloud_names.get(str(cloud_id), cloud_id)
        return [("cloud", f"the service runs on {shown}; a service cannot move to another cloud")]
    return []
