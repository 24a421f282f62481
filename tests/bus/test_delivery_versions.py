"""Delivery version 2 (the attachments the document refers to in the object service) next to version 1, and
version 3 (the routing facts, so the mailbox need not parse the document) next to version 2: services of either
version read each other's records while a deployment rolls over."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from edi.events import AppRecAnswer, BlobRef, Delivery, Event, RoutingFacts, default_codec

NOW = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
SCAN = BlobRef(uri="https://edi.test/objects/" + "ab" * 16, size=52_428_800, sha256="cd" * 32)


class DeliveryV1(Event):
    """Delivery as version 1 wrote and read it: no attachments."""

    schema_name: ClassVar[str] = "edi.events.Delivery"
    schema_version: ClassVar[int] = 1

    message_id: uuid.UUID
    receiver_her_id: str
    sender_her_id: str
    msg_id: str
    message_type: str
    business_namespace: str
    document: bytes | BlobRef
    received_at: datetime


class DeliveryV2(DeliveryV1):
    """Delivery as version 2 wrote and read it: attachments, no facts."""

    schema_version: ClassVar[int] = 2

    attachments: list[BlobRef]


FIELDS = {
    "message_id": uuid.UUID("7d3c1a52-4a8e-4f7e-9a59-5d2b8d7a9c01"), "receiver_her_id": "8093238",
    "sender_her_id": "8142987", "msg_id": "b2c9f2a0-1", "message_type": "REFERRAL",
    "business_namespace": "http://www.kith.no/xmlstds/henvisning/2017-11-30", "document": b"<MsgHead/>",
    "received_at": NOW,
}


def test_a_version_1_reader_reads_a_delivery_with_attachments_without_them() -> None:
    data = default_codec().encode(Delivery(**FIELDS, attachments=[SCAN]))
    assert default_codec().decode(data, DeliveryV1) == DeliveryV1(**FIELDS)


def test_a_version_1_record_reads_as_a_delivery_without_attachments() -> None:
    data = default_codec().encode(DeliveryV1(**FIELDS))
    assert default_codec().decode(data, Delivery) == Delivery(**FIELDS, attachments=[])


def test_a_delivery_with_attachments_round_trips() -> None:
    delivery = Delivery(**FIELDS, attachments=[SCAN])
    assert default_codec().decode(default_codec().encode(delivery), Delivery) == delivery


FACTS = RoutingFacts(
    message_function="REFERRAL", service_description=None, is_apprec=False, gen_date=NOW,
    apprec_answer=None, has_attachments=True,
)


def test_a_version_2_reader_reads_a_delivery_with_facts_without_them() -> None:
    data = default_codec().encode(Delivery(**FIELDS, attachments=[SCAN], facts=FACTS))
    assert default_codec().decode(data, DeliveryV2) == DeliveryV2(**FIELDS, attachments=[SCAN])


def test_a_version_2_record_reads_as_a_delivery_without_facts() -> None:
    data = default_codec().encode(DeliveryV2(**FIELDS, attachments=[SCAN]))
    assert default_codec().decode(data, Delivery) == Delivery(**FIELDS, attachments=[SCAN], facts=None)


def test_a_delivery_with_the_facts_of_an_apprec_round_trips() -> None:
    answer = AppRecAnswer(status="1", original_msg_id="b2c9f2a0-1")
    delivery = Delivery(**FIELDS, facts=FACTS.model_copy(update={"is_apprec": True, "apprec_answer": answer}))
    assert default_codec().decode(default_codec().encode(delivery), Delivery) == delivery
