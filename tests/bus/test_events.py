"""Events: the Avro codec (Confluent wire format), schema evolution both ways, correlation headers."""

from __future__ import annotations

import copy
import io
import uuid
from datetime import UTC, datetime
from typing import ClassVar

import fastavro
import pytest
from fastavro.utils import generate_many

from edi.events import (
    AcceptedMessage,
    AppRecAnswer,
    AppRecErrorDetail,
    BlobRef,
    Correlation,
    DeadLetter,
    DecodeError,
    Delivery,
    ErrorDetail,
    Event,
    LocalSchemaRegistry,
    RegistryChange,
    Rejection,
    RoutingFacts,
    Source,
    StatusChange,
    TransportState,
    default_codec,
)
from edi.events.codec import RegisteredSchema, parse
from edi.events.headers import child_traceparent, new_traceparent

NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
MESSAGE_ID = uuid.UUID("7d3c1a52-4a8e-4f7e-9a59-5d2b8d7a9c01")
BLOB = BlobRef(uri="s3://edi-blobs/7d3c", size=12_345_678, sha256="ab" * 32)

EXAMPLES: list[Event] = [
    AcceptedMessage(
        message_id=MESSAGE_ID, sender_her_id="8142987", receiver_her_ids=["8093238", "8142519"],
        msg_id="b2c9f2a0-1", message_type="DIALOG_FORESPORSEL",
        business_namespace="http://www.kith.no/xmlstds/dialog/2013-01-23", document=b"<MsgHead/>",
        received_at=NOW, source=Source.API,
    ),
    Delivery(
        message_id=MESSAGE_ID, receiver_her_id="8093238", sender_her_id="8142987", msg_id="b2c9f2a0-1",
        message_type="DIALOG_FORESPORSEL", business_namespace="http://www.kith.no/xmlstds/dialog/2013-01-23",
        document=BLOB, received_at=NOW,
    ),
    Rejection(
        message_id=MESSAGE_ID, sender_her_id="8142987", msg_id="b2c9f2a0-1",
        errors=[ErrorDetail(code="EDI-SCH-001", apprec_code="T02", message="Does not validate",
                            message_nb="Validerer ikke", line=12, path="/MsgHead/MsgInfo")],
        original_message_type="DIALOG_FORESPORSEL", document=b"<MsgHead/>", rejected_at=NOW,
    ),
    StatusChange(
        message_id=MESSAGE_ID, receiver_her_id="8093238", transport_state=TransportState.REJECTED,
        apprec_status="2", apprec_errors=[AppRecErrorDetail(code="E21", description="Mottaker finnes ikke")],
        at=NOW,
    ),
    DeadLetter(
        service="router", original_topic="edi.accepted", original_partition=3, original_offset=42,
        original_timestamp=NOW, original_key=b"k", original_value=b"\x00garbage", reason="poison: bad",
        attempts=1, failed_at=NOW,
    ),
    RegistryChange(kind="party", key="8093238", payload='{"her_id": "8093238"}', sequence=17),
]  # fmt: skip


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda event: type(event).__name__)
def test_every_event_round_trips_in_the_confluent_wire_format(event: Event) -> None:
    codec = default_codec()
    data = codec.encode(event)
    schema_id = LocalSchemaRegistry.bundled().by_version(event.schema_name, event.schema_version).schema_id
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == schema_id
    assert codec.decode(data, type(event)) == event


def test_every_event_model_has_its_schema_bundled_and_every_schema_a_model() -> None:
    newest: dict[str, int] = {}
    for schema in LocalSchemaRegistry.bundled().all():  # older versions stay, to read the records they wrote
        newest[schema.name] = max(newest.get(schema.name, 0), schema.version)
    models = {(cls.schema_name, cls.schema_version) for cls in Event.__subclasses__()
              if cls.__module__ == "edi.events.models"}  # not the tests' own versions
    assert models == set(newest.items())


FACTS = RoutingFacts(
    message_function="APPREC", is_apprec=True, gen_date=NOW, has_attachments=False,
    apprec_answer=AppRecAnswer(status="2", original_msg_id="b2c9f2a0-1",
                               errors=[AppRecErrorDetail(code="E21", description="Mottaker finnes ikke")]),
)


class AcceptedMessageV1(Event):
    """AcceptedMessage as version 1 wrote and read it: no facts."""

    schema_name: ClassVar[str] = "edi.events.AcceptedMessage"
    schema_version: ClassVar[int] = 1

    message_id: uuid.UUID
    sender_her_id: str
    receiver_her_ids: list[str]
    msg_id: str
    message_type: str
    business_namespace: str
    document: bytes | BlobRef
    received_at: datetime
    source: Source


def test_an_old_reader_reads_a_new_writers_record() -> None:
    newer = EXAMPLES[0].model_copy(update={"facts": FACTS})
    data = default_codec().encode(newer)
    assert int.from_bytes(data[1:5], "big") == LocalSchemaRegistry.bundled().by_version(
        "edi.events.AcceptedMessage", 2).schema_id

    # The v1 reader resolves the v2 writer's schema (fetched by id) against its own: the new field is skipped.
    older = default_codec().decode(data, AcceptedMessageV1)
    assert older.model_dump() == EXAMPLES[0].model_dump(exclude={"facts"})


def test_a_new_reader_reads_an_old_writers_record() -> None:
    data = default_codec().encode(AcceptedMessageV1(**EXAMPLES[0].model_dump(exclude={"facts"})))
    decoded = default_codec().decode(data, AcceptedMessage)
    assert decoded.facts is None  # the field the old writer did not know takes its default: readers parse
    assert decoded == EXAMPLES[0]


def test_facts_round_trip_with_the_answer_of_an_apprec() -> None:
    event = EXAMPLES[0].model_copy(update={"facts": FACTS})
    decoded = default_codec().decode(default_codec().encode(event), AcceptedMessage)
    assert decoded == event and decoded.facts is not None and decoded.facts.gen_date == NOW.replace(microsecond=123000)


def assert_compatible_both_ways(old: RegisteredSchema, new: RegisteredSchema) -> None:
    """Random records of each version are readable through the other version's schema."""
    for writer, reader in ((old, new), (new, old)):
        for datum in generate_many(writer.parsed, 20):
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, writer.parsed, datum)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, writer.parsed, reader.parsed)


def test_each_bundled_schema_version_is_compatible_with_the_one_before() -> None:
    registry = LocalSchemaRegistry.bundled()
    pairs = [
        (registry.by_version(schema.name, schema.version - 1), schema)
        for schema in registry.all()
        if schema.version > 1
    ]
    assert {new.name for _, new in pairs} >= {"edi.events.AcceptedMessage", "edi.events.Delivery"}
    for old, new in pairs:
        assert_compatible_both_ways(old, new)


def test_an_incompatible_change_is_caught() -> None:
    v1 = LocalSchemaRegistry.bundled().by_version("edi.events.AcceptedMessage", 1)
    breaking = copy.deepcopy(v1.definition)
    breaking["fields"].append({"name": "priority", "type": "string"})  # no default: old records lack it
    new = RegisteredSchema(99, v1.name, 2, breaking, parse(breaking))
    with pytest.raises(fastavro.read.SchemaResolutionError):
        assert_compatible_both_ways(v1, new)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "Confluent wire format"),
        (b"<MsgHead/>", "Confluent wire format"),
        (b"\x00\x00\x00\x03\xe7" + b"body", "unknown schema"),
        (default_codec().encode(EXAMPLES[4]), "expected a edi.events.AcceptedMessage record"),
        (default_codec().encode(EXAMPLES[0])[:-3], "cannot read"),
        (default_codec().encode(EXAMPLES[0]) + b"x", "left after the record"),
    ],
    ids=["tombstone", "raw-xml", "unknown-id", "other-event", "truncated", "trailing-bytes"],
)
def test_what_cannot_be_decoded_is_a_decode_error(data: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        default_codec().decode(data, AcceptedMessage)


def test_a_child_traceparent_stays_in_the_trace_with_a_new_span() -> None:
    parent = new_traceparent()
    child = child_traceparent(parent)
    assert child.split("-")[1] == parent.split("-")[1]
    assert child.split("-")[2] != parent.split("-")[2]
    assert child_traceparent("garbage").split("-")[1] != parent.split("-")[1]
    assert child_traceparent(f"00-{'0' * 32}-{'1' * 16}-01").split("-")[1] != "0" * 32


def test_correlation_round_trips_through_headers_and_children_keep_the_trace() -> None:
    correlation = Correlation(message_id=str(MESSAGE_ID), sender_her_id="8142987", traceparent=new_traceparent())
    assert Correlation.from_headers(correlation.to_headers()) == correlation
    child = correlation.child(receiver_her_id="8093238")
    assert child.message_id == correlation.message_id and child.receiver_her_id == "8093238"
    assert child.traceparent is not None and correlation.traceparent is not None
    assert child.traceparent.split("-")[1] == correlation.traceparent.split("-")[1]
    assert correlation.log_context() == {
        "message_id": str(MESSAGE_ID), "sender_her_id": "8142987", "traceparent": correlation.traceparent,
    }  # fmt: skip
