"""/readyz on real Kafka: ready with the broker there, unready while it is away, ready again when it returns;
/healthz says alive throughout (a broker outage must not get the pods restarted)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.observability.conftest import ops_endpoints
from tests.services.conftest import running_backbone
from tests.support.kafka import KafkaBroker

pytestmark = [pytest.mark.kafka, pytest.mark.heavy]


async def readiness_becomes(client: httpx.AsyncClient, ready: bool, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get("/readyz")
        body: dict[str, Any] = response.json()
        assert response.status_code == (200 if body["ready"] else 503)
        if body["ready"] is ready:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz not {'ready' if ready else 'unready'} within {timeout_s:.0f}s: {body}")
        await asyncio.sleep(0.25)


@pytest.mark.parametrize("bus_kind", ["kafka"])
async def test_readyz_turns_unready_when_the_broker_goes_away_and_ready_again_when_it_returns(
    installation: dict[str, str], controllable_kafka_broker: KafkaBroker,
) -> None:
    async with running_backbone(["validator", "router"]) as (_, parts), ops_endpoints(parts.ops) as client:
        ready = await readiness_becomes(client, True, 60)
        assert {"bus", "store", "registry-view", "consumer:validator", "consumer:router"} <= set(ready["checks"])

        await controllable_kafka_broker.stop_async()
        stopped = time.monotonic()
        try:
            unready = await readiness_becomes(client, False, 30)
            unready_s = time.monotonic() - stopped
            assert unready["checks"]["bus"] != "ok"
            assert (await client.get("/healthz")).status_code == 200
        finally:
            await controllable_kafka_broker.start_async()
        started = time.monotonic()
        ready = await readiness_becomes(client, True, 120)
        ready_s = time.monotonic() - started
        assert set(ready["checks"].values()) == {"ok"}
    print(f"\n/readyz unready {unready_s:.1f} s after the broker stopped ({unready['checks']['bus']}); "
          f"ready again {ready_s:.1f} s after it started")
