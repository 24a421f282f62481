"""A Kafka producer that died for good (aiokafka's sender task ended, as OUT_OF_ORDER_SEQUENCE_NUMBER does after a
broker restart) is replaced: the produce caught in it is reported as transient, and the retry is stored."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from edi.adapters.bus import BusUnavailableError
from edi.adapters.bus.kafka import KafkaBus
from tests.bus.conftest import consume, group, new_topic

pytestmark = pytest.mark.kafka


async def _fail(exc: BaseException) -> None:
    raise exc


async def test_a_producer_whose_sender_died_is_replaced_and_the_retry_is_stored(kafka_bootstrap: str) -> None:
    bus = KafkaBus(kafka_bootstrap)
    await bus.start()
    try:
        topic = await new_topic(bus, partitions=1)
        await bus.produce(topic, b"before", key=b"k")
        producer = bus._producer
        # What aiokafka's sender does on a fatal broker answer: its task ends with the error.
        sender = producer._sender
        sender._sender_task.cancel()
        dead = asyncio.ensure_future(_fail(OutOfOrderSequenceNumber()))
        await asyncio.gather(dead, return_exceptions=True)
        sender._sender_task = dead

        await bus.produce(topic, b"after", key=b"k")  # goes through a new producer

        assert bus._producer is not producer
        consumer = await bus.subscribe(group(), [topic])
        try:
            assert [r.value for r in await consume(consumer, 2)] == [b"before", b"after"]
        finally:
            await consumer.close()
    finally:
        await bus.close()


async def test_a_produce_caught_in_a_dying_producer_is_transient(kafka_bootstrap: str) -> None:
    bus = KafkaBus(kafka_bootstrap)
    await bus.start()
    try:
        topic = await new_topic(bus, partitions=1)
        producer = bus._producer

        async def dies(*args: object, **kwargs: object) -> None:
            producer._sender._sender_task.cancel()
            dead = asyncio.ensure_future(_fail(OutOfOrderSequenceNumber()))
            await asyncio.gather(dead, return_exceptions=True)
            producer._sender._sender_task = dead
            raise OutOfOrderSequenceNumber()

        producer.send_and_wait = dies
        with pytest.raises(BusUnavailableError):
            await bus.produce(topic, b"lost?", key=b"k")
        await bus.produce(topic, b"retried", key=b"k")
        assert bus._producer is not producer
    finally:
        await bus.close()
