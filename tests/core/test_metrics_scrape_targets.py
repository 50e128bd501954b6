"""The scraper with targets behind an authenticated proxy: each GET carries its target's headers
(a node that wants a bearer token answers only with it), the provider gets the cloud's config,
and a provider that cannot list one cluster's targets costs that cluster its row, not the
others theirs. Rows committed through sync sessions, as the worker writes them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, select
from sqlalchemy.orm import Session, sessionmaker

from rayplane.clouds.models import Cloud
from rayplane.clusters.models import Cluster
from rayplane.db.base import utcnow
from rayplane.db.engine import normalize_url
from rayplane.db.ids import new_id
from rayplane.metrics.models import MetricPoint
from rayplane.metrics.scrape import Scraper
from rayplane.metrics.tiers import tiers
from rayplane.providers.base import ClusterTarget, MetricsTarget, Observation, Provider, Step
from rayplane.tenants.models import Tenant

TOKEN = "Bearer s3cret"
TEXT = "# TYPE ray_node_cpu_utilization gauge\nray_node_cpu_utilization 42.0\n"


class _Node(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.headers.get("Authorization") == TOKEN
        body = (TEXT if ok else "Unauthorized").encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def node() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


class Proxied(Provider):
    """A provider whose nodes sit behind a proxy wanting a token from the cloud's config; the
    cluster named ``broken`` cannot be listed (its cloud unreachable, say). Only the scrape's
    side of the interface: nothing here reconciles."""

    kind = "proxied"

    def __init__(self, url: str) -> None:
        self.url = url

    def ensure(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        raise NotImplementedError

    def observe(self, target: ClusterTarget, state: dict[str, Any]) -> Observation:
        raise NotImplementedError

    def stop(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        raise NotImplementedError

    def teardown(self, target: ClusterTarget, state: dict[str, Any]) -> Step:
        raise NotImplementedError

    def jobs_endpoint(self, state: dict[str, Any]) -> str | None:
        return None

    def metrics_targets(
        self, state: dict[str, Any], cloud_config: Mapping[str, Any] | None = None
    ) -> tuple[MetricsTarget, ...]:
        assert cloud_config is not None
        if state.get("name") == "broken":
            raise RuntimeError("the API server cannot be reached")
        headers = {"Authorization": str(cloud_config["token"])}
        return (MetricsTarget("n1", "cpu", self.url, headers), MetricsTarget("n2", "cpu", self.url))


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = create_engine(normalize_url(database_url))
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def test_targets_headers_reach_the_node_and_a_failing_listing_skips_only_its_cluster(
    sessions: sessionmaker[Session], node: str
) -> None:
    tenant_id, cloud_id = new_id("ten"), new_id("cld")
    name = "s-" + uuid.uuid4().hex[:12]
    ids = {n: new_id("cls") for n in ("good", "broken")}
    with sessions() as s, s.begin():
        s.add(Tenant(id=tenant_id, name=name, display_name=name, status="active"))
        s.flush()
        s.add(Cloud(id=cloud_id, tenant_id=tenant_id, name="p", provider="proxied", config={"token": TOKEN}))
        s.flush()
        for n, cid in ids.items():
            s.add(
                Cluster(
                    id=cid,
                    tenant_id=tenant_id,
                    cloud_id=cloud_id,
                    name=n,
                    spec={"head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []},
                    labels={},
                    desired_state="running",
                    state="RUNNING",
                    observed={},
                    provider_state={"name": n},
                )
            )
    try:
        scraper = Scraper(sessions, {"proxied": Proxied(node)}, tiers(15, 30))
        result = scraper.scrape(utcnow())
        assert result.failed_nodes >= 1  # n2 went without the token: 401
        with sessions() as s:
            rows = dict(s.execute(select(MetricPoint.cluster_id, MetricPoint.figures)).all())
        # n1 answered with its token: the good cluster's row has its CPU; the broken one has none.
        assert rows[ids["good"]]["cpu_utilization_percent/cpu"] == 42.0
        assert ids["broken"] not in rows
    finally:
        with sessions() as s, s.begin():
            s.execute(delete(Tenant).where(Tenant.id == tenant_id))
