"""The routing facts on AcceptedMessage (v2) and Delivery (v3): what ingress writes is what parsing the document
gives, for every shared sample; the router and the mailbox act on them without parsing; and records without them
(AcceptedMessage v1, Delivery v2, from services not yet rolled over) route and deliver the same."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from edi.adapters.bus.embedded import EmbeddedBus
from edi.adapters.bus.port import Record
from edi.core.apprec import AppRecError, AppRecStatus, build_apprec
from edi.core.header import RoutingHeader
from edi.core.kinds import MessageKind
from edi.events import AcceptedMessage, Correlation, Delivery, Event, RoutingFacts, Source, default_codec
from edi.kapabilitetsregister.model import InvalidInputError
from edi.kapabilitetsregister.specifications import (
    default_catalogue,
    read_routing_header,
)
from edi.schemas.topics import ACCEPTED, DELIVERIES, INBOUND
from edi.services.mailbox import service as mailbox
from edi.services.reading import ingress_facts, read_facts
from edi.services.registry_relay.feed import RegistryFeed
from edi.services.router import service as router
from edi.services.runtime import Message, Result
from edi.services.store import AcceptedRecord, BackboneStore
from edi.services.validator import service as validator
from edi.services.validator.admission import Admitted, admit, sha256_of
from edi.settings import ValidationSettings
from tests.bus.test_delivery_versions import DeliveryV2
from tests.bus.test_events import AcceptedMessageV1
from tests.services.attachments import referral
from tests.services.documents import DIALOG_SPEC, RECEIVER, SENDER, dialog
from tests.services.test_admission_and_routing import view_of
from tests.shared_samples import SAMPLES, STANDARDS

CODEC = default_codec()
P = TypeVar("P", bound="Event | bytes")
NOW = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)


def parsed_facts(document: bytes) -> RoutingFacts:
    read = read_facts(document)
    assert read is not None
    return read[1]


def test_the_facts_ingress_writes_are_what_parsing_gives_for_every_shared_sample() -> None:
    checker = ValidationSettings(schema_dirs=[STANDARDS]).validator()
    catalogue = default_catalogue()
    admitted = answering = 0
    for path in sorted(SAMPLES.rglob("*.xml")):
        data = path.read_bytes()
        admission = admit(checker.validate(data), require_schemas=False)
        if not isinstance(admission, Admitted):
            continue
        admitted += 1
        facts = ingress_facts(admission.header, data)
        assert facts == parsed_facts(data), path  # what the mailbox read from the document
        parsed = read_routing_header(data, str(path))  # what the router read from it
        kind = MessageKind(admission.header.business_namespace, facts.message_function, facts.service_description)
        assert catalogue.recognise(kind) == catalogue.recognise(MessageKind.of(parsed)), path
        assert kind.name == MessageKind.of(parsed).name, path
        assert facts.is_apprec == parsed.is_apprec, path
        answering += facts.apprec_answer is not None
    assert admitted > 100 and answering > 0, (admitted, answering)


def test_has_attachments_is_set_for_an_inline_attachment_or_a_file_reference_only() -> None:
    assert parsed_facts(referral(RECEIVER, b"%PDF scan")).has_attachments
    assert parsed_facts(referral(RECEIVER, file_reference="https://objects.test/objects/ab")).has_attachments
    assert not parsed_facts(dialog()).has_attachments


def message(payload: P, topic: str) -> Message[P]:
    record = Record(topic=topic, partition=0, offset=0, key=None, value=None, headers=(), timestamp_ms=0)
    return Message(payload=payload, record=record, correlation=Correlation(), attempt=1)


def events(result: Result) -> list[Event]:
    """The events a handler's result produces (it must be records, not an outcome)."""
    assert isinstance(result, Sequence)
    return [output.value for output in result if isinstance(output.value, Event)]


async def test_the_validator_writes_the_facts_of_what_it_accepted(store: BackboneStore) -> None:
    service = validator.build(ValidationSettings(schema_dirs=[STANDARDS]).validator(), store,
                              validator.ValidatorSettings())
    for document in (dialog(), apprec_answering(dialog("m-answered"))):
        [accepted] = events(await service.routes[INBOUND].handler(message(document, INBOUND)))
        assert isinstance(accepted, AcceptedMessage) and accepted.facts == parsed_facts(document)


def apprec_answering(original: bytes) -> bytes:
    """The receiver's negative AppRec to `original`, with two errors."""
    errors = [AppRecError(code="E21", description="Mottaker finnes ikke"), AppRecError(code="T02", description="")]
    return build_apprec(read_routing_header(original, "original"), AppRecStatus.AVVIST, errors)


def feed_with(tmp_path: Path, *parties: str) -> RegistryFeed:
    """A registry feed that is ready with these parties, without a bus to follow."""
    feed = RegistryFeed(EmbeddedBus(tmp_path / "unused.db"), "test")
    feed.view = view_of(*parties)
    feed.ready.set()
    return feed


def accepted_of(document: bytes, receivers: list[str]) -> AcceptedMessage:
    header = read_routing_header(document, "test")
    return AcceptedMessage(
        message_id=uuid.uuid4(), sender_her_id=header.sender_her_id or "", receiver_her_ids=receivers,
        msg_id=header.msg_id or "", message_type=header.message_type.code if header.message_type else "",
        business_namespace=header.business_namespace, document=document, received_at=NOW, source=Source.KAFKA,
        facts=parsed_facts(document),
    )


def without_facts(events: list[Event]) -> list[dict[str, object]]:
    return [event.model_dump(exclude={"facts", "rejected_at", "at"}) for event in events]


async def test_the_router_routes_a_version_1_record_as_one_with_facts_and_passes_the_facts_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    feed = feed_with(tmp_path, f'{{"herId": {RECEIVER}, "supported": ["{DIALOG_SPEC}"]}}')
    handler = router.build(feed).routes[ACCEPTED].handler
    with_facts = accepted_of(dialog(), [RECEIVER, "4"])  # 4 is unknown: refused, E21
    old = CODEC.decode(CODEC.encode(AcceptedMessageV1(**with_facts.model_dump(exclude={"facts"}))), AcceptedMessage)
    assert old.facts is None

    from_old = events(await handler(message(old, ACCEPTED)))

    def unparsed(data: bytes, source: str) -> RoutingHeader:
        raise InvalidInputError("the router parsed a document whose facts it was given")

    monkeypatch.setattr(router, "read_routing_header", unparsed)
    from_new = events(await handler(message(with_facts, ACCEPTED)))
    assert without_facts(from_new) == without_facts(from_old)
    assert {type(e).__name__ for e in from_new} == {"Delivery", "StatusChange", "Rejection"}
    deliveries = [e for e in from_new if isinstance(e, Delivery)]
    assert [d.receiver_her_id for d in deliveries] == [RECEIVER] and deliveries[0].facts == with_facts.facts
    assert [e.facts for e in from_old if isinstance(e, Delivery)] == [None]


def delivery_of(document: bytes, sender: str, receiver: str) -> Delivery:
    header = read_routing_header(document, "test")
    return Delivery(
        message_id=uuid.uuid4(), receiver_her_id=receiver, sender_her_id=sender, msg_id=header.msg_id or "",
        message_type=header.message_type.code if header.message_type else "",
        business_namespace=header.business_namespace, document=document, received_at=NOW,
        facts=parsed_facts(document),
    )


async def test_the_mailbox_delivers_a_version_2_record_as_one_with_facts(
    tmp_path: Path, store: BackboneStore, monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler = mailbox.build(store, feed_with(tmp_path), EmbeddedBus(tmp_path / "unused.db")).routes[DELIVERIES].handler

    async def deliver(document: bytes, sender: str, receiver: str, *, old: bool) -> tuple[uuid.UUID, list[Event]]:
        delivery = delivery_of(document, sender, receiver)
        if old:
            old_fields = delivery.model_dump(exclude={"facts", "kind", "unchecked_reason"})
            delivery = CODEC.decode(CODEC.encode(DeliveryV2(**old_fields)), Delivery)
            assert delivery.facts is None
        return delivery.message_id, events(await handler(message(delivery, DELIVERIES)))

    def unparsed(document: bytes) -> None:
        raise AssertionError("the mailbox parsed a document whose facts it was given")

    seen = {}
    for old in (True, False):
        if not old:
            monkeypatch.setattr(mailbox, "read_delivered", unparsed)
        msg_id = str(uuid.uuid4())
        original = dialog(msg_id)
        await store.claim(AcceptedRecord(  # as ingress does: the AppRec's OriginalMsgId names a message it knows
            message_id=uuid.uuid4(), sender_her_id=SENDER, msg_id=msg_id, sha256=sha256_of(original),
            message_type="DIALOG_NOTAT", is_apprec=False, accepted_at=NOW))
        apprec_id, statuses = await deliver(apprec_answering(original), RECEIVER, SENDER, old=old)
        assert len(statuses) == 2  # the AppRec's own, and the AppRec status of the message it answers
        entry = next(e for e in await store.unread([SENDER]) if e.message_id == apprec_id)
        answer = statuses[1].model_dump(include={"transport_state", "apprec_status", "apprec_errors"})
        seen[old] = (entry.is_apprec, entry.gen_date is not None, answer)
    assert seen[True] == seen[False]
    assert seen[True][:2] == (True, True) and seen[True][2]["apprec_status"] == "2"
    assert [e["code"] for e in seen[True][2]["apprec_errors"]] == ["E21", "T02"]
