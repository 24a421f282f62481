"""A service process and SIGTERM: the record in flight finishes and is committed, nothing new is started, and
the process is done within the bound; a handler that does not finish is abandoned at the bound, uncommitted.

On the embedded bus only: the shutdown path is the runtime's, the same whichever bus is below it."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from edi.adapters.bus import EmbeddedBus, Record
from edi.events import AcceptedMessage, Source, default_codec
from edi.schemas.topics import ACCEPTED, ALL_TOPICS, INBOUND
from edi.services.runtime import Message, Output, Result, Service, ServiceSettings, serve
from tests.bus.conftest import consume


def accepted_from(envelope: bytes) -> AcceptedMessage:
    return AcceptedMessage(
        message_id=uuid.uuid4(), sender_her_id="8142987", receiver_her_ids=["8093238"], msg_id="m",
        message_type="DIALOG_FORESPORSEL", business_namespace="urn:test", document=envelope,
        received_at=datetime.now(UTC), source=Source.KAFKA,
    )  # fmt: skip


async def leftovers(bus: EmbeddedBus, group: str) -> list[Record]:
    consumer = await bus.subscribe(group, [INBOUND])
    try:
        return await consumer.poll(max_records=100, timeout_s=0.3)
    finally:
        await consumer.close()


async def sigterm_while(service: Service, settings: ServiceSettings, in_flight: asyncio.Event) -> float:
    """Serve, send SIGTERM to this process once a record is in flight; seconds until serve returned."""
    serving = asyncio.create_task(serve(service, settings))
    await asyncio.wait_for(in_flight.wait(), 10)
    began = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(serving, 15)
    return time.monotonic() - began


async def started_with_inbound(path: Path, *envelopes: bytes) -> EmbeddedBus:
    bus = EmbeddedBus(path)
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    for envelope in envelopes:
        await bus.produce(INBOUND, envelope, key=b"8142987")  # one key: one partition, handled in this order
    return bus


async def test_sigterm_finishes_the_record_in_flight_commits_it_and_stops_within_the_bound(tmp_path: Path) -> None:
    settings = ServiceSettings(bus="embedded", bus_path=tmp_path / "bus.sqlite3", shutdown_timeout_s=3.0)
    service = Service("shutdown-test")
    in_flight = asyncio.Event()

    @service.handler(INBOUND, payload=bytes, outputs=[ACCEPTED])
    async def validate(message: Message[bytes]) -> Result:
        if message.payload == b"<slow/>":
            in_flight.set()
            await asyncio.sleep(0.5)
        return [Output(ACCEPTED, accepted_from(message.payload))]

    bus = await started_with_inbound(settings.bus_path, b"<first/>", b"<slow/>", b"<after/>")
    try:
        elapsed = await sigterm_while(service, settings, in_flight)
        assert 0.4 < elapsed < settings.shutdown_timeout_s  # waited for the record in flight, not for the bound

        reader = await bus.subscribe("reader", [ACCEPTED])
        codec = default_codec()
        documents = {codec.decode(r.value, AcceptedMessage).document for r in await consume(reader, 2)}
        assert documents == {b"<first/>", b"<slow/>"}
        # The record in flight was committed; the one after it was never started and waits for the next run.
        assert [r.value for r in await leftovers(bus, service.name)] == [b"<after/>"]
    finally:
        await bus.close()


async def test_a_handler_that_never_finishes_is_abandoned_at_the_bound_and_comes_again(tmp_path: Path) -> None:
    settings = ServiceSettings(bus="embedded", bus_path=tmp_path / "bus.sqlite3", shutdown_timeout_s=0.5)
    service = Service("shutdown-test")
    in_flight = asyncio.Event()

    @service.handler(INBOUND, payload=bytes, outputs=[ACCEPTED])
    async def validate(message: Message[bytes]) -> Result:
        in_flight.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    bus = await started_with_inbound(settings.bus_path, b"<stuck/>")
    try:
        elapsed = await sigterm_while(service, settings, in_flight)
        assert settings.shutdown_timeout_s <= elapsed < settings.shutdown_timeout_s + 1.0
        assert [r.value for r in await leftovers(bus, service.name)] == [b"<stuck/>"]
    finally:
        await bus.close()
