"""Reads behind ``AzureServiceRunner``: what a RayService's status says of each side, and
whether Serve on the serving head runs a given config.

Why the last one: KubeRay's status cannot say it after an in-place change. In the pass that
submits a changed ``serveConfigV2`` to the active cluster, ``reconcileServe``
(``rayservice_controller.go``, v1.7.0) reports the application statuses it read *before*
the submit, with ``observedGeneration`` already the new one, so a change of route prefixes
looks RUNNING while Serve still runs the old applications. Serve's own
``GET /api/serve/applications/`` has each application's ``deployed_app_config`` (the config
it was last given): :func:`serve_runs` compares it with ours.
"""

from __future__ import annotations

import dataclasses
import ssl
from typing import Any

import httpx
import yaml

from rayplane.providers.azure.rayservice import SideStatus
from rayplane.providers.base import Observation, ray_headers

SERVE_TIMEOUT = 10.0


def app_names(manifest: dict[str, Any]) -> set[str]:
    config = yaml.safe_load(manifest["spec"]["serveConfigV2"]) or {}
    return {str(a["name"]) for a in config.get("applications") or ()}


def head_ready(obj: dict[str, Any], side: str) -> bool:
    """Whether KubeRay reports the head of that side's RayCluster ready (``HeadPodReady``)."""
    cluster = (((obj.get("status") or {}).get(side) or {}).get("rayClusterStatus")) or {}
    return any(c.get("type") == "HeadPodReady" and c.get("status") == "True" for c in cluster.get("conditions") or ())


def failure_text(side: SideStatus, names: set[str]) -> str | None:
    """Serve's messages for the applications that failed; when none did, the statuses of
    those not RUNNING yet."""
    failed = ("DEPLOY_FAILED", "UNHEALTHY")
    bad = [f"{a.name}: {a.status}: {a.message}" for a in side.applications if a.status in failed]
    if bad:
        return "\n".join(bad)
    waiting = [
        f"{n}: {app.status if app else 'not reported'}"
        for n in sorted(names)
        if (app := side.application(n)) is None or app.status != "RUNNING"
    ]
    return "\n".join(waiting) or None


def serve_runs(
    dashboard_url: str, headers: dict[str, str], verify: str | bool, token: str, serve_config_v2: str
) -> bool:
    """Whether Serve behind ``dashboard_url`` (a head's dashboard through the API server's
    service proxy, with the proxy's ``headers`` and CA ``verify``) was given every
    application of ``serve_config_v2`` as it is, each RUNNING. False when Serve does not
    answer: the caller asks again on its next pass."""
    wanted = {str(a["name"]): a for a in (yaml.safe_load(serve_config_v2) or {}).get("applications") or ()}
    context: ssl.SSLContext | bool = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    try:
        response = httpx.get(
            f"{dashboard_url}/api/serve/applications/",
            headers={**headers, **ray_headers(token)},
            verify=context,
            timeout=SERVE_TIMEOUT,
            trust_env=False,
        )
        apps = response.json().get("applications") or {} if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    if not isinstance(apps, dict):
        return False
    return all(
        isinstance(app := apps.get(name), dict)
        and app.get("status") == "RUNNING"
        and _given(config, app.get("deployed_app_config"))
        for name, config in wanted.items()
    )


def _given(ours: Any, theirs: Any) -> bool:
    """Every value we set is in Serve's copy (which may add defaults of its own)."""
    if isinstance(ours, dict):
        return isinstance(theirs, dict) and all(_given(v, theirs.get(k)) for k, v in ours.items())
    if isinstance(ours, list):
        return isinstance(theirs, list) and len(ours) == len(theirs) and all(map(_given, ours, theirs))
    return bool(ours == theirs)


def merge(a: Observation, b: Observation) -> Observation:
    """Two RayClusters of one version as one observation (their nodes add up)."""
    nodes = dict(a.nodes)
    for group, n in b.nodes.items():
        nodes[group] = nodes.get(group, 0) + n
    return dataclasses.replace(
        a,
        head_alive=a.head_alive or b.head_alive,
        dashboard_url=a.dashboard_url or b.dashboard_url,
        nodes=nodes,
        node_details=a.node_details + b.node_details,
        messages=a.messages + b.messages,
        events=a.events + b.events,
        fatal=a.fatal or b.fatal,
    )
