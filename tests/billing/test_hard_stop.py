"""A budget with a hard stop is refused (422, naming each size) when a size without a
catalog price would keep it from counting the tenant's spend; under a hard stop, a cluster
cannot be created onto such a size.

Every test runs in the rolled-back transaction of the ``client``/``session`` fixtures. The
shipped catalog may price every size a test uses, so a test that needs an unpriced one takes
the price away for its own duration (``without_price``).
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from rayplane.billing.periods import month_start
from rayplane.db.base import utcnow
from tests.billing.conftest import WithoutPrice
from tests.billing.test_api import add_interval, new_cluster
from tests.support.factories import Actor, Factory

D2 = "Standard_D2s_v5"  # 2 vCPUs
D4 = "Standard_D4s_v5"  # made unpriced where a test needs it (the local cloud has no GPUs)


@pytest.fixture
async def owner(factory: Factory) -> Actor:
    return await factory.actor()


# ---- a hard stop that cannot be enforced ----------------------------------------------------
async def test_hard_stop_is_refused_while_a_cluster_uses_an_unpriced_size(
    client: httpx.AsyncClient, owner: Actor, without_price: WithoutPrice
) -> None:
    without_price(D4)
    body = {"name": "cpus", "head": {"vm_size": D2}, "worker_groups": [{"name": "g", "vm_size": D4, "max_nodes": 2}]}
    created = await client.post("/v1/clusters", headers=owner.headers, json=body)
    assert created.status_code == 202, created.text
    assert (await client.post(f"/v1/clusters/{created.json()['id']}:stop", headers=owner.headers)).status_code == 202

    refused = await client.put("/v1/budget", headers=owner.headers, json={"amount_usd": 100, "hard_stop": True})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert [e["field"] for e in problem["errors"]] == ["body.hard_stop"]
    message = problem["errors"][0]["message"]
    assert f"{D4} (cluster cpus)" in message  # a stopped cluster counts: it can be started
    assert D2 not in message
    assert "hard_stop: false" in message
    assert (await client.get("/v1/budget", headers=owner.headers)).status_code == 404  # nothing was set

    alerts_only = await client.put("/v1/budget", headers=owner.headers, json={"amount_usd": 100})
    assert alerts_only.status_code == 200, alerts_only.text
    assert alerts_only.json()["hard_stop"] is False


async def test_hard_stop_is_refused_when_an_unpriced_size_ran_this_month(
    client: httpx.AsyncClient, session: AsyncSession, owner: Actor, without_price: WithoutPrice
) -> None:
    cluster = await new_cluster(client, owner, "priced")  # its own spec is priced
    end = utcnow() - timedelta(seconds=1)
    start = max(month_start(end), end - timedelta(minutes=30))
    await add_interval(session, owner, cluster, "Standard_E4s_v5", 1, start, end)
    without_price("Standard_E4s_v5")
    refused = await client.put("/v1/budget", headers=owner.headers, json={"amount_usd": 50, "hard_stop": True})
    assert refused.status_code == 422, refused.text
    assert "Standard_E4s_v5 (usage this month)" in refused.json()["errors"][0]["message"]


async def test_hard_stop_is_set_when_every_size_is_priced(client: httpx.AsyncClient, owner: Actor) -> None:
    await new_cluster(client, owner, "priced")
    put = await client.put("/v1/budget", headers=owner.headers, json={"amount_usd": 100, "hard_stop": True})
    assert put.status_code == 200, put.text
    assert put.json()["hard_stop"] is True


async def test_under_a_hard_stop_a_cluster_cannot_be_created_on_an_unpriced_size(
    client: httpx.AsyncClient, owner: Actor, without_price: WithoutPrice
) -> None:
    put = await client.put("/v1/budget", headers=owner.headers, json={"amount_usd": 100, "hard_stop": True})
    assert put.status_code == 200, put.text
    without_price(D4)
    body = {"name": "cpus", "head": {"vm_size": D2}, "worker_groups": [{"name": "g", "vm_size": D4, "max_nodes": 2}]}
    refused = await client.post("/v1/clusters", headers=owner.headers, json=body)
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert [e["field"] for e in errors] == ["body.worker_groups.0.vm_size"]
    assert D4 in errors[0]["message"]
    assert "hard stop" in errors[0]["message"]
    priced = await client.post("/v1/clusters", headers=owner.headers, json={"name": "small", "head": {"vm_size": D2}})
    assert priced.status_code == 202, priced.text
