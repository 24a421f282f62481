"""What only the embedded bus has to show: its file survives a restart, same-process consumers wake at once,
and its log cleaner applies retention and compaction."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from edi.adapters.bus import EmbeddedBus, TopicPartition, UnknownTopicError
from edi.schemas.topics import TopicSpec
from tests.bus.conftest import consume

DAY_MS = 24 * 60 * 60 * 1000


async def started(path: Path) -> EmbeddedBus:
    bus = EmbeddedBus(path)
    await bus.start()
    return bus


async def test_records_and_committed_offsets_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = await started(path)
    await bus.ensure_topics([TopicSpec("t", 2, retention_ms=None)])
    acks = [await bus.produce("t", f"v{n}".encode(), key=f"k{n}".encode()) for n in range(6)]
    consumer = await bus.subscribe("g", ["t"])
    records = await consume(consumer, 6)
    # Commit everything of one partition, nothing of the other.
    done = records[0].partition
    last = max(r.offset for r in records if r.partition == done)
    await consumer.commit({TopicPartition("t", done): last + 1})
    await bus.close()

    bus = await started(path)
    try:
        consumer = await bus.subscribe("g", ["t"])
        again = await consume(consumer, sum(1 for ack in acks if ack.partition != done))
        assert {r.partition for r in again} == {1 - done}
        # Offsets continue where they were: a new record does not reuse an old offset.
        ack = await bus.produce("t", b"after", key=b"k0")
        assert ack.offset == max(a.offset for a in acks if a.partition == ack.partition) + 1
    finally:
        await bus.close()


async def test_a_waiting_consumer_wakes_as_soon_as_a_record_is_produced(tmp_path: Path) -> None:
    bus = await started(tmp_path / "bus.sqlite3")
    try:
        await bus.ensure_topics([TopicSpec("t", 1, retention_ms=None)])
        consumer = await bus.subscribe("g", ["t"])
        assert await consumer.poll(max_records=10, timeout_s=0.1) == []

        async def produce_later() -> None:
            await bus.produce("t", b"v")

        task = asyncio.create_task(produce_later())
        began = time.monotonic()
        records = await consumer.poll(max_records=10, timeout_s=5.0)
        await task
        assert [r.value for r in records] == [b"v"]
        assert time.monotonic() - began < 0.2  # woken, not found by the 0.25 s cross-process poll
    finally:
        await bus.close()


async def test_housekeeping_applies_retention_and_compaction(tmp_path: Path) -> None:
    bus = await started(tmp_path / "bus.sqlite3")
    try:
        await bus.ensure_topics([
            TopicSpec("short", 1, retention_ms=DAY_MS),
            TopicSpec("registry", 1, retention_ms=None, compacted=True),
        ])  # fmt: skip
        await bus.produce("short", b"old")
        for version in (b"v1", b"v2", b"v3"):
            await bus.produce("registry", version, key=b"party-1")
        await bus.produce("registry", b"only", key=b"party-2")

        # Two days on, the short-lived record has expired; the registry keeps each key's newest record.
        assert await bus.housekeeping(now_ms=time.time_ns() // 1_000_000 + 2 * DAY_MS) == 3
        consumer = await bus.subscribe("g", ["short", "registry"])
        records = await consume(consumer, 2)
        assert {(r.key, r.value) for r in records} == {(b"party-1", b"v3"), (b"party-2", b"only")}
    finally:
        await bus.close()


async def test_producing_to_a_topic_that_was_never_created_fails(tmp_path: Path) -> None:
    bus = await started(tmp_path / "bus.sqlite3")
    try:
        with pytest.raises(UnknownTopicError):
            await bus.produce("nope", b"v")
    finally:
        await bus.close()
