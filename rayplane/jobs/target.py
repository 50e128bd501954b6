"""The cluster a job runs on, as the job use cases need it (built by the clusters service).

Jobs sit below clusters: they never load a cluster themselves. The adapter asks the clusters
service for the caller's ``JobTarget`` (which enforces tenant isolation and answers 404) and
hands it to the job use cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rayplane.common.errors import Conflict


@dataclass(frozen=True)
class JobTarget:
    cluster_id: str
    tenant_id: str
    name: str
    state: str
    # The cluster is in a state that runs jobs (RUNNING, UPDATING, DEGRADED).
    accepts_jobs: bool
    dashboard_url: str | None
    provider: str
    cloud_config: dict[str, Any] = field(default_factory=dict)
    # The cluster's Ray token, sealed as stored (``rayplane.common.raytoken``); the
    # ``JobsAccess`` of the process opens it and sends it on every call.
    ray_token_sealed: str | None = field(default=None, repr=False)

    def endpoint(self) -> str:
        """The Jobs API base URL; ``Conflict`` when the cluster cannot take jobs now."""
        if not self.accepts_jobs or not self.dashboard_url:
            raise Conflict(f"cluster {self.name!r} is {self.state}; jobs need a RUNNING cluster")
        return self.dashboard_url
