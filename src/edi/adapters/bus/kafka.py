"""The Bus port on Apache Kafka, through aiokafka.

Producer: acks=all and idempotent, so an acknowledged record is on every in-sync replica and the client's own
retries never write it twice. An idempotent producer can die for good (after a broker restart the broker may answer
OUT_OF_ORDER_SEQUENCE_NUMBER, which ends aiokafka's sender task): the bus then replaces it with a fresh one and
reports the failed produce as transient, so the caller's retry goes through the new producer.

Consumers: group members with auto-commit off; the runtime commits explicitly,
and only for partitions this member still owns (a rebalance or an expired session makes the broker refuse
the commit with `CommitFailedError`, which here means "not committed", not a failure: the records will be
delivered again to the partition's new owner).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    InvalidProducerEpoch,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from edi.adapters.bus.port import (
    Ack,
    BusError,
    BusUnavailableError,
    Headers,
    Record,
    RevokeHook,
    TopicPartition,
    UnknownTopicError,
)
from edi.schemas.topics import TopicSpec

log = structlog.get_logger(__name__)

# Without an explicit replication factor, topics get this many replicas, or fewer on a smaller cluster.
_DEFAULT_REPLICATION = 3


def _bus_error(exc: KafkaError, doing: str) -> BusError:
    # aiokafka flags the errors worth retrying; a timeout is always worth it (the broker may be restarting).
    transient = isinstance(exc, KafkaTimeoutError) or getattr(exc, "retriable", False)
    return (BusUnavailableError if transient else BusError)(f"Kafka {doing}: {exc!r}")


# Broker answers after which an idempotent producer's sequence numbers are lost: only a new producer gets on.
_PRODUCER_FATAL = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch)


def _sender_died(producer: Any) -> bool:
    # aiokafka has no public health check; its sender task ends only on a fatal error or at stop().
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


def _topic_configs(spec: TopicSpec) -> dict[str, str]:
    if spec.compacted:
        return {"cleanup.policy": "compact"}
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(spec.retention_ms if spec.retention_ms is not None else -1),
    }


class KafkaBus:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "edi",
        replication_factor: int | None = None,
        request_timeout_s: float = 30.0,
        session_timeout_s: float = 10.0,
        linger_ms: int = 5,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self._linger_ms = linger_ms
        self._client_id = client_id
        self._replication_factor = replication_factor
        self._request_timeout_ms = int(request_timeout_s * 1000)
        self._session_timeout_ms = int(session_timeout_s * 1000)
        self._producer: Any = None
        self._started = False
        self._producer_lock = asyncio.Lock()
        self._producer_failed = False  # replace the producer before the next produce
        self._offsets_reader: Any = None  # a consumer outside any group, only to look up end offsets

    async def start(self) -> None:
        self._producer = await self._new_producer()
        self._started = True

    async def _new_producer(self) -> Any:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            # aiokafka's 16 KB default holds two 8 KB messages; half the broker's default batch limit (1 MB) lets
            # a busy partition send many records per request.
            max_batch_size=512 * 1024,
            request_timeout_ms=self._request_timeout_ms,
            retry_backoff_ms=200,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise _bus_error(exc, "producer start") from exc
        return producer

    def _broken(self, producer: Any) -> bool:
        return self._producer_failed or _sender_died(producer)

    async def _live_producer(self) -> Any:
        """The producer, replaced first if its sender has died (see the module docstring)."""
        if not self._started:
            raise BusError("Kafka bus is not started")
        async with self._producer_lock:
            if self._producer is not None and self._broken(self._producer):
                log.warning("Kafka producer failed for good, replacing it")
                dead, self._producer, self._producer_failed = self._producer, None, False
                with contextlib.suppress(KafkaError):
                    await dead.stop()
            if self._producer is None:
                self._producer = await self._new_producer()
            return self._producer

    async def close(self) -> None:
        self._started = False
        if self._offsets_reader is not None:
            await self._offsets_reader.stop()
            self._offsets_reader = None
        if self._producer is not None:
            await self._producer.stop()  # flushes what is still in flight
            self._producer = None

    async def ensure_topics(self, specs: Iterable[TopicSpec]) -> None:
        specs = tuple(specs)
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self._client_id,
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            await admin.start()
            existing = {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics()}
            for spec in specs:
                actual = existing.get(spec.name)
                if actual is not None and actual != spec.partitions:
                    log.warning(
                        "topic has other partition count", topic=spec.name, wanted=spec.partitions, actual=actual
                    )
            missing = [spec for spec in specs if spec.name not in existing]
            if missing:
                replication = self._replication_factor or min(
                    _DEFAULT_REPLICATION, len((await admin.describe_cluster())["brokers"])
                )
                response = await admin.create_topics(
                    [
                        NewTopic(spec.name, spec.partitions, replication, topic_configs=_topic_configs(spec))
                        for spec in missing
                    ]
                )
                # (topic, error_code) in v0, (topic, error_code, error_message) later.
                for topic, code, *message in response.topic_errors:
                    # Another instance starting at the same time may have created it first.
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise BusError(f"creating Kafka topic {topic} failed: error {code} {message}")
                log.info("created topics", topics=[spec.name for spec in missing], replication=replication)
        except KafkaError as exc:
            raise _bus_error(exc, "topic admin") from exc
        finally:
            await admin.close()

    async def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Ack:
        producer = self._producer  # checked here, without the lock and a coroutine, in the common case
        if producer is None or not self._started or self._broken(producer):
            producer = await self._live_producer()
        try:
            metadata = await producer.send_and_wait(topic, value, key=key, headers=list(headers))
        except KafkaError as exc:
            if isinstance(exc, _PRODUCER_FATAL) or _sender_died(producer):
                if producer is self._producer:
                    self._producer_failed = True
                # Whether the broker kept the record is unknown: retrying may store it twice, which the
                # consumers' idempotence absorbs; not retrying could lose it.
                raise BusUnavailableError(f"Kafka produce to {topic}: producer failed: {exc!r}") from exc
            raise _bus_error(exc, f"produce to {topic}") from exc
        return Ack(metadata.topic, metadata.partition, metadata.offset)

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self._client_id,
            request_timeout_ms=self._request_timeout_ms,
        )
        try:
            await admin.start()
            described = {topic["topic"]: topic["partitions"] for topic in await admin.describe_topics(list(topics))}
            if self._offsets_reader is None:
                reader = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap_servers,
                    client_id=self._client_id,
                    request_timeout_ms=self._request_timeout_ms,
                    enable_auto_commit=False,
                )
                await reader.start()
                self._offsets_reader = reader
            partitions: list[KafkaTopicPartition] = []
            for topic in topics:
                if not described.get(topic):
                    raise UnknownTopicError(topic)
                partitions.extend(KafkaTopicPartition(topic, p["partition"]) for p in described[topic])
            ends = await self._offsets_reader.end_offsets(partitions)
        except KafkaError as exc:
            raise _bus_error(exc, "end offsets") from exc
        finally:
            await admin.close()
        return {TopicPartition(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> KafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self._client_id,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group reads what was produced before it first started
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=self._session_timeout_ms // 3,
            request_timeout_ms=self._request_timeout_ms,
            retry_backoff_ms=200,
        )
        consumer.subscribe(list(topics), listener=_RevokeListener(on_revoked))
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise _bus_error(exc, "consumer start") from exc
        return KafkaConsumer(consumer, self._request_timeout_ms / 1000)


class _RevokeListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: RevokeHook | None) -> None:
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        # aiokafka waits for this before rejoining the group, so commits made here land before another member
        # is given the partitions.
        partitions = frozenset(TopicPartition(tp.topic, tp.partition) for tp in revoked)
        if partitions and self._on_revoked is not None:
            await self._on_revoked(partitions)

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        pass


class KafkaConsumer:
    def __init__(self, consumer: Any, commit_timeout_s: float) -> None:
        self._consumer = consumer
        self._commit_timeout_s = commit_timeout_s

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(TopicPartition(tp.topic, tp.partition) for tp in self._consumer.assignment())

    async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        try:
            batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise _bus_error(exc, "fetch") from exc
        return [
            Record(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers), r.timestamp)
            for records in batches.values()
            for r in records
        ]

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> frozenset[TopicPartition]:
        owned = {tp: offset for tp, offset in offsets.items() if tp in self.assignment()}
        if not owned:
            return frozenset()
        try:
            # aiokafka retries a commit by itself while the coordinator is unreachable; the timeout hands the
            # decision back to the caller (which may be shutting down).
            await asyncio.wait_for(
                self._consumer.commit({KafkaTopicPartition(tp.topic, tp.partition): o for tp, o in owned.items()}),
                self._commit_timeout_s,
            )
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("commit refused, partitions moved to another member", error=str(exc))
            return frozenset()
        except TimeoutError as exc:
            raise BusUnavailableError("Kafka commit timed out") from exc
        except KafkaError as exc:
            raise _bus_error(exc, "commit") from exc
        return frozenset(owned)

    async def close(self) -> None:
        await self._consumer.stop()
