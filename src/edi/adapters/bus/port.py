"""The Bus port: a partitioned, durable log with consumer groups, as the services see it.

Two adapters implement it with the same semantics: Apache Kafka (`kafka.py`) and an embedded SQLite log
(`embedded.py`). What both guarantee:

- `produce` returns only once the record is durably stored (Kafka: acks=all), with its partition and offset;
  a record with a key goes to `murmur2(key) % partitions`, the Java client's default, so a key lands on the
  same partition on both adapters.
- A consumer is a member of a group; the group's members share the partitions of the subscribed topics, and
  each partition is read in order. A group with no committed offset for a partition starts at its beginning.
- Offsets are committed explicitly, never automatically, and only for partitions the member still owns: what
  was not committed is delivered again (at-least-once), to this member or to the partition's next owner.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edi.schemas.topics import TopicSpec

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None is a tombstone (deletes the key from a compacted topic)
    headers: Headers
    timestamp_ms: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(frozen=True, slots=True)
class Ack:
    """Where the broker stored a produced record."""

    topic: str
    partition: int
    offset: int


class BusError(Exception):
    """A bus operation failed."""


class BusUnavailableError(BusError):
    """The broker could not be reached or did not acknowledge in time: transient, worth retrying."""


class UnknownTopicError(BusError):
    """The topic does not exist (topics are created by `ensure_topics`, not on first use)."""


# Called with the partitions a rebalance takes away from this member, before any other member is given them
# (Kafka; the embedded bus calls it at the member's next poll): the last chance to commit their offsets.
RevokeHook = Callable[[frozenset[TopicPartition]], Awaitable[None]]


class Consumer(Protocol):
    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        """The next records of the assigned partitions, in order within each partition; waits up to
        `timeout_s` for the first one and returns an empty list if none comes."""
        ...

    def assignment(self) -> frozenset[TopicPartition]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> frozenset[TopicPartition]:
        """Commit, per partition, the offset of the next record to read (one past the last one processed).

        Only partitions this member still owns are committed; they are returned. Raises
        `BusUnavailableError` when the broker cannot take the commit now."""
        ...

    async def close(self) -> None:
        """Leave the group (without committing)."""
        ...


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""
        ...

    async def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Ack:
        """Store one record; returns once it is durable. Raises `BusUnavailableError` (retry) or
        `UnknownTopicError`."""
        ...

    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> Consumer:
        """Join `group_id` as a new member consuming `topics`."""
        ...

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """For every partition of `topics`, the offset the next record produced to it will get: a reader that
        has read up to these has seen everything produced before the call (how a reader of a compacted topic
        knows it has caught up). Raises `UnknownTopicError` or `BusUnavailableError`."""
        ...


class DelegatingBus:
    """A Bus that passes every call to another: the base of wrappers that change only some calls."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def start(self) -> None:
        await self._bus.start()

    async def close(self) -> None:
        await self._bus.close()

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        await self._bus.ensure_topics(specs)

    async def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Ack:
        return await self._bus.produce(topic, value, key=key, headers=headers)

    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> Consumer:
        return await self._bus.subscribe(group_id, topics, on_revoked=on_revoked)

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        return await self._bus.end_offsets(topics)
