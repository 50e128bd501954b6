"""Rendering ``docker-compose.yml`` as ``docker-compose config`` does, without the tool.

What the tests need of a Compose implementation, written to the Compose Specification:
variable interpolation (``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``${VAR?error}``, ``$$``), extension fields (``x-…``) dropped, the build
context resolved against the project directory, short port syntax expanded to the long
form, and the result validated against the specification's JSON schema
(``tests/reference/compose/compose_spec.json``). A missing required variable raises
``ComposeError`` naming it, as ``docker-compose`` refuses to start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "reference" / "compose" / "compose_spec.json"
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


class ComposeError(Exception):
    """The file would not be accepted: a required variable is unset, or the schema refuses it."""


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        escaped, name, op, arg, bare = match.groups()
        if escaped:
            return "$"
        if bare:
            return env.get(bare, "")
        current = env.get(name)
        empty = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if empty else str(current)
        if op in ("?", ":?"):
            if empty:
                raise ComposeError(f"required variable {name} is missing a value: {arg}")
            return str(current)
        return current or ""

    return _VARIABLE.sub(one, value)


def _long_port(port: Any) -> Any:
    if not isinstance(port, (str, int)):
        return port
    text, _, protocol = str(port).partition("/")
    published, _, target = text.rpartition(":")
    long: dict[str, Any] = {"target": int(target), "protocol": protocol or "tcp", "mode": "ingress"}
    if published:
        long["published"] = published.rpartition(":")[2]
    return long


def render(path: Path, env: Mapping[str, str], *, project_dir: Path = ROOT) -> dict[str, Any]:
    """The configuration ``docker-compose config`` would print for ``path`` under ``env``."""
    raw = yaml.safe_load(path.read_text())
    config: dict[str, Any] = interpolate({k: v for k, v in raw.items() if not k.startswith("x-")}, env)
    schema = json.loads(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        raise ComposeError("; ".join(f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors))
    for service in config.get("services", {}).values():
        build = service.get("build")
        if isinstance(build, str):
            build = service["build"] = {"context": build}
        if isinstance(build, dict):
            build["context"] = str((project_dir / build.get("context", ".")).resolve())
        if "ports" in service:
            service["ports"] = [_long_port(p) for p in service["ports"]]
    return config
