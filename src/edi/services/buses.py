"""How the backbone's processes see the bus: through a namespace when one is configured, and always with fair
batches.

`NamespacedBus`: every topic and consumer group gets a prefix, so that several installations (test and
production, or many test runs) can share one Kafka cluster without reading each other's records. The services
never see the prefix: records come back with the topic names of `edi.schemas.topics`.

`FairBus`: both adapters fill a poll from one partition before the next (aiokafka drains one partition's fetched
records first; the embedded log reads one partition up to the limit), so with a backlog a batch is one partition,
which the runtime must handle record after record, each waiting for its outputs' acknowledgement. Its consumers
read ahead into a bounded buffer and hand out batches that take records from every partition in turn, so the
runtime's per-partition concurrency is used. The order within a partition is kept; records read ahead are not
committed until the runtime has handled them, and those of a partition taken away by a rebalance are dropped
(its next owner reads them again from the committed offset).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from edi.adapters.bus import Ack, Bus, Consumer, Headers, Record, RevokeHook, TopicPartition
from edi.adapters.bus.port import DelegatingBus
from edi.schemas.topics import TopicSpec


class NamespacedBus(DelegatingBus):
    def __init__(self, bus: Bus, namespace: str) -> None:
        super().__init__(bus)
        self._prefix = f"{namespace}."

    def outer(self, topic: str) -> str:
        return self._prefix + topic

    def inner(self, topic: str) -> str:
        return topic.removeprefix(self._prefix)

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


# A fair consumer reads ahead up to this many records, fetching this many at a time.
READ_AHEAD = 3000
FETCH = 500


class FairBus(DelegatingBus):
    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> Consumer:
        fair = FairConsumer(on_revoked)
        fair.attach(await self._bus.subscribe(group_id, topics, on_revoked=fair.revoked))
        return fair


class FairConsumer:
    def __init__(self, on_revoked: RevokeHook | None) -> None:
        self._on_revoked = on_revoked
        self._consumer: Consumer | None = None
        self._buffer: dict[TopicPartition, deque[Record]] = {}

    def attach(self, consumer: Consumer) -> None:
        self._consumer = consumer

    async def revoked(self, partitions: frozenset[TopicPartition]) -> None:
        for tp in partitions:
            self._buffer.pop(tp, None)
        if self._on_revoked is not None:
            await self._on_revoked(partitions)

    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        consumer = self._require()
        buffered = sum(map(len, self._buffer.values()))
        wait_s = 0.0 if buffered else timeout_s
        # Several fetches, since each may bring one partition only; the first waits when there is nothing yet.
        while buffered < READ_AHEAD:
            fetched = await consumer.poll(max_records=FETCH, timeout_s=wait_s)
            if not fetched:
                break
            for record in fetched:
                self._buffer.setdefault(record.topic_partition, deque()).append(record)
            buffered += len(fetched)
            wait_s = 0.0
        batch: list[Record] = []
        while len(batch) < max_records and self._buffer:
            for tp in list(self._buffer):
                queue = self._buffer[tp]
                batch.append(queue.popleft())
                if not queue:
                    del self._buffer[tp]
                if len(batch) == max_records:
                    break
        return batch

    def assignment(self) -> frozenset[TopicPartition]:
        return self._require().assignment()

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> frozenset[TopicPartition]:
        return await self._require().commit(offsets)

    async def close(self) -> None:
        self._buffer.clear()
        await self._require().close()

    def _require(self) -> Consumer:
        assert self._consumer is not None, "a FairConsumer is attached to its consumer when subscribed"
        return self._consumer
