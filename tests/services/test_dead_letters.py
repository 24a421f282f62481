"""The runtime's dead letters and retries, shown for real services: a poison record on edi.accepted goes to
edi.dlq.router with its reason while the partition keeps flowing; a mailbox whose database fails for a while is
retried with growing delays, not in a tight loop, and then delivers."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError

from edi.events import AcceptedMessage, DeadLetter, Delivery, Source, default_codec
from edi.schemas.topics import ACCEPTED, ALL_TOPICS, DELIVERIES, dead_letter_topic
from edi.services.mailbox import service as mailbox
from edi.services.registry_relay.feed import RegistryFeed
from edi.services.runtime import run_service
from edi.services.store import BackboneSettings, BackboneStore, StoredDelivery
from tests.services.conftest import eventually, party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC, RECEIVER, SENDER, dialog

CODEC = default_codec()


def accepted(message_id: uuid.UUID, document: bytes) -> AcceptedMessage:
    return AcceptedMessage(
        message_id=message_id, sender_her_id=SENDER, receiver_her_ids=[RECEIVER], msg_id=str(message_id),
        message_type="DIALOG_NOTAT", business_namespace="http://www.kith.no/xmlstds/dialog/2006-10-11",
        document=document, received_at=datetime.now(UTC), source=Source.KAFKA,
    )


async def test_a_poison_record_goes_to_the_routers_dead_letter_topic_and_the_partition_keeps_flowing(
    installation: dict[str, str],
) -> None:
    await seed_registry([party(RECEIVER, DIALOG_SPEC)])
    async with running_backbone() as (backbone, parts):
        bus = await parts.bus()
        message_id = uuid.uuid4()
        key = str(message_id).encode()  # the poison and the good record share a partition
        poison = await bus.produce(ACCEPTED, b"\x00\x00\x00\x00\x01 not an AcceptedMessage", key=key)
        document = dialog(str(message_id))
        await bus.produce(ACCEPTED, CODEC.encode(accepted(message_id, document)), key=key)

        unread = await eventually(lambda: backbone.unread([RECEIVER]), what="the record after the poison")
        assert [e.message_id for e in unread] == [message_id]
        watcher = await bus.subscribe(f"test-dlq-{uuid.uuid4().hex[:8]}", [dead_letter_topic("router")])
        records = await eventually(lambda: watcher.poll(max_records=10, timeout_s=0.5), what="the dead letter")
        await watcher.close()
    letter = CODEC.decode(records[0].value, DeadLetter)
    assert (letter.service, letter.original_topic, letter.original_offset) == ("router", ACCEPTED, poison.offset)
    assert letter.reason.startswith("cannot decode") and letter.attempts == 1
    assert dict(records[0].headers)["edi-dlq-reason"].decode() == letter.reason


class FlakyStore(BackboneStore):
    """A mailbox database that is unavailable for the first few deliveries."""

    def __init__(self, store: BackboneStore, failures: int) -> None:
        super().__init__(store.engine)
        self.failures = failures
        self.attempts: list[float] = []

    async def deliver(self, delivery: StoredDelivery) -> bool:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            raise OperationalError("INSERT INTO mailbox", {}, Exception("database is locked"))
        return await super().deliver(delivery)


@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_a_mailbox_whose_database_fails_for_a_while_is_retried_with_growing_delays(
    installation: dict[str, str],
) -> None:
    settings = BackboneSettings(retry_max_attempts=6, retry_initial_delay_s=0.1)
    bus = settings.open_bus()
    await bus.start()
    await bus.ensure_topics(ALL_TOPICS)
    opened = await BackboneStore.open(settings.store_url)
    store = FlakyStore(opened, failures=4)
    stop = asyncio.Event()
    feed = RegistryFeed(bus, "test")
    tasks = [asyncio.create_task(feed.run(stop)),
             asyncio.create_task(run_service(mailbox.build(store, feed, bus), bus, settings, stop))]
    try:
        message_id = uuid.uuid4()
        await bus.produce(DELIVERIES, CODEC.encode(Delivery(
            message_id=message_id, receiver_her_id=RECEIVER, sender_her_id=SENDER, msg_id="flaky",
            message_type="DIALOG_NOTAT", business_namespace="urn:x", document=dialog("flaky"),
            received_at=datetime.now(UTC))))
        await eventually(lambda: opened.unread([RECEIVER]), what="the delivery after the retries")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await opened.close()
        await bus.close()
    delays = [later - earlier for earlier, later in zip(store.attempts, store.attempts[1:], strict=False)]
    print(f"\nmailbox attempts: {len(store.attempts)}, delays between them: "
          f"{', '.join(f'{d * 1000:.0f} ms' for d in delays)}")
    assert len(store.attempts) == 5
    # Each wait is at least the policy's for that attempt: 0.1 s doubling, less at most 20 % jitter.
    assert all(delay >= 0.1 * 2**n * 0.8 for n, delay in enumerate(delays)), delays
    assert delays[-1] > 2 * delays[0], delays
