"""Buses for the contract suite: every test taking `bus_kind` runs on the embedded bus and on the real Kafka
broker the session starts (those runs are marked `kafka`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from edi.adapters.bus import Bus, Consumer, EmbeddedBus, KafkaBus, Record
from edi.schemas.topics import TopicSpec

# Kafka's smallest allowed group session (group.min.session.timeout.ms): a rebalance after a member joins
# waits for the others' next heartbeat, a third of this.
SESSION_TIMEOUT_S = 6.0
CONSUME_TIMEOUT_S = 30.0

BusFactory = Callable[[], Awaitable[Bus]]


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bus_target(request: pytest.FixtureRequest, bus_kind: str, tmp_path: Path) -> str:
    """Where the buses of one test meet: the Kafka bootstrap servers, or one SQLite file."""
    if bus_kind == "kafka":
        return str(request.getfixturevalue("kafka_bootstrap"))
    return str(tmp_path / "bus.sqlite3")


# Function loop scope: the buses' tasks and connections must live on the test's own event loop.
@pytest_asyncio.fixture(loop_scope="function")
async def make_bus(bus_kind: str, bus_target: str) -> AsyncIterator[BusFactory]:
    """Starts buses on the same Kafka cluster or SQLite file (two buses: two processes); closes them after."""
    opened: list[Bus] = []

    async def make() -> Bus:
        bus: Bus
        if bus_kind == "kafka":
            bus = KafkaBus(bus_target, replication_factor=1, session_timeout_s=SESSION_TIMEOUT_S)
        else:
            bus = EmbeddedBus(Path(bus_target), session_timeout_s=SESSION_TIMEOUT_S)
        await bus.start()
        opened.append(bus)
        return bus

    yield make
    for bus in reversed(opened):
        await bus.close()


@pytest_asyncio.fixture(loop_scope="function")
async def bus(make_bus: BusFactory) -> Bus:
    return await make_bus()


async def new_topic(bus: Bus, partitions: int = 3, *, compacted: bool = False) -> str:
    """A fresh topic: the Kafka broker is shared by the whole session."""
    name = f"test.{uuid.uuid4().hex[:12]}"
    await bus.ensure_topics([TopicSpec(name, partitions, retention_ms=None, compacted=compacted)])
    return name


async def consume(consumer: Consumer, count: int, timeout_s: float = CONSUME_TIMEOUT_S) -> list[Record]:
    """Exactly `count` records (fails naming how many came), then a short look for unexpected extra ones."""
    records: list[Record] = []

    async def fill() -> None:
        while len(records) < count:
            records.extend(await consumer.poll(max_records=100, timeout_s=0.5))

    try:
        await asyncio.wait_for(fill(), timeout_s)
    except TimeoutError:
        pytest.fail(f"consumed {len(records)} of {count} records within {timeout_s:.0f}s")
    records.extend(await consumer.poll(max_records=100, timeout_s=0.2))
    assert len(records) == count, f"expected {count} records, got {len(records)}"
    return records


def group() -> str:
    return f"test-group-{uuid.uuid4().hex[:12]}"
