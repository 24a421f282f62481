"""The records on the backbone's topics, as typed models; their Avro schemas are `edi/schemas/avro/*.avsc`.

Each model names the Avro record and the schema version it reads and writes (`schema_name`,
`schema_version`), and the key its records are partitioned by. Field names and types follow the schema one to
one, so `model_dump()` is the Avro datum and a decoded datum validates straight back into the model.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator

from edi.core.problems import Problem


class _AvroModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _millisecond_precision(cls, value: Any) -> Any:
        # Avro timestamp-millis keeps milliseconds: trimming here makes decode(encode(event)) == event.
        if isinstance(value, datetime):
            return value.replace(microsecond=value.microsecond // 1000 * 1000)
        return value


class Event(_AvroModel):
    """A record on a topic: encoded with the schema `schema_name` version `schema_version`."""

    schema_name: ClassVar[str]
    schema_version: ClassVar[int]

    def partition_key(self) -> bytes | None:
        """The record key: records with the same key stay in order on one partition."""
        raise NotImplementedError


class BlobRef(_AvroModel):
    """A claim check: the document is in the blob store at `uri`."""

    uri: str
    size: int
    sha256: str


Document = bytes | BlobRef


class Source(StrEnum):
    API = "api"
    KAFKA = "kafka"


class AppRecErrorDetail(_AvroModel):
    code: str  # code list 8221
    description: str


class AppRecAnswer(_AvroModel):
    """What an AppRec answers: its status, the MsgId of the message it answers, and its errors."""

    status: str  # code list 8220
    original_msg_id: str
    errors: list[AppRecErrorDetail] = []


class RoutingFacts(_AvroModel):
    """What the router and the mailbox need of a document besides the event's own fields, read by the writer
    that parsed it already (see `edi.services.reading.routing_facts`), so they need not parse it again."""

    message_function: str | None = None  # MsgInfo/Type code (8279)
    service_description: str | None = None  # MsgDescr code (8202)
    is_apprec: bool
    gen_date: AwareDatetime | None = None
    apprec_answer: AppRecAnswer | None = None  # set when the document is an AppRec naming its status and original
    has_attachments: bool  # a RefDoc with an inline attachment or a FileReference: the router reads the document


class AcceptedMessage(Event):
    schema_name: ClassVar[str] = "edi.events.AcceptedMessage"
    schema_version: ClassVar[int] = 2

    message_id: UUID
    sender_her_id: str
    receiver_her_ids: list[str]
    msg_id: str
    message_type: str
    business_namespace: str
    document: Document
    received_at: AwareDatetime
    source: Source
    facts: RoutingFacts | None = None  # since version 2; None: a reader parses the document

    def partition_key(self) -> bytes:
        return str(self.message_id).encode()


class Delivery(Event):
    schema_name: ClassVar[str] = "edi.events.Delivery"
    schema_version: ClassVar[int] = 4

    message_id: UUID
    receiver_her_id: str
    sender_her_id: str
    msg_id: str
    message_type: str
    business_namespace: str
    document: Document
    received_at: AwareDatetime
    # The attachments the document refers to in the object service (RefDoc/FileReference), since version 2.
    attachments: list[BlobRef] = []
    facts: RoutingFacts | None = None  # since version 3: the accepted message's; None: the mailbox parses
    # Since version 4: the message's kind name (edi.core.kinds) and why the receiver got it without a capability
    # check (an unchecked_* outcome of the registry view), None when it was checked. None kind: an older router.
    kind: str | None = None
    unchecked_reason: str | None = None

    def partition_key(self) -> bytes:
        # Per receiver: a receiver's messages stay in order, and one mailbox partition serves it.
        return self.receiver_her_id.encode()


class ErrorDetail(_AvroModel):
    """One reason for a rejection, as the core reports it (`edi.core.problems.Problem` without severity)."""

    code: str
    apprec_code: str
    message: str
    message_nb: str
    line: int | None = None
    path: str | None = None

    @classmethod
    def of(cls, problem: Problem) -> ErrorDetail:
        return cls(code=problem.code, apprec_code=problem.apprec_code.value, message=problem.message,
                   message_nb=problem.message_nb, line=problem.line, path=problem.path)


class Rejection(Event):
    schema_name: ClassVar[str] = "edi.events.Rejection"
    schema_version: ClassVar[int] = 1

    message_id: UUID
    sender_her_id: str | None = None
    msg_id: str | None = None
    errors: list[ErrorDetail]
    original_message_type: str | None = None
    original_is_apprec: bool = False
    document: Document | None = None
    rejected_at: AwareDatetime

    def partition_key(self) -> bytes:
        return str(self.message_id).encode()


class TransportState(StrEnum):
    """Per receiver: the message waits (Unconfirmed), was read (Acknowledged), was refused for this receiver
    (Rejected), or expired unread (Abandoned)."""

    UNCONFIRMED = "Unconfirmed"
    ACKNOWLEDGED = "Acknowledged"
    REJECTED = "Rejected"
    ABANDONED = "Abandoned"


class StatusChange(Event):
    schema_name: ClassVar[str] = "edi.events.StatusChange"
    schema_version: ClassVar[int] = 1

    message_id: UUID
    receiver_her_id: str
    transport_state: TransportState
    apprec_status: str | None = None  # code list 8220
    apprec_errors: list[AppRecErrorDetail] = []
    at: AwareDatetime

    def partition_key(self) -> bytes:
        # Per message, so one status consumer sees every receiver's changes of a message in order.
        return str(self.message_id).encode()


class DeadLetter(Event):
    schema_name: ClassVar[str] = "edi.events.DeadLetter"
    schema_version: ClassVar[int] = 1

    service: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_timestamp: AwareDatetime
    original_key: bytes | None = None
    original_value: bytes | None = None
    reason: str
    attempts: int
    failed_at: AwareDatetime

    def partition_key(self) -> bytes | None:
        return self.original_key


class RegistryChange(Event):
    schema_name: ClassVar[str] = "edi.events.RegistryChange"
    schema_version: ClassVar[int] = 1

    kind: str
    key: str
    payload: str | None = None  # the registry's change record as JSON; None: the entity was deleted
    sequence: int

    def partition_key(self) -> bytes:
        # Compaction keeps the newest record per record key: the entity key makes that the entity's state.
        return self.key.encode()
