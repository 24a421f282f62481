"""A bus seen through a namespace: every topic and consumer group gets a prefix, so that several installations
(test and production, or many test runs) can share one Kafka cluster without reading each other's records.

The services never see the prefix: records come back with the topic names of `edi.schemas.topics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from edi.adapters.bus import Ack, Bus, Consumer, Headers, Record, RevokeHook, TopicPartition
from edi.schemas.topics import TopicSpec


class NamespacedBus:
    def __init__(self, bus: Bus, namespace: str) -> None:
        self._bus = bus
        self._prefix = f"{namespace}."

    def outer(self, topic: str) -> str:
        return self._prefix + topic

    def inner(self, topic: str) -> str:
        return topic.removeprefix(self._prefix)

    async def start(self) -> None:
        await self._bus.start()

    async def close(self) -> None:
        await self._bus.close()

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        await self._bus.ensure_topics([dataclasses.replace(spec, name=self.outer(spec.name)) for spec in specs])

    async def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Ack:
        ack = await self._bus.produce(self.outer(topic), value, key=key, headers=headers)
        return Ack(topic, ack.partition, ack.offset)

    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> Consumer:
        async def revoked(partitions: frozenset[TopicPartition]) -> None:
            if on_revoked is not None:
                await on_revoked(frozenset(self.inner_tp(tp) for tp in partitions))

        consumer = await self._bus.subscribe(
            self.outer(group_id), [self.outer(topic) for topic in topics], on_revoked=revoked
        )
        return _NamespacedConsumer(consumer, self)

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        ends = await self._bus.end_offsets([self.outer(topic) for topic in topics])
        return {self.inner_tp(tp): offset for tp, offset in ends.items()}

    def inner_tp(self, tp: TopicPartition) -> TopicPartition:
        return TopicPartition(self.inner(tp.topic), tp.partition)

    def outer_tp(self, tp: TopicPartition) -> TopicPartition:
        return TopicPartition(self.outer(tp.topic), tp.partition)


class _NamespacedConsumer:
    def __init__(self, consumer: Consumer, bus: NamespacedBus) -> None:
        self._consumer = consumer
        self._bus = bus

    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        records = await self._consumer.poll(max_records=max_records, timeout_s=timeout_s)
        return [dataclasses.replace(record, topic=self._bus.inner(record.topic)) for record in records]

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._bus.inner_tp(tp) for tp in self._consumer.assignment())

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> frozenset[TopicPartition]:
        committed = await self._consumer.commit({self._bus.outer_tp(tp): o for tp, o in offsets.items()})
        return frozenset(self._bus.inner_tp(tp) for tp in committed)

    async def close(self) -> None:
        await self._consumer.close()
