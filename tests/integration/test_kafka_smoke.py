"""Smoke tests for the session's Kafka broker: a produce/consume/commit round trip, and a stop/start."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.kafka import KafkaBroker

pytestmark = pytest.mark.kafka

CONSUME_TIMEOUT_S = 30.0


async def create_topic(bootstrap: str, partitions: int) -> str:
    topic = f"edi-smoke-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return topic


# Clients are opened inside each test rather than by async fixtures, so they live on the test's own loop.
@contextlib.asynccontextmanager
async def started_producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def started_group_consumer(bootstrap: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"edi-smoke-{uuid.uuid4().hex[:12]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def consume(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Exactly `count` records, or a timeout failure naming how many arrived."""
    records: list[ConsumerRecord[bytes, bytes]] = []

    async def fill() -> None:
        while len(records) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            records.extend(record for batch in batches.values() for record in batch)

    try:
        await asyncio.wait_for(fill(), CONSUME_TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"consumed {len(records)} of {count} records within {CONSUME_TIMEOUT_S:.0f}s")
    assert len(records) == count, f"expected {count} records, got {len(records)}"
    return records


async def test_produce_consume_and_commit(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=3)
    sent = {
        f"her-{n}".encode(): (f"msg-{n}".encode(), [("msg-id", uuid.uuid4().bytes), ("kind", b"dialog")])
        for n in range(5)
    }
    last_offsets: dict[TopicPartition, int] = {}
    async with started_producer(kafka_bootstrap) as producer:
        for key, (value, headers) in sent.items():
            meta = await producer.send_and_wait(topic, value, key=key, headers=headers)
            tp = TopicPartition(topic, meta.partition)
            last_offsets[tp] = max(meta.offset, last_offsets.get(tp, -1))

    async with started_group_consumer(kafka_bootstrap, topic) as consumer:
        records = await consume(consumer, len(sent))
        assert {r.key: (r.value, list(r.headers)) for r in records} == sent

        await consumer.commit()
        for tp, offset in last_offsets.items():
            # The committed offset is the next one to read: one past the last consumed record.
            assert await consumer.committed(tp) == offset + 1


async def test_record_survives_broker_restart(
    controllable_kafka_broker: KafkaBroker, kafka_bootstrap: str
) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=1)
    async with started_producer(kafka_bootstrap) as producer:
        await producer.send_and_wait(topic, b"before-restart", key=b"her-1")

    await controllable_kafka_broker.stop_async()
    await controllable_kafka_broker.start_async()

    async with started_group_consumer(kafka_bootstrap, topic) as consumer:
        [record] = await consume(consumer, 1)
        assert (record.key, record.value) == (b"her-1", b"before-restart")
