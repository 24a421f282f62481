"""`edi asyncapi`: the AsyncAPI 3.0 document of the backbone's topics, kept in deploy/asyncapi.yaml.

Everything in it comes from the code: the topics and their Kafka settings from edi.schemas.topics, each topic's
payload from the handler that consumes it (or, for the topics no service handler reads, from the table below),
the Avro schemas each event model writes, the record headers of edi.events.headers, and who sends and receives
from the services' declared handlers. A test regenerates it and compares it with the committed file.
"""

from __future__ import annotations

from dataclasses import fields
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from edi.events import DeadLetter, Event, LocalSchemaRegistry, RegistryChange
from edi.events import headers as h
from edi.schemas import topics
from edi.schemas.topics import ALL_TOPICS, CONSUMING_SERVICES, TopicSpec, dead_letter_topic
from edi.services.mailbox import service as mailbox
from edi.services.receipts import service as receipts
from edi.services.router import service as router
from edi.services.runtime import Service
from edi.services.status import service as status
from edi.services.validator import service as validator

AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
AVRO_CONTENT = "application/vnd.apache.avro+binary"  # in the Confluent wire format: byte 0, a 4-byte schema id
XML_CONTENT = "application/xml"
KAFKA_BINDING = "0.5.0"

_HEADER_DOCS = {
    h.MESSAGE_ID: "The backbone's id of the message (a UUID), assigned at ingress.",
    h.MSG_ID: "MsgHead MsgId as the sender set it.",
    h.SENDER_HER_ID: "The sender's HER-id.",
    h.RECEIVER_HER_ID: "The receiver's HER-id, on records about one receiver.",
    h.REQUEST_ID: "The HTTP request that brought the message in.",
    h.TRACEPARENT: "W3C Trace Context of the hop that produced the record.",
    h.DLQ_REASON: "Why the service gave up on the record.",
    h.DLQ_ATTEMPTS: "How many times the handler tried it.",
    h.DLQ_SERVICE: "The service (consumer group) that gave up.",
    h.DLQ_TOPIC: "The topic the record was read from.",
    h.DLQ_PARTITION: "Its partition there.",
    h.DLQ_OFFSET: "Its offset there.",
    h.REDRIVEN_FROM: "On a record an operator re-drove from a dead-letter topic (`edi ops dlq redrive`): "
                     "<service>@<offset> of the dead letter.",
}
_DEAD_LETTER_HEADERS = (h.DLQ_REASON, h.DLQ_ATTEMPTS, h.DLQ_SERVICE, h.DLQ_TOPIC, h.DLQ_PARTITION, h.DLQ_OFFSET)

# Records no service handler reads, and what writes records outside the services' handlers: the gateway (its
# in-process Backbone), the status janitor, the registry relay and the registry views of every process.
_UNHANDLED_PAYLOADS: dict[str, type[Event]] = {topics.REGISTRY: RegistryChange}
_OTHER_SENDERS: tuple[tuple[str, str, str], ...] = (
    ("gateway", topics.ACCEPTED, "A message submitted over the HTTP API, validated by the gateway itself."),
    ("gateway", topics.STATUS, "A receiver marked a message read (Acknowledged) or answered it with an AppRec."),
    ("status-janitor", topics.STATUS, "A message nobody read within its time to live (Abandoned)."),
    ("registry-relay", topics.REGISTRY, "A change of the capability registry, in the registry's commit order."),
)
_OTHER_RECEIVERS: tuple[tuple[str, str, str], ...] = (
    ("registry-view", topics.REGISTRY, "Each process that checks capabilities (router, mailbox, receipts, "
     "gateway) reads the whole topic into its registry view, in a group of its own that never commits."),
)
_INBOUND_DOC = ("A raw XML envelope (MsgHead, or a standalone KITH document) from a trusted internal producer; "
                "the validator checks it as the HTTP API would.")


def consuming_services() -> list[Service]:
    """The services the runtime runs, with their handlers. The builders only close over their dependencies (none
    is used while handlers are declared), so nothing stands in for the bus, store, registry view or validator."""
    absent: Any = None
    return [
        validator.build(absent, absent, validator.ValidatorSettings.model_construct()),
        router.build(absent),
        mailbox.build(absent, absent, absent),
        status.build(absent),
        receipts.build(absent, absent, receipts.ReceiptsSettings.model_construct()),
    ]


def document() -> dict[str, Any]:
    services = consuming_services()
    payloads: dict[str, type[Event] | type[bytes]] = dict(_UNHANDLED_PAYLOADS)
    for service in services:
        for route in service.routes.values():
            payloads[route.topic] = route.payload
    for service_name in CONSUMING_SERVICES:
        payloads[dead_letter_topic(service_name)] = DeadLetter

    registry = LocalSchemaRegistry.bundled()
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    for spec in ALL_TOPICS:
        payload = payloads[spec.name]
        if issubclass(payload, Event):
            schema = registry.by_version(payload.schema_name, payload.schema_version)
            message_name = schema.name.rsplit(".", 1)[1]
            messages[message_name] = _avro_message(message_name, schema.schema_id, schema.version, schema.definition,
                                                   dead_letter=payload is DeadLetter)
        else:  # raw bytes: edi.inbound
            message_name = "RawEnvelope"
            messages[message_name] = _raw_message(_INBOUND_DOC, redriven=True)
        channels[spec.name] = _channel(spec, message_name)
    channels["receiver"] = {
        "address": "{topic}",
        "description": "A receiver's own topic, named in its registry entry (delivery channel Kafka): the mailbox "
                       "also writes each of its documents there, keyed by its HER-id, created on first use with "
                       "one partition and a week's retention.",
        "parameters": {"topic": {"description": "The topic the receiver's registry entry names."}},
        "messages": {"ReceiverDocument": {"$ref": "#/components/messages/ReceiverDocument"}},
    }
    messages["ReceiverDocument"] = _raw_message("The delivered document, as the sender sent it.", redriven=False)

    operations: dict[str, Any] = {}
    for service in services:
        for route in service.routes.values():
            operations[f"{service.name}.receive.{route.topic}"] = _operation(
                "receive", route.topic, f"The {service.name} service's handler of {route.topic}.", group=service.name)
            for output in sorted(route.outputs):
                operations[f"{service.name}.send.{output}"] = _operation(
                    "send", output, f"The {service.name} service's handler of {route.topic} writes to {output}.")
        dead_letters = dead_letter_topic(service.name)
        operations[f"{service.name}.send.{dead_letters}"] = _operation(
            "send", dead_letters, f"A record the {service.name} service gave up on (poison, or out of retries), "
            "with its original key and headers; `edi ops dlq` lists, re-drives and parks them.")
    operations["mailbox.send.receiver"] = _operation("send", "receiver", "A delivered document, to the receiver's "
                                                     "own topic when its registry entry names one.")
    for sender, topic, description in _OTHER_SENDERS:
        operations[f"{sender}.send.{topic}"] = _operation("send", topic, description)
    for receiver, topic, description in _OTHER_RECEIVERS:
        operations[f"{receiver}.receive.{topic}"] = _operation("receive", topic, description)
    operations["producer.send.edi.inbound"] = _operation(
        "send", topics.INBOUND, "A trusted internal producer submits a raw envelope.")

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "edi-backbone topics",
            "version": version("edi-backbone"),
            "description": "The Kafka topics of the EDI backbone and the records on them. Event records are Avro in "
                           "the Confluent wire format (magic byte 0, the writer schema's id in 4 bytes big endian, "
                           "then the Avro body); the schema ids are those of src/edi/schemas/avro/ids.json. "
                           "Generated by `edi asyncapi`.",
            "license": {"name": "MIT"},
        },
        "defaultContentType": AVRO_CONTENT,
        "servers": {
            "kafka": {
                "host": "kafka:9092",
                "protocol": "kafka",
                "description": "The cluster in EDI_KAFKA_BOOTSTRAP_SERVERS. With EDI_BUS_NAMESPACE set, every topic "
                               "name and consumer group has the prefix '<namespace>.'.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _channel(spec: TopicSpec, message_name: str) -> dict[str, Any]:
    configuration: dict[str, Any] = {"cleanup.policy": ["compact" if spec.compacted else "delete"]}
    if not spec.compacted:
        configuration["retention.ms"] = -1 if spec.retention_ms is None else spec.retention_ms
    return {
        "address": spec.name,
        "messages": {message_name: {"$ref": f"#/components/messages/{message_name}"}},
        "bindings": {"kafka": {
            "topic": spec.name, "partitions": spec.partitions, "topicConfiguration": configuration,
            "bindingVersion": KAFKA_BINDING,
        }},
    }


def _headers(names: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Kafka record headers, UTF-8 strings; each is present when it is known.",
        "properties": {name: {"type": "string", "description": _HEADER_DOCS[name]} for name in names},
    }


def _correlation_headers() -> tuple[str, ...]:
    every = h.Correlation(**{field.name: "" for field in fields(h.Correlation)})
    return tuple(name for name, _ in every.to_headers())


def _avro_message(
    name: str, schema_id: int, schema_version: int, definition: dict[str, Any], *, dead_letter: bool,
) -> dict[str, Any]:
    names = _correlation_headers() + (_DEAD_LETTER_HEADERS if dead_letter else (h.REDRIVEN_FROM,))
    return {
        "name": name,
        "title": f"{name} v{schema_version} (schema id {schema_id})",
        "summary": definition.get("doc", ""),
        "contentType": AVRO_CONTENT,
        "headers": _headers(names),
        "payload": {"schemaFormat": AVRO_FORMAT, "schema": definition},
        "bindings": {"kafka": {
            "key": {"type": "string"},
            "schemaIdLocation": "payload",
            "schemaIdPayloadEncoding": "confluent",
            "bindingVersion": KAFKA_BINDING,
        }},
    }


def _raw_message(summary: str, *, redriven: bool) -> dict[str, Any]:
    return {
        "summary": summary,
        "contentType": XML_CONTENT,
        "headers": _headers((*_correlation_headers(), *((h.REDRIVEN_FROM,) if redriven else ()))),
        "payload": {"type": "string", "format": "binary"},
    }


def _operation(action: str, channel: str, description: str, *, group: str | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "description": description,
    }
    if group is not None:
        operation["bindings"] = {"kafka": {"groupId": {"type": "string", "enum": [group]},
                                           "bindingVersion": KAFKA_BINDING}}
    return operation


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, width=120, allow_unicode=True)


def asyncapi(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the document to this file instead of standard output.")] = None,
) -> None:
    """Print the AsyncAPI 3.0 document of the backbone's topics and records (committed as deploy/asyncapi.yaml)."""
    text = render()
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
