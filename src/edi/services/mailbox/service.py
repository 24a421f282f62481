"""The mailbox service: edi.deliveries -> the receiver's mailbox in the SQL store, once per (sender HER-id,
MsgId, receiver HER-id), with a NewMessage notification and an Unconfirmed status for the sender.

A receiver whose registry entry names a Kafka topic also gets the document on that topic (at least once, with
the correlation headers; its consumer deduplicates on the edi-message-id header). An AppRec that answers a
message the backbone carried updates that message's status for the receiver that sent it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from edi.adapters.bus import Bus
from edi.events import BlobRef, Delivery, StatusChange, TransportState
from edi.kapabilitetsregister.model import DeliveryChannel, InvalidHerIdError, parse_her_id
from edi.observability import metrics, tracing
from edi.schemas.topics import DELIVERIES, STATUS, TopicSpec
from edi.services.reading import read_delivered
from edi.services.registry_relay.feed import RegistryFeed
from edi.services.runtime import STORE_WRITER_CONCURRENCY, Message, Output, Poison, Result, Service
from edi.services.store import BackboneSettings, BackboneStore, StoredDelivery

_WEEK_MS = 7 * 24 * 60 * 60 * 1000


class MailboxSettings(BackboneSettings):
    pass


def build(store: BackboneStore, feed: RegistryFeed, bus: Bus) -> Service:
    service = Service("mailbox")
    own_topics: set[str] = set()  # receivers' own topics known to exist

    async def to_own_topic(delivery: Delivery, document: bytes, message: Message[Delivery]) -> None:
        view = await feed.wait_ready()
        try:
            party = view.party(parse_her_id(delivery.receiver_her_id))
        except InvalidHerIdError:
            return
        if party is None or party.delivery_channel is not DeliveryChannel.KAFKA or not party.kafka_topic:
            return
        if party.kafka_topic not in own_topics:
            await bus.ensure_topics([TopicSpec(party.kafka_topic, partitions=1, retention_ms=_WEEK_MS)])
            own_topics.add(party.kafka_topic)
        await bus.produce(party.kafka_topic, document, key=delivery.receiver_her_id.encode(),
                          headers=message.correlation.to_headers())

    @service.handler(DELIVERIES, payload=Delivery, outputs=[STATUS], concurrency=STORE_WRITER_CONCURRENCY)
    async def deliver(message: Message[Delivery]) -> Result:
        delivery = message.payload
        if isinstance(delivery.document, BlobRef):
            return Poison("documents by claim check (BlobRef) are not stored yet")
        document = delivery.document
        if delivery.facts is not None:  # read by ingress, passed on by the router: no parse here
            gen_date, answer, apprec = delivery.facts.gen_date, delivery.facts.apprec_answer, delivery.facts.is_apprec
        else:  # a record of an older router or ingress
            read = read_delivered(document)
            gen_date, answer = read.gen_date, read.answer
            apprec = read.header.is_apprec if read.header else delivery.message_type == "APPREC"
        now = datetime.now(UTC)
        first = await store.deliver(StoredDelivery(
            message_id=delivery.message_id, receiver_her_id=delivery.receiver_her_id,
            sender_her_id=delivery.sender_her_id, msg_id=delivery.msg_id, message_type=delivery.message_type,
            is_apprec=apprec, gen_date=gen_date,
            received_at=delivery.received_at, delivered_at=now, document=document, kind=delivery.kind,
            unchecked_reason=delivery.unchecked_reason,
        ))
        metrics.delivered("mailbox", first, answer.status if answer else None, delivery.unchecked_reason, delivery.kind)
        tracing.remember_delivery(str(delivery.message_id), message.correlation)
        await to_own_topic(delivery, document, message)
        # Every time, not only the first: the status service keeps the first state it is told and ignores
        # repeats, so a redelivery after a crash still gets its status recorded.
        outputs = [Output(STATUS, StatusChange(
            message_id=delivery.message_id, receiver_her_id=delivery.receiver_her_id,
            transport_state=TransportState.UNCONFIRMED, at=now))]
        if answer is not None:
            original = await store.find_message(delivery.receiver_her_id, answer.original_msg_id)
            # The backbone's own negative AppRecs say why it refused a receiver; they are not that receiver's
            # answer, so they leave its AppRec status alone.
            if original is not None and not await store.is_receipt(delivery.message_id):
                outputs.append(Output(STATUS, StatusChange(
                    message_id=original, receiver_her_id=delivery.sender_her_id,
                    transport_state=TransportState.UNCONFIRMED, apprec_status=answer.status,
                    apprec_errors=answer.errors, at=now)))
        return outputs

    return service
