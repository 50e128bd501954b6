"""One scrape of every running cluster's Ray nodes, and the upkeep of the tiers.

The worker's beat runs :meth:`Scraper.scrape` every ``RAYPLANE_METRICS_SCRAPE_SECONDS``
and :meth:`Scraper.upkeep` every minute. Its cost is bounded: per cluster the provider's
``metrics_targets`` (nothing remote for a local cluster; one pod list through the API server
for an AKS one), then one HTTP GET per running node (2-second timeout, ``PARALLEL`` at a
time, with the target's headers and TLS verify: one client per distinct verify), one row per
cluster, and the rollups read only the source rows of buckets not yet written.

Races: two workers may scrape the same cluster at once (a slow beat tick, a retry); the
scrape's time is on the scrape interval's grid and the row's key includes it, so the second
insert does nothing. A node that does not answer is left out of that scrape (its group's
figures come from the nodes that answered); a cluster none of whose nodes answer gets no
row, and its chart shows a gap rather than zeros; so does a cluster whose targets could not
be listed (its cloud unreachable, say), without holding up the others.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy.orm import Session

from rayplane.logs import get_logger
from rayplane.metrics import store
from rayplane.metrics.series import NodeFigures, combine, node_figures
from rayplane.metrics.tiers import Tier, on_grid
from rayplane.providers.base import MetricsTarget, Provider

log = get_logger("rayplane.metrics.scrape")
PARALLEL = 8
TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class ScrapeResult:
    clusters: int
    written: int
    nodes: int
    failed_nodes: int


def _client(verify: str | bool) -> httpx.Client | None:
    """A client for targets with this TLS ``verify`` (a CA file or a bool); None when the CA
    file cannot be read (a kubeconfig's temporary CA gone): those targets go unanswered."""
    try:
        context = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    except (OSError, ssl.SSLError) as exc:
        log.info("metrics_ca_unreadable", ca=str(verify), error=str(exc)[:300])
        return None
    return httpx.Client(timeout=TIMEOUT_SECONDS, trust_env=False, verify=context)


def _fetch(client: httpx.Client | None, target: MetricsTarget) -> NodeFigures | None:
    if client is None:
        return None
    try:
        response = client.get(target.url, headers=dict(target.headers))
        response.raise_for_status()
        return node_figures(target.group, response.text)
    except (httpx.HTTPError, ValueError):
        return None


def _groups(observed: Mapping[str, object]) -> dict[str, tuple[int, int]]:
    """``{group: (ready, wanted)}`` from the reconciler's last observation, head included."""
    out: dict[str, tuple[int, int]] = {}
    head = observed.get("head")
    if isinstance(head, dict):
        out["head"] = (1 if head.get("alive") else 0, 1)
    groups = observed.get("groups")
    if isinstance(groups, dict):
        for name, g in groups.items():
            if isinstance(g, dict):
                out[str(name)] = (int(g.get("ready") or 0), int(g.get("wanted") or 0))
    return out


class Scraper:
    def __init__(self, sessions: Callable[[], Session], providers: Mapping[str, Provider], all_tiers: tuple[Tier, ...]):
        self.sessions = sessions
        self.providers = providers
        self.tiers = all_tiers

    def scrape(self, now: datetime) -> ScrapeResult:
        at = on_grid(now, self.tiers[0].resolution)
        with self.sessions() as session:
            clusters = store.scrapable(session)
        with ThreadPoolExecutor(PARALLEL) as pool:
            found = list(pool.map(self._targets, clusters))
            work = [(c, targets) for c, targets in zip(clusters, found, strict=True) if targets]
            flat = [t for _, targets in work for t in targets]
            clients: dict[str | bool, httpx.Client | None] = {}
            for t in flat:
                if t.verify not in clients:
                    clients[t.verify] = _client(t.verify)
            try:
                answers = list(pool.map(lambda t: _fetch(clients[t.verify], t), flat))
            finally:
                for client in clients.values():
                    if client is not None:
                        client.close()
        written, i = 0, 0
        for c, targets in work:
            nodes = [a for a in answers[i : i + len(targets)] if a is not None]
            i += len(targets)
            if not nodes:
                continue
            with self.sessions() as session, session.begin():
                before = store.previous(session, c.cluster_id, at)
                seconds = (at - before[0]).total_seconds() if before else 0.0
                figures, counters = combine(
                    nodes,
                    groups=_groups(c.observed),
                    jobs=c.jobs,
                    before=before[1] if before else None,
                    seconds=seconds,
                )
                written += store.add(session, c.cluster_id, at, figures, counters)
        failed = sum(1 for a in answers if a is None)
        return ScrapeResult(len(work), written, len(flat), failed)

    def _targets(self, c: store.Scrapable) -> list[MetricsTarget]:
        """The cluster's targets; none when its provider is unknown or cannot list them now."""
        provider = self.providers.get(c.provider)
        if provider is None:
            return []
        try:
            return list(provider.metrics_targets(c.provider_state, c.cloud_config))
        except Exception as exc:  # noqa: BLE001 - a cloud outage is that cluster's gap, not the scrape's
            log.info("metrics_targets_failed", cluster_id=c.cluster_id, error=str(exc)[:300])
            return []

    def upkeep(self, now: datetime) -> dict[str, int]:
        """Roll tier 0 into 1 and 1 into 2, then drop what each tier no longer keeps."""
        out: dict[str, int] = {}
        with self.sessions() as session, session.begin():
            for source, target in zip(self.tiers, self.tiers[1:], strict=False):
                out[f"rolled_{target.number}"] = store.roll_up(session, source, target, now)
            for tier in self.tiers:
                out[f"pruned_{tier.number}"] = store.prune(session, tier, now)
        return out
