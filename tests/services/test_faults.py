"""Faults while messages flow, with the services as `edi run` processes: the router and the mailbox killed with
SIGKILL at random moments and restarted (both buses, 10,000 messages), and the Kafka broker stopped and
restarted mid-stream. Afterwards every message is in its receiver's mailbox exactly once; the counts compared
are printed."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from edi.adapters.bus import Bus, BusUnavailableError
from edi.schemas.topics import INBOUND
from edi.services.messaging import NotificationKind
from edi.services.store import BackboneSettings, BackboneStore, open_bus_and_store
from edi.services.store import tables as t
from edi.services.validator.admission import content_message_id
from tests.services.conftest import APPRECS, party, seed_registry
from tests.services.documents import DIALOG_SPEC, SENDER, dialog
from tests.services.processes import ServiceProcess
from tests.support.kafka import KafkaBroker

pytestmark = pytest.mark.heavy

RECEIVERS = ("8143060", "8143061", "8143062", "8143063")
MESSAGES = 10_000
RATE_PER_S = 400.0
KILLS_PER_SERVICE = 3
SETTLE_TIMEOUT_S = 300.0


def documents(count: int) -> list[bytes]:
    """Small dialogmeldinger (about 4.4 KB), spread over the receivers."""
    run = uuid.uuid4().hex[:8]
    return [dialog(f"{run}-{n}", receiver=RECEIVERS[n % len(RECEIVERS)]) for n in range(count)]


@asynccontextmanager
async def installation_parts() -> AsyncIterator[tuple[Bus, BackboneStore]]:
    async with AsyncExitStack() as stack:
        yield await open_bus_and_store(BackboneSettings(), stack)


async def produce_paced(bus: Bus, payloads: list[bytes], rate_per_s: float) -> None:
    """Write the documents to edi.inbound at about the given rate, waiting out a broker that is away."""
    began = time.monotonic()
    for n, payload in enumerate(payloads):
        delay = began + n / rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            try:
                await bus.produce(INBOUND, payload, key=SENDER.encode() + str(n % 12).encode())
                break
            except BusUnavailableError:
                await asyncio.sleep(0.5)


async def mailbox_rows(store: BackboneStore) -> list[tuple[uuid.UUID, str]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(sa.select(t.mailbox.c.message_id, t.mailbox.c.receiver_her_id))
        return [(row.message_id, row.receiver_her_id) for row in rows]


async def new_message_notifications(store: BackboneStore) -> int:
    async with store.engine.connect() as connection:
        return int((await connection.execute(sa.select(sa.func.count()).select_from(t.notifications).where(
            t.notifications.c.kind == NotificationKind.NEW_MESSAGE.value))).scalar_one())


async def settle(store: BackboneStore, expected: int, processes: list[ServiceProcess]) -> list[tuple[uuid.UUID, str]]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while len(rows := await mailbox_rows(store)) < expected:
        for process in processes:
            assert process.alive(), f"{process.services} died:\n{process.tail()}"
        assert time.monotonic() < deadline, f"only {len(rows)} of {expected} delivered"
        await asyncio.sleep(0.5)
    await asyncio.sleep(3.0)  # a redelivery after the last kill would show up now
    return await mailbox_rows(store)


def report(title: str, payloads: list[bytes], rows: list[tuple[uuid.UUID, str]], notifications: int) -> None:
    expected = {(content_message_id(p), RECEIVERS[n % len(RECEIVERS)]) for n, p in enumerate(payloads)}
    found = set(rows)
    print(f"\n{title}")
    print(f"  messages sent:               {len(payloads)}")
    print(f"  mailbox rows:                {len(rows)}")
    print(f"  distinct (message, receiver): {len(found)}")
    print(f"  missing:                     {len(expected - found)}")
    print(f"  unexpected:                  {len(found - expected)}")
    print(f"  NewMessage notifications:    {notifications}")
    assert len(rows) == len(found) == len(payloads), "a message is missing or twice in a mailbox"
    assert found == expected
    assert notifications == len(payloads), "a delivery was announced twice or not at all"


async def test_router_and_mailbox_killed_mid_stream_lose_nothing_and_deliver_nothing_twice(
    installation: dict[str, str], bus_kind: str, tmp_path: Path,
) -> None:
    await seed_registry([*(party(r, DIALOG_SPEC) for r in RECEIVERS), party(SENDER, *APPRECS)])
    payloads = documents(MESSAGES)
    rng = random.Random()
    seed = rng.randrange(1 << 32)
    rng.seed(seed)
    steady = ServiceProcess(["registry-relay", "validator", "status", "receipts"], tmp_path)
    router = ServiceProcess(["router"], tmp_path)
    mailbox = ServiceProcess(["mailbox"], tmp_path)
    processes = [steady, router, mailbox]
    async with installation_parts() as (bus, store):
        for process in processes:
            await process.start()
        try:
            producing = asyncio.create_task(produce_paced(bus, payloads, RATE_PER_S))
            victims = [router, mailbox] * KILLS_PER_SERVICE
            rng.shuffle(victims)
            # Each kill when the flow has reached a random point between 5 % and 90 % of the messages delivered.
            moments = sorted(rng.sample(range(MESSAGES // 20, MESSAGES * 9 // 10), len(victims)))
            kills = []
            for victim, moment in zip(victims, moments, strict=True):
                while (delivered := len(await mailbox_rows(store))) < moment:
                    await asyncio.sleep(0.05)
                await victim.kill()
                kills.append(f"{victim.services[0]}@{delivered}")
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                await victim.start()
            await producing
            rows = await settle(store, MESSAGES, processes)
            notifications = await new_message_notifications(store)
        finally:
            for process in processes:
                await process.stop()
    report(f"{bus_kind} bus: router killed {router.kills}x and mailbox {mailbox.kills}x with SIGKILL (random seed "
           f"{seed}; service@messages delivered when killed: {', '.join(kills)})", payloads, rows, notifications)


@pytest.mark.kafka
@pytest.mark.parametrize("bus_kind", ["kafka"])
async def test_the_broker_stopped_and_restarted_mid_stream_services_reconnect_and_lose_nothing(
    installation: dict[str, str], controllable_kafka_broker: KafkaBroker, tmp_path: Path,
) -> None:
    await seed_registry([*(party(r, DIALOG_SPEC) for r in RECEIVERS), party(SENDER, *APPRECS)])
    count = 3000
    payloads = documents(count)
    services = ServiceProcess(["registry-relay", "validator", "router", "mailbox", "status", "receipts"], tmp_path)
    async with installation_parts() as (bus, store):
        await services.start()
        try:
            producing = asyncio.create_task(produce_paced(bus, payloads, 300.0))
            while len(await mailbox_rows(store)) < count // 4:
                await asyncio.sleep(0.2)
            before = len(await mailbox_rows(store))
            await controllable_kafka_broker.stop_async()
            await asyncio.sleep(5.0)
            during = len(await mailbox_rows(store))
            await controllable_kafka_broker.start_async()
            restarted = time.monotonic()
            await producing
            rows = await settle(store, count, [services])
            finished_s = time.monotonic() - restarted
            notifications = await new_message_notifications(store)
        finally:
            await services.stop()
    report(f"kafka broker stopped for 5 s with {before} of {count} delivered ({during} when it came back); "
           f"all delivered {finished_s:.0f} s after the restart", payloads, rows, notifications)
