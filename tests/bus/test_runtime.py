"""The service runtime on both buses: outputs and commits, dead letters, retries, rejections, crash and
redelivery, and the broker going away mid-stream (Kafka)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from edi.adapters.bus import Ack, Bus, Consumer, Headers, KafkaBus, Record, RevokeHook, TopicPartition
from edi.events import AcceptedMessage, DeadLetter, Delivery, ErrorDetail, Rejection, Source, default_codec
from edi.events import headers as h
from edi.events.headers import Correlation, new_traceparent
from edi.schemas.topics import ALL_TOPICS, REJECTED, TopicSpec, dead_letter_topic
from edi.services.runtime import (
    Message,
    Output,
    Poison,
    Reject,
    Result,
    Retryable,
    RetryPolicy,
    Service,
    ServiceSettings,
    run_service,
)
from tests.bus.conftest import SESSION_TIMEOUT_S, BusFactory, consume, new_topic
from tests.support.kafka import KafkaBroker

CODEC = default_codec()
SETTINGS = ServiceSettings(retry_max_attempts=3, retry_initial_delay_s=0.05, poll_timeout_s=0.2, shutdown_timeout_s=2.0)


def accepted(n: int, receivers: Sequence[str] = ("8093238",)) -> AcceptedMessage:
    return AcceptedMessage(
        message_id=uuid.uuid4(), sender_her_id="8142987", receiver_her_ids=list(receivers), msg_id=f"m{n}",
        message_type="DIALOG_FORESPORSEL", business_namespace="http://www.kith.no/xmlstds/dialog/2013-01-23",
        document=f"<MsgHead n='{n}'/>".encode(), received_at=datetime.now(UTC), source=Source.KAFKA,
    )  # fmt: skip


def deliveries(message: AcceptedMessage, topic: str) -> list[Output]:
    return [
        Output(topic, Delivery(
            message_id=message.message_id, receiver_her_id=receiver, sender_her_id=message.sender_her_id,
            msg_id=message.msg_id, message_type=message.message_type,
            business_namespace=message.business_namespace, document=message.document,
            received_at=message.received_at,
        ))
        for receiver in message.receiver_her_ids
    ]  # fmt: skip


@dataclass
class Flow:
    """A service under test between fresh topics: `source` -> handler -> `sink`, plus its dead-letter topic."""

    bus: Bus
    service: Service
    source: str
    sink: str

    @property
    def dead_letters(self) -> str:
        return dead_letter_topic(self.service.name)

    async def send(self, event: AcceptedMessage | bytes, headers: Headers = (), key: bytes = b"one-key") -> Ack:
        value = event if isinstance(event, bytes) else CODEC.encode(event)
        return await self.bus.produce(self.source, value, key=key, headers=headers)

    async def read(self, topic: str, count: int) -> list[Record]:
        consumer = await self.bus.subscribe(f"reader-{uuid.uuid4().hex[:8]}", [topic])
        try:
            return await consume(consumer, count)
        finally:
            await consumer.close()

    async def find(self, topic: str, wanted: Callable[[Record], bool], timeout_s: float = 30) -> list[Record]:
        """The records of `topic` that are `wanted`, once there is at least one (other records are skipped)."""
        consumer = await self.bus.subscribe(f"reader-{uuid.uuid4().hex[:8]}", [topic])
        found: list[Record] = []
        try:
            async with asyncio.timeout(timeout_s):
                while not found:
                    found.extend(r for r in await consumer.poll(max_records=100, timeout_s=0.5) if wanted(r))
            return found
        finally:
            await consumer.close()

    async def read_distinct(
        self, topic: str, count: int, identity: Callable[[Record], str], timeout_s: float = 60
    ) -> list[Record]:
        """Records of `topic` until `count` distinct ones came: at least once allows a record to come twice."""
        consumer = await self.bus.subscribe(f"reader-{uuid.uuid4().hex[:8]}", [topic])
        records: list[Record] = []
        try:
            async with asyncio.timeout(timeout_s):
                while len({identity(r) for r in records}) < count:
                    records.extend(await consumer.poll(max_records=100, timeout_s=0.5))
            return records
        finally:
            await consumer.close()

    async def uncommitted(self) -> list[Record]:
        """What the service's group would get next: joins it, so call it only with the service stopped."""
        consumer = await self.bus.subscribe(self.service.name, [self.source])
        try:
            return await _drain_after_join(consumer)
        finally:
            await consumer.close()

    @asynccontextmanager
    async def running(self, bus: Bus | None = None) -> AsyncIterator[asyncio.Task[None]]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_service(self.service, bus or self.bus, SETTINGS, stop))
        try:
            yield task
        finally:
            stop.set()
            if not task.cancelled():
                await asyncio.wait_for(task, 15)


async def _drain_after_join(consumer: Consumer) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + 20
    while not consumer.assignment() and time.monotonic() < deadline:
        records.extend(await consumer.poll(max_records=100, timeout_s=0.2))
    for _ in range(3):
        records.extend(await consumer.poll(max_records=100, timeout_s=0.3))
    return records


async def make_flow(bus: Bus, partitions: int = 1) -> tuple[Flow, Service]:
    service = Service(f"svc-{uuid.uuid4().hex[:10]}")
    source, sink = await new_topic(bus, partitions), await new_topic(bus, partitions)
    rejected = next(spec for spec in ALL_TOPICS if spec.name == REJECTED)
    await bus.ensure_topics([TopicSpec(dead_letter_topic(service.name), 1, None), rejected])
    return Flow(bus, service, source, sink), service


async def wait_until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_outputs_are_produced_with_correlation_and_the_inputs_committed(bus: Bus) -> None:
    flow, service = await make_flow(bus, partitions=2)

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
    async def route(message: Message[AcceptedMessage]) -> Result:
        return deliveries(message.payload, flow.sink)

    inputs = [accepted(n, receivers=("8093238", "8142519")) for n in range(3)]
    trace = new_traceparent()
    for event in inputs:
        await flow.send(event, Correlation(message_id=str(event.message_id), traceparent=trace).to_headers())
    async with flow.running():
        outputs = await flow.read(flow.sink, 6)

    received = {(CODEC.decode(r.value, Delivery).msg_id, r.key) for r in outputs}
    assert received == {(f"m{n}", her_id) for n in range(3) for her_id in (b"8093238", b"8142519")}
    for record in outputs:
        correlation = Correlation.from_headers(record.headers)
        assert correlation.message_id == str(CODEC.decode(record.value, Delivery).message_id)
        assert correlation.traceparent is not None and correlation.traceparent.split("-")[1] == trace.split("-")[1]
    assert await flow.uncommitted() == []


async def test_a_route_with_concurrency_handles_records_of_a_partition_together_started_in_order(bus: Bus) -> None:
    flow, service = await make_flow(bus)
    started: list[str] = []
    in_flight, most_in_flight = 0, 0
    release = asyncio.Event()

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink], concurrency=4)
    async def write(message: Message[AcceptedMessage]) -> Result:
        nonlocal in_flight, most_in_flight
        started.append(message.payload.msg_id)
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        if len(started) >= 4:
            release.set()
        await release.wait()  # like a store write that is committed for several records at once
        in_flight -= 1
        return deliveries(message.payload, flow.sink)

    for n in range(10):
        await flow.send(accepted(n))  # one key: one partition
    async with flow.running():
        outputs = await flow.read(flow.sink, 10)
    assert started == [f"m{n}" for n in range(10)]
    assert most_in_flight == 4
    assert sorted(CODEC.decode(r.value, Delivery).msg_id for r in outputs) == sorted(f"m{n}" for n in range(10))
    assert await flow.uncommitted() == []


async def test_a_poison_record_is_dead_lettered_and_the_partition_keeps_flowing(bus: Bus) -> None:
    flow, service = await make_flow(bus)

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
    async def route(message: Message[AcceptedMessage]) -> Result:
        if message.payload.msg_id == "m2":
            return Poison("receiver list is empty")
        return deliveries(message.payload, flow.sink)

    garbage = await flow.send(b"<not avro/>", Correlation(message_id="garbage-1").to_headers())
    await flow.send(accepted(1))
    poisoned = await flow.send(accepted(2))
    await flow.send(accepted(3))
    async with flow.running():
        letters = await flow.read(flow.dead_letters, 2)
        outputs = await flow.read(flow.sink, 2)

    assert sorted(CODEC.decode(r.value, Delivery).msg_id for r in outputs) == ["m1", "m3"]
    by_offset = {int(h.header(r.headers, h.DLQ_OFFSET) or b"-1"): r for r in letters}
    assert set(by_offset) == {garbage.offset, poisoned.offset}
    first = by_offset[garbage.offset]
    assert (h.header(first.headers, h.DLQ_TOPIC), h.header(first.headers, h.DLQ_PARTITION)) == (
        flow.source.encode(),
        str(garbage.partition).encode(),
    )
    assert h.header(first.headers, h.DLQ_ATTEMPTS) == b"1"
    assert b"Confluent wire format" in (h.header(first.headers, h.DLQ_REASON) or b"")
    assert h.header(first.headers, h.MESSAGE_ID) == b"garbage-1"  # the original headers travel along
    letter = CODEC.decode(first.value, DeadLetter)
    assert (letter.original_value, letter.original_offset, letter.service) == (
        b"<not avro/>",
        garbage.offset,
        service.name,
    )
    assert h.header(by_offset[poisoned.offset].headers, h.DLQ_REASON) == b"receiver list is empty"
    assert await flow.uncommitted() == []


async def test_a_transient_failure_is_retried_with_growing_delays_then_succeeds(bus: Bus) -> None:
    flow, service = await make_flow(bus)
    attempts: list[float] = []
    policy = RetryPolicy(max_attempts=5, initial_delay_s=0.05, multiplier=4.0, jitter=0.1)

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink], retry=policy)
    async def route(message: Message[AcceptedMessage]) -> Result:
        attempts.append(time.monotonic())
        if message.attempt < 4:
            raise Retryable("registry unavailable")
        return deliveries(message.payload, flow.sink)

    await flow.send(accepted(1))
    async with flow.running():
        [output] = await flow.read(flow.sink, 1)

    assert len(attempts) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    # Delay n is 0.05 s * 4^(n-1) less up to 10 % jitter: 0.045-0.05, 0.18-0.2, 0.72-0.8 s, plus scheduling.
    for gap, base in zip(gaps, (0.05, 0.2, 0.8), strict=True):
        assert base * 0.9 - 0.005 <= gap < base + 0.5
    assert gaps[0] < gaps[1] < gaps[2]
    assert CODEC.decode(output.value, Delivery).msg_id == "m1"


async def test_a_record_that_keeps_failing_is_dead_lettered_with_its_attempt_count(bus: Bus) -> None:
    flow, service = await make_flow(bus)

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
    async def route(message: Message[AcceptedMessage]) -> Result:
        raise ConnectionError("database refused the connection")

    await flow.send(accepted(1))
    async with flow.running():
        [letter] = await flow.read(flow.dead_letters, 1)
    assert h.header(letter.headers, h.DLQ_ATTEMPTS) == str(SETTINGS.retry_max_attempts).encode()
    assert h.header(letter.headers, h.DLQ_REASON) == (
        b"gave up after 3 attempts: ConnectionError: database refused the connection"
    )


async def test_a_rejection_is_published_to_edi_rejected(bus: Bus) -> None:
    flow, service = await make_flow(bus)

    def rejection(message: Message[AcceptedMessage], reject: Reject) -> Rejection:
        return Rejection(
            message_id=message.payload.message_id, sender_her_id=message.payload.sender_her_id,
            msg_id=message.payload.msg_id, errors=list(reject.errors), rejected_at=datetime.now(UTC),
        )  # fmt: skip

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink], rejections=rejection)
    async def route(message: Message[AcceptedMessage]) -> Result:
        error = ErrorDetail(code="EDI-REG-001", apprec_code="E21", message="Unknown", message_nb="Ukjent")
        raise Reject("E21", "receiver not in the registry", [error])

    event = accepted(1)
    await flow.send(event)
    async with flow.running():
        # edi.rejected is shared by every test on one Kafka broker: look for this one's rejection.
        [mine] = await flow.find(REJECTED, lambda r: CODEC.decode(r.value, Rejection).message_id == event.message_id)
    published = CODEC.decode(mine.value, Rejection)
    assert (published.msg_id, published.errors[0].apprec_code) == ("m1", "E21")
    assert await flow.uncommitted() == []


@dataclass
class GatedBus:
    """The real bus, except that produces to `gated_topic` wait for `gate`; it notes acks and commits in order."""

    bus: Bus
    gated_topic: str
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    producing: asyncio.Event = field(default_factory=asyncio.Event)
    events: list[tuple[str, dict[TopicPartition, int]]] = field(default_factory=list)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_topics(self, specs: object) -> None:
        raise AssertionError("not used")

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        return await self.bus.end_offsets(topics)

    async def produce(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Ack:
        if topic == self.gated_topic:
            self.producing.set()
            await self.gate.wait()
        ack = await self.bus.produce(topic, value, key=key, headers=headers)
        self.events.append(("ack", {}))
        return ack

    async def subscribe(
        self, group_id: str, topics: Sequence[str], *, on_revoked: RevokeHook | None = None
    ) -> Consumer:
        inner = await self.bus.subscribe(group_id, topics, on_revoked=on_revoked)
        outer = self

        class Recording:
            async def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
                return await inner.poll(max_records=max_records, timeout_s=timeout_s)

            def assignment(self) -> frozenset[TopicPartition]:
                return inner.assignment()

            async def commit(self, offsets: Mapping[TopicPartition, int]) -> frozenset[TopicPartition]:
                outer.events.append(("commit", dict(offsets)))
                return await inner.commit(offsets)

            async def close(self) -> None:
                await inner.close()

        return Recording()


async def test_an_input_is_committed_only_after_its_output_is_acknowledged(bus: Bus) -> None:
    flow, service = await make_flow(bus)

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
    async def route(message: Message[AcceptedMessage]) -> Result:
        return deliveries(message.payload, flow.sink)

    sent = await flow.send(accepted(1))
    gated = GatedBus(bus, flow.sink)
    async with flow.running(gated):
        await asyncio.wait_for(gated.producing.wait(), 30)
        await asyncio.sleep(0.5)  # several loop turns: nothing may be committed while the output is unacknowledged
        assert not [offsets for kind, offsets in gated.events if kind == "commit"]
        gated.gate.set()
        await wait_until(lambda: any(kind == "commit" for kind, _ in gated.events))

    kinds = [kind for kind, _ in gated.events]
    assert kinds.index("ack") < kinds.index("commit")
    assert gated.events[kinds.index("commit")][1] == {TopicPartition(flow.source, sent.partition): sent.offset + 1}


@asynccontextmanager
async def recorded_relay(bus: Bus, **settings: float) -> AsyncIterator[tuple[Flow, GatedBus]]:
    """A pass-through service running with `settings`, its commits noted (GatedBus with the gate open)."""
    flow, service = await make_flow(bus)

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
    async def route(message: Message[AcceptedMessage]) -> Result:
        return deliveries(message.payload, flow.sink)

    recording = GatedBus(bus, flow.sink)
    recording.gate.set()
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(service, recording, SETTINGS.model_copy(update=settings), stop))
    try:
        yield flow, recording
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def committed(recording: GatedBus, topic: str, ack: Ack, timeout_s: float = 30) -> None:
    """Returns once the record `ack` acknowledged has been committed."""
    tp = TopicPartition(topic, ack.partition)
    await wait_until(
        lambda: any(offsets.get(tp) == ack.offset + 1 for kind, offsets in recording.events if kind == "commit"),
        timeout_s=timeout_s,
    )


async def test_a_record_handled_between_commits_is_committed_within_the_interval_though_nothing_more_comes(
    bus: Bus,
) -> None:
    # An idle poll would wait 30 s: the commit of the second record may not wait for it.
    async with recorded_relay(bus, poll_timeout_s=30.0, commit_interval_s=0.5) as (flow, recording):
        await committed(recording, flow.source, await flow.send(accepted(1)))
        second = await flow.send(accepted(2))  # handled within the commit interval of the first commit
        await committed(recording, flow.source, second, timeout_s=5)


async def test_a_trickle_of_records_is_committed_once_per_interval_not_after_every_poll(bus: Bus) -> None:
    async with recorded_relay(bus, commit_interval_s=0.5) as (flow, recording):
        await committed(recording, flow.source, await flow.send(accepted(0)))
        began, trickle_began = len(recording.events), time.monotonic()
        for n in range(1, 51):  # one record every 20 ms for a second: a poll each
            await flow.send(accepted(n))
            await asyncio.sleep(0.02)
        await committed(recording, flow.source, await flow.send(accepted(51)), timeout_s=5)
        seconds = time.monotonic() - trickle_began
    commits = [kind for kind, _ in recording.events[began:] if kind == "commit"]
    assert len(commits) <= seconds / 0.5 + 2


async def test_a_second_instance_joining_mid_stream_takes_over_partitions_and_nothing_is_lost(
    make_bus: BusFactory,
) -> None:
    bus_a, bus_b = await make_bus(), await make_bus()  # two processes of one service
    flow, first = await make_flow(bus_a, partitions=4)
    second = Service(first.name)
    handled: dict[str, set[str]] = {"a": set(), "b": set()}

    for instance, service in (("a", first), ("b", second)):

        @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
        async def route(message: Message[AcceptedMessage], instance: str = instance) -> Result:
            await asyncio.sleep(0.01)
            handled[instance].add(message.payload.msg_id)
            return deliveries(message.payload, flow.sink)

    def all_handled() -> set[str]:
        return handled["a"] | handled["b"]

    for n in range(20):
        await flow.send(accepted(n), key=f"her-{n}".encode())
    stop_b = asyncio.Event()
    async with flow.running():
        await wait_until(lambda: len(all_handled()) >= 5)
        instance_b = asyncio.create_task(run_service(second, bus_b, SETTINGS, stop_b))
        # A steady stream while the group rebalances, until the newcomer has had a share.
        n = 20
        while not handled["b"] or n < 60:
            await flow.send(accepted(n), key=f"her-{n}".encode())
            await asyncio.sleep(0.03)
            n += 1
            assert n < 1000, "the second instance never got a partition"
        await wait_until(lambda: len(all_handled()) == n)
        stop_b.set()
        await asyncio.wait_for(instance_b, 15)

    outputs = await flow.read_distinct(flow.sink, n, lambda r: CODEC.decode(r.value, Delivery).msg_id)
    assert {CODEC.decode(r.value, Delivery).msg_id for r in outputs} == {f"m{i}" for i in range(n)}
    assert await flow.uncommitted() == []


async def test_a_crash_mid_handler_loses_nothing_the_record_comes_again(bus: Bus) -> None:
    flow, service = await make_flow(bus)
    handled: list[str] = []
    crash_now = asyncio.Event()

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
    async def route(message: Message[AcceptedMessage]) -> Result:
        handled.append(message.payload.msg_id)
        if message.payload.msg_id == "m3" and handled.count("m3") == 1:
            crash_now.set()
            await asyncio.Event().wait()  # hangs until the process "dies"
        return deliveries(message.payload, flow.sink)

    for n in range(1, 6):
        await flow.send(accepted(n))
    async with flow.running() as task:
        await asyncio.wait_for(crash_now.wait(), 30)
        # m1 and m2 are delivered (their outputs were produced while m3 was being handled) ...
        await flow.read(flow.sink, 2)
        task.cancel()  # ... when the process dies in the middle of m3
        with pytest.raises(asyncio.CancelledError):
            await task
    assert "m4" not in handled

    async with flow.running():  # restarted
        outputs = await flow.read(flow.sink, 5)
    assert sorted(CODEC.decode(r.value, Delivery).msg_id for r in outputs) == ["m1", "m2", "m3", "m4", "m5"]
    assert handled.count("m3") == 2  # delivered again after the crash


@pytest.mark.kafka
async def test_the_broker_restarting_mid_stream_loses_nothing(
    controllable_kafka_broker: KafkaBroker, kafka_bootstrap: str
) -> None:
    bus = KafkaBus(kafka_bootstrap, replication_factor=1, session_timeout_s=SESSION_TIMEOUT_S, request_timeout_s=10)
    await bus.start()
    try:
        await _restart_mid_stream(bus, controllable_kafka_broker)
    finally:
        await bus.close()


async def _restart_mid_stream(bus: Bus, broker: KafkaBroker) -> None:
    flow, service = await make_flow(bus, partitions=2)
    handled: set[str] = set()

    @service.handler(flow.source, payload=AcceptedMessage, outputs=[flow.sink])
    async def route(message: Message[AcceptedMessage]) -> Result:
        await asyncio.sleep(0.1)
        handled.add(message.payload.msg_id)
        return deliveries(message.payload, flow.sink)

    for n in range(40):
        await flow.send(accepted(n))
    async with flow.running():
        await wait_until(lambda: len(handled) >= 5)
        await broker.stop_async()
        assert len(handled) < 40, "the broker went away only after the stream had been handled"
        await asyncio.sleep(1.0)
        await broker.start_async()
        for n in range(40, 50):
            await flow.send(accepted(n))
        await wait_until(lambda: len(handled) == 50, timeout_s=90)
        outputs = await flow.read_distinct(flow.sink, 50, lambda r: CODEC.decode(r.value, Delivery).msg_id)

    assert {CODEC.decode(r.value, Delivery).msg_id for r in outputs} == {f"m{n}" for n in range(50)}
    assert await flow.uncommitted() == []
