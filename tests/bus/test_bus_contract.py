"""The Bus contract: the same tests on the embedded SQLite bus and on a real Kafka broker."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest

from edi.adapters.bus import Bus, Record, TopicPartition, UnknownTopicError
from edi.adapters.bus.partitioner import partition_for_key
from tests.bus.conftest import BusFactory, consume, group, new_topic


def by_partition(records: list[Record]) -> dict[int, list[Record]]:
    grouped: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        grouped[record.partition].append(record)
    return grouped


async def test_produced_records_come_back_in_order_per_partition_with_key_headers_and_tombstones(
    bus: Bus,
) -> None:
    topic = await new_topic(bus, partitions=3)
    sent = [(f"her-{n % 4}".encode(), f"value-{n}".encode()) for n in range(12)]
    acks = [
        await bus.produce(topic, value, key=key, headers=(("edi-message-id", key), ("traceparent", b"00-x")))
        for key, value in sent
    ]
    tombstone = await bus.produce(topic, None, key=b"her-0")

    # Kafka's default partitioner on both buses: the same key, the same partition.
    assert [ack.partition for ack in acks] == [partition_for_key(key, 3) for key, _ in sent]
    consumer = await bus.subscribe(group(), [topic])
    records = await consume(consumer, len(sent) + 1)

    for partition, in_partition in by_partition(records).items():
        offsets = [record.offset for record in in_partition]
        assert offsets == sorted(offsets), f"partition {partition} out of order"
    assert {(r.key, r.value) for r in records} == {*sent, (b"her-0", None)}
    first = next(r for r in records if r.offset == acks[0].offset and r.partition == acks[0].partition)
    assert first.headers == (("edi-message-id", b"her-0"), ("traceparent", b"00-x"))
    assert first.timestamp_ms > 0
    assert any(r.value is None and r.offset == tombstone.offset for r in records)


async def test_a_group_resumes_after_its_committed_offsets_and_gets_uncommitted_records_again(
    bus: Bus,
) -> None:
    topic = await new_topic(bus, partitions=1)
    for n in range(6):
        await bus.produce(topic, f"v{n}".encode(), key=b"k")
    tp = TopicPartition(topic, 0)
    name = group()

    first = await bus.subscribe(name, [topic])
    records = await consume(first, 6)
    # Processed all six, but only the first four were committed: the member then dies.
    assert await first.commit({tp: records[3].offset + 1}) == {tp}
    await first.close()

    second = await bus.subscribe(name, [topic])
    again = await consume(second, 2)
    assert [r.value for r in again] == [b"v4", b"v5"]


async def test_every_group_reads_every_record(bus: Bus) -> None:
    topic = await new_topic(bus, partitions=2)
    for n in range(4):
        await bus.produce(topic, f"v{n}".encode(), key=f"k{n}".encode())
    one, two = await bus.subscribe(group(), [topic]), await bus.subscribe(group(), [topic])
    assert {r.value for r in await consume(one, 4)} == {r.value for r in await consume(two, 4)}


async def test_members_of_one_group_share_the_partitions(make_bus: BusFactory) -> None:
    # Two buses on one cluster or file: two processes of the same service.
    bus_a, bus_b = await make_bus(), await make_bus()
    topic = await new_topic(bus_a, partitions=4)
    name = group()
    revoked: list[frozenset[TopicPartition]] = []

    async def on_revoked(partitions: frozenset[TopicPartition]) -> None:
        revoked.append(partitions)

    member_a = await bus_a.subscribe(name, [topic], on_revoked=on_revoked)
    await member_a.poll(max_records=1, timeout_s=1.0)  # joins and takes all four partitions
    member_b = await bus_b.subscribe(name, [topic])

    # Each member sees its new assignment when it handles the rebalance: until both have, their views may overlap
    # for a moment (on Kafka, B's sync can complete before A has processed its own).
    async def rebalanced() -> None:
        while (
            not (member_a.assignment() and member_b.assignment())
            or len(member_a.assignment() | member_b.assignment()) < 4
            or member_a.assignment() & member_b.assignment()
        ):
            await member_a.poll(max_records=1, timeout_s=0.2)
            await member_b.poll(max_records=1, timeout_s=0.2)

    await asyncio.wait_for(rebalanced(), 30)
    assert not member_a.assignment() & member_b.assignment()
    assert revoked, "member A was not told that partitions were taken away"
    # What A no longer owns, A can no longer commit.
    taken = next(iter(member_b.assignment()))
    assert await member_a.commit({taken: 0}) == frozenset()

    for n in range(20):
        await bus_a.produce(topic, f"v{n}".encode(), key=f"k{n}".encode())
    seen: list[Record] = []

    async def drain() -> None:
        while len({r.value for r in seen}) < 20:
            seen.extend(await member_a.poll(max_records=100, timeout_s=0.2))
            seen.extend(await member_b.poll(max_records=100, timeout_s=0.2))

    await asyncio.wait_for(drain(), 30)
    # A set: should the group rebalance again meanwhile (a slow machine missing a heartbeat), uncommitted
    # records are read again, as at-least-once allows.
    assert {r.value for r in seen} == {f"v{n}".encode() for n in range(20)}


async def test_end_offsets_say_where_the_next_record_of_each_partition_goes(bus: Bus) -> None:
    topic = await new_topic(bus, partitions=2)
    assert await bus.end_offsets([topic]) == {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
    acks = [await bus.produce(topic, f"v{n}".encode(), key=f"k{n}".encode()) for n in range(5)]
    ends = await bus.end_offsets([topic])
    for partition in (0, 1):
        written = [ack.offset for ack in acks if ack.partition == partition]
        assert ends[TopicPartition(topic, partition)] == (max(written) + 1 if written else 0)
    with pytest.raises(UnknownTopicError):
        await bus.end_offsets([f"test.missing.{uuid.uuid4().hex[:8]}"])
