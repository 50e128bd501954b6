"""The log shipper sidecar of a Ray pod on AKS: ships the pod's Ray session logs
(``/tmp/ray/session_latest/logs``, an ``emptyDir`` shared with the Ray container) into the
cloud's log container, in the log store's layout, with workload identity.

Run as ``python -m rayplane.providers.azure.podship /etc/rayplane/shipper.json`` in Rayplane's
image. The file is the ConfigMap Rayplane generates (:class:`ShipperConfig`); the pod's
identity comes from what AKS's workload identity webhook injects (``AZURE_CLIENT_ID``,
``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE``, ``AZURE_AUTHORITY_HOST``) and is used by
azure-identity's ``WorkloadIdentityCredential``: no key or secret is mounted anywhere.

It is the local provider's shipper (:class:`~rayplane.providers.local.logship.Shipper`: append
at the store's offset, so a restarted sidecar neither repeats nor skips a byte) with the pod
as the node's lifetime: it ships every ``interval`` seconds until TERM, then takes a final
pass within the pod's grace period. Why not Fluent Bit's ``azure_blob``: see docs/observability.md.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rayplane.logstore.base import valid_node
from rayplane.providers.local.logship import Shipper

log = logging.getLogger("rayplane.providers.azure.podship")
RAY_ROOT = "/tmp/ray"  # noqa: S108 - Ray's own session root inside the pod, an emptyDir


@dataclass(frozen=True)
class ShipperConfig:
    """The sidecar's whole configuration (the ConfigMap's ``shipper.json``)."""

    account_url: str
    container: str
    tenant: str
    cluster: str
    interval: float = 1.0
    ray_root: str = RAY_ROOT

    def __post_init__(self) -> None:
        if not self.account_url.startswith("https://"):
            raise ValueError("account_url must be an https URL: tokens are never sent in clear")
        if not (self.container and self.tenant and self.cluster) or not 0.2 <= self.interval <= 60:
            raise ValueError("container, tenant and cluster are required; interval is 0.2-60 seconds")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ShipperConfig:
        raw = json.loads(text)
        if not isinstance(raw, dict) or set(raw) - set(cls.__dataclass_fields__):
            raise ValueError(
                f"unknown shipper configuration fields: {sorted(set(raw) - set(cls.__dataclass_fields__))}"
            )
        return cls(**raw)


def node_name(pod: str, node_type: str, group: str) -> str:
    """The node's name in the store: ``head``, else ``<group>-<pod suffix>`` (a worker pod's
    name ends in KubeRay's random suffix, unique in the cluster)."""
    if node_type == "head":
        return "head"
    name = f"{group}-{pod.rsplit('-', 1)[-1]}".lower()[:63]
    if not valid_node(name):
        raise ValueError(f"not a node name: {name}")
    return name


class PodShipper(Shipper):
    """A :class:`Shipper` whose node is the pod: it lives until ``stop`` is set."""

    def __init__(self, store: Any, config: ShipperConfig, node: str, stop: threading.Event) -> None:
        spec = {"tenant": config.tenant, "cluster": config.cluster, "node": node, "leader_pid": 0}
        super().__init__(store, Path(config.ray_root), {**spec, "leader_create_time": 0.0, "interval": config.interval})
        self.stop = stop

    def run(self) -> None:
        failures = 0
        while not self.stop.wait(min(self.interval * (2 ** min(failures, 4)), 15.0)):
            try:
                self.ship_once()
                failures = 0
            except Exception as exc:  # noqa: BLE001 - a store outage must not end shipping
                failures += 1
                log.warning("shipping failed (%s): %s", type(exc).__name__, exc)
        # TERM: Ray's own preStop has run; what it wrote last goes now.
        for _ in range(3):
            try:
                if self.ship_once() == 0:
                    return
            except Exception as exc:  # noqa: BLE001
                log.warning("final pass failed (%s): %s", type(exc).__name__, exc)


def main(argv: list[str]) -> int:  # pragma: no cover - the container's entry point
    import os

    from azure.identity import WorkloadIdentityCredential

    from rayplane.logstore.blob import BlobLogStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = ShipperConfig.from_json(Path(argv[0]).read_text())
    node = node_name(os.environ["POD_NAME"], os.environ.get("RAY_NODE_TYPE", ""), os.environ.get("RAY_GROUP", ""))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    store = BlobLogStore.for_account(config.account_url, config.container, WorkloadIdentityCredential())
    PodShipper(store, config, node, stop).run()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
