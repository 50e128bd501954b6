"""Fixtures for billing tests: committed rows through a sync session (as workers see them),
the emulator's Marketplace as a publisher, settings that point metering at it, JSON logs.

Metering and the budget check run in several transactions of their own, as in a worker, so
their tests commit what they set up; ``World`` deletes its tenants afterwards (every billing
row cascades from the tenant).
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, delete
from sqlalchemy.orm import Session, sessionmaker

from emulators.azure.server import EmulatorProcess
from rayplane import catalog
from rayplane.billing.models import MeteringRecord, MeteringWatermark
from rayplane.catalog import get as catalog_size
from rayplane.clusters.models import Cluster
from rayplane.db.base import utcnow
from rayplane.db.engine import normalize_url
from rayplane.db.ids import new_id
from rayplane.logs import configure_logging
from rayplane.marketplace.models import MarketplaceSubscription
from rayplane.settings import Settings
from rayplane.tenants.models import Tenant
from rayplane.usage.models import UsageInterval
from tests.emulators.test_marketplace_support import Marketplace, publisher_token

PUBLISHER_TENANT = str(uuid.uuid4())
PUBLISHER_APP = str(uuid.uuid4())
LONG_AGO = datetime(2020, 1, 1, tzinfo=utcnow().tzinfo)


@pytest.fixture(scope="session")
def sync_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(normalize_url(database_url), pool_size=5)
    yield engine
    engine.dispose()


@pytest.fixture
def sync_sessions(sync_engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(sync_engine, expire_on_commit=False, autoflush=False)


class World:
    """Tenants, clusters, Marketplace subscriptions and usage intervals, committed."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.tenants: list[str] = []

    def _add(self, *rows: Any) -> None:
        with self.sessions() as s, s.begin():
            s.add_all(rows)

    def tenant(self) -> str:
        tenant_id = new_id("ten")
        name = "b-" + uuid.uuid4().hex[:12]
        self._add(Tenant(id=tenant_id, name=name, display_name=name, status="active"))
        self.tenants.append(tenant_id)
        return tenant_id

    def cluster(self, tenant_id: str, name: str | None = None) -> str:
        cluster_id = new_id("cls")
        spec = {"head": {"vm_size": "Standard_D2s_v5"}, "worker_groups": []}
        self._add(
            Cluster(
                id=cluster_id,
                tenant_id=tenant_id,
                name=name or "c-" + uuid.uuid4().hex[:8],
                spec=spec,
                labels={},
                desired_state="running",
                state="RUNNING",
                observed={},
                provider_state={},
            )
        )
        return cluster_id

    def subscription(
        self,
        tenant_id: str,
        subscription_id: str | None = None,
        *,
        plan: str = "starter",
        status: str = "Subscribed",
        created_at: datetime = LONG_AGO,
    ) -> str:
        subscription_id = subscription_id or str(uuid.uuid4())
        self._add(
            MarketplaceSubscription(
                id=subscription_id,
                tenant_id=tenant_id,
                offer_id="rayplane",
                plan_id=plan,
                status=status,
                created_at=created_at,
                updated_at=created_at,
            )
        )
        return subscription_id

    def interval(
        self,
        tenant_id: str,
        cluster_id: str,
        vm_size: str,
        nodes: int,
        start: datetime,
        end: datetime | None,
        *,
        group: str | None = None,
    ) -> None:
        size = catalog_size(vm_size)
        assert size is not None
        self._add(
            UsageInterval(
                id=new_id("use"),
                tenant_id=tenant_id,
                cluster_id=cluster_id,
                group_name=group or "g" + uuid.uuid4().hex[:6],
                vm_size=size.name,
                spot=False,
                node_count=nodes,
                vcpus=size.vcpus,
                gpus=size.gpus,
                started_at=start,
                ended_at=end,
            )
        )

    def cleanup(self) -> None:
        if self.tenants:
            with self.sessions() as s, s.begin():
                # Metering records outlive tenants by design (no cascade): removed explicitly.
                s.execute(delete(MeteringRecord).where(MeteringRecord.tenant_id.in_(self.tenants)))
                s.execute(delete(Tenant).where(Tenant.id.in_(self.tenants)))


@pytest.fixture(autouse=True)
def fresh_watermark(sync_sessions: sessionmaker[Session]) -> Iterator[None]:
    """Each test meters from its own lookback, whatever clock an earlier test ran at."""

    def clear() -> None:
        with sync_sessions() as s, s.begin():
            s.execute(delete(MeteringWatermark))

    clear()
    yield
    clear()


@pytest.fixture
def world(sync_sessions: sessionmaker[Session]) -> Iterator[World]:
    w = World(sync_sessions)
    try:
        yield w
    finally:
        w.cleanup()


@pytest.fixture(scope="session")
def publisher(emulator: EmulatorProcess) -> str:
    """A Marketplace API token of the publisher app, for the test's own calls."""
    return publisher_token(emulator, PUBLISHER_TENANT, PUBLISHER_APP)


@pytest.fixture
def market(emulator: EmulatorProcess, publisher: str) -> Iterator[Marketplace]:
    client = Marketplace(emulator, publisher)
    try:
        yield client
    finally:
        client.configure(now_offset_seconds=0.0)  # the emulator is shared by the whole session
        client.close()


@pytest.fixture
def metering_settings(azure_settings: Settings, emulator: EmulatorProcess) -> Settings:
    """Metering against the emulator's Marketplace (its tokens from the emulator's Entra ID),
    with no delay before an hour counts."""
    return azure_settings.model_copy(
        update={
            "marketplace_api_url": emulator.origin,
            "marketplace_client_id": PUBLISHER_APP,
            "marketplace_client_secret": SecretStr("emulator-secret"),
            "marketplace_publisher_tenant_id": PUBLISHER_TENANT,
            "metering_delay_seconds": 0,
        }
    )


class Logs:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = [json.loads(x) for x in self.stream.getvalue().splitlines() if x.startswith("{")]
        return [r for r in lines if r.get("event") == name]


@pytest.fixture
def logs() -> Iterator[Logs]:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield Logs(stream)
    logging.getLogger().handlers[:] = []


def hours_ago(n: float, base: datetime | None = None) -> datetime:
    """The start of the UTC hour ``n`` hours before ``base``'s (now's) hour, plus any fraction."""
    start = (base or utcnow()).replace(minute=0, second=0, microsecond=0)
    return start - timedelta(hours=n)


WithoutPrice = Callable[..., None]


def catalog_price(name: str) -> float:
    """The catalog's USD/hour for ``name``; fails the test when the size has none."""
    size = catalog.get(name)
    assert size is not None, name
    assert size.price is not None, f"{name} has no catalog price"
    return size.price.usd_per_hour


@pytest.fixture
def without_price(monkeypatch: pytest.MonkeyPatch) -> WithoutPrice:
    """``without_price(name, ...)`` takes the catalog price away from those sizes for the
    rest of the test: the shipped catalog prices every size, and the code under test must
    still never invent a figure for one it cannot price. Lookups through ``catalog.get``
    (pricing, estimates, specs read during the test) see the size unpriced."""
    real = catalog.get

    def hide(*names: str) -> None:
        hidden = {name.casefold() for name in names}

        def get(name: str) -> catalog.VmSize | None:
            size = real(name)
            if size is not None and size.name.casefold() in hidden:
                return dataclasses.replace(size, price=None)
            return size

        monkeypatch.setattr(catalog, "get", get)

    return hide
