"""Cluster specs from the command line: ``--workers`` strings, ``--label``s, and spec files.

``--workers NAME=SIZE:MIN-MAX[:spot][:fallback]`` describes one worker group:

* ``cpu=Standard_D8s_v5:0-4`` — 0 to 4 on-demand nodes;
* ``gpu=Standard_NC6s_v3:1-2:spot`` — spot nodes;
* ``gpu=Standard_NC6s_v3:0-8:spot:fallback`` — spot, with on-demand when spot is short;
* ``cpu=Standard_D4s_v5:3`` — exactly 3 nodes.

A spec file (YAML or JSON, ``-`` for stdin) has the shape of ``POST /v1/clusters``; flags
given with it override its fields (``--workers`` replaces the file's whole list).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

GROUP_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
WORKERS_SYNTAX = "NAME=SIZE:MIN-MAX[:spot][:fallback]"


class SpecError(ValueError):
    """A malformed ``--workers``/``--label`` value or spec file."""


def parse_workers(value: str) -> dict[str, Any]:
    """One ``--workers`` value as a worker-group object of the API."""
    name, sep, rest = value.partition("=")
    name = name.strip()
    if not sep or not name or not rest:
        raise SpecError(f"{value!r}: expected {WORKERS_SYNTAX}, e.g. cpu=Standard_D8s_v5:0-4:spot")
    if not GROUP_NAME.match(name):
        raise SpecError(f"{value!r}: group name {name!r} must be lowercase letters, digits and '-'")
    parts = [p.strip() for p in rest.split(":")]
    if len(parts) < 2 or not parts[0]:
        raise SpecError(f"{value!r}: expected {WORKERS_SYNTAX} (the node count is missing)")
    size, counts, flags = parts[0], parts[1], [p.lower() for p in parts[2:]]
    lo, dash, hi = counts.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        raise SpecError(f"{value!r}: node count {counts!r} must be MIN-MAX (e.g. 0-4) or a number")
    min_nodes, max_nodes = int(lo), int(hi) if dash else int(lo)
    if min_nodes > max_nodes:
        raise SpecError(f"{value!r}: MIN ({min_nodes}) is larger than MAX ({max_nodes})")
    unknown = [f for f in flags if f not in ("spot", "fallback")]
    if unknown:
        raise SpecError(f"{value!r}: unknown option {unknown[0]!r} (use 'spot' and/or 'fallback')")
    group: dict[str, Any] = {"name": name, "vm_size": size, "min_nodes": min_nodes, "max_nodes": max_nodes}
    if "spot" in flags or "fallback" in flags:
        group["spot"] = True
    if "fallback" in flags:
        group["fallback_to_on_demand"] = True
    return group


def format_workers(group: dict[str, Any]) -> str:
    """The inverse of :func:`parse_workers`."""
    text = f"{group['name']}={group['vm_size']}:{group.get('min_nodes', 0)}-{group.get('max_nodes', 1)}"
    if group.get("spot"):
        text += ":spot"
    if group.get("fallback_to_on_demand"):
        text += ":fallback"
    return text


def parse_labels(values: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in values or []:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"label {item!r}: expected key=value")
        labels[key.strip()] = val.strip()
    return labels


def load_spec_file(path: str, help_command: str = "rayplane clusters create --help") -> dict[str, Any]:
    """A YAML or JSON cluster (or service) spec; ``-`` reads standard input.

    ``help_command`` is where a file that is not a mapping is sent to read about the shape.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) if not path.endswith(".json") else json.loads(text)
    except yaml.MarkedYAMLError as exc:
        raise SpecError(f"{_shown(path)} is not valid YAML: {_yaml_problem(exc)}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{_shown(path)} is not valid YAML: {' '.join(str(exc).split())}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{_shown(path)} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{_shown(path)}: expected a mapping with at least 'name' (see `{help_command}`)")
    return data


def _shown(path: str) -> str:
    return "standard input" if path == "-" else path


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """``line 3, column 7: mapping values are not allowed here`` (1-based, as editors count)."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = exc.problem or exc.context or "cannot parse"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return where + problem + context


def build_spec(
    base: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    head: str | None = None,
    workers: list[str] | None = None,
    cloud: str | None = None,
    ray_version: str | None = None,
    image: str | None = None,
    labels: list[str] | None = None,
    idle_timeout: int | None = None,
    require_name: bool = True,
) -> dict[str, Any]:
    """The body of ``POST /v1/clusters`` from a spec file (or nothing) and flags."""
    spec = dict(base or {})
    if name:
        spec["name"] = name
    if head:
        spec["head"] = {**(spec.get("head") or {}), "vm_size": head}
    if workers:
        spec["worker_groups"] = [parse_workers(w) for w in workers]
    for key, value in (("cloud", cloud), ("ray_version", ray_version), ("image", image)):
        if value:
            spec[key] = value
    if idle_timeout is not None:
        spec["idle_timeout_minutes"] = idle_timeout
    if labels:
        spec["labels"] = {**(spec.get("labels") or {}), **parse_labels(labels)}
    if require_name and not spec.get("name"):
        raise SpecError("a cluster needs a name: --name NAME, or 'name:' in the spec file")
    return spec
