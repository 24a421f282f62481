"""The validator service: raw envelopes on edi.inbound -> edi.accepted, or edi.rejected with the core's errors.

The same admission rule as the gateway's `submit` (see `admission`), and the same duplicate handling: the first
document with a sender's MsgId is accepted; the same bytes again are the same message (same id, delivered once,
since the mailbox keeps one copy per sender, MsgId and receiver); other content under a used MsgId is refused
with E10. Message ids come from the content, so a record the validator sees twice is still one message.

With an object service (`Attachments`), FileReferences the sender wrote to it are checked (the object exists, is
the sender's and lists every receiver), and inline attachments over the threshold are moved to it before the
message goes on to edi.accepted, as the gateway's `submit` does.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from edi.core.extract import find_headers, read_header
from edi.core.header import RoutingHeader
from edi.core.parsing import parse_xml
from edi.core.problems import DocumentRefused
from edi.core.validation import ValidationReport, Validator
from edi.events import AcceptedMessage, ErrorDetail, Rejection, Source
from edi.observability import metrics
from edi.schemas.topics import ACCEPTED, INBOUND
from edi.services.messaging import RefusalKind
from edi.services.objects.offload import Attachments
from edi.services.reading import ingress_facts
from edi.services.runtime import STORE_WRITER_CONCURRENCY, Message, Output, Reject, Result, Service
from edi.services.store import AcceptedRecord, BackboneSettings, BackboneStore, ClaimOutcome
from edi.services.validator.admission import (
    Refusal,
    admit,
    content_message_id,
    duplicate_msgid,
    sha256_of,
    type_code,
)

log = structlog.get_logger(__name__)

# Above this size a document is validated on a worker thread, so the event loop (heartbeats, other partitions)
# is not held up for the long parse; below it the hop would cost more than it saves.
THREAD_THRESHOLD_BYTES = 256 * 1024


class ValidatorSettings(BackboneSettings):
    # Refuse (T10) a document with a part of a known standard whose schema is not installed, instead of accepting
    # it with a warning (a part in a namespace no published schema covers is accepted all the same; see admission).
    require_schemas: bool = False


async def validate(validator: Validator, document: bytes) -> ValidationReport:
    if len(document) > THREAD_THRESHOLD_BYTES:
        return await asyncio.to_thread(validator.validate, document)
    return validator.validate(document)


def error_details(refusal: Refusal) -> list[ErrorDetail]:
    return [ErrorDetail.of(p) for p in refusal.problems]


def build(
    validator: Validator, store: BackboneStore, settings: ValidatorSettings, attachments: Attachments | None = None,
) -> Service:
    service = Service("validator")

    @service.handler(INBOUND, payload=bytes, outputs=[ACCEPTED], rejections=_rejection,
                     concurrency=STORE_WRITER_CONCURRENCY)
    async def admit_inbound(message: Message[bytes]) -> Result:
        document = message.payload
        metrics.MESSAGES_RECEIVED.labels("validator", "kafka").inc()
        admission = admit(await validate(validator, document), require_schemas=settings.require_schemas)
        if isinstance(admission, Refusal):
            return Reject(admission.apprec_code, admission.message, error_details(admission))
        if attachments is not None and (problems := await attachments.check(admission.header)):
            refusal = Refusal(RefusalKind.INVALID_DOCUMENT, tuple(problems))
            return Reject(refusal.apprec_code, refusal.message, error_details(refusal))
        received_at = datetime.fromtimestamp(message.record.timestamp_ms / 1000, UTC)
        claim = await store.claim(AcceptedRecord(
            message_id=content_message_id(document), sender_her_id=admission.sender_her_id,
            msg_id=admission.msg_id, sha256=sha256_of(document), message_type=admission.message_type,
            is_apprec=admission.is_apprec, accepted_at=received_at,
        ))
        if claim.outcome is ClaimOutcome.CONFLICT:
            duplicate = duplicate_msgid(admission.sender_her_id, admission.msg_id)
            refusal = Refusal(RefusalKind.DUPLICATE_MSGID, (duplicate,))
            return Reject(refusal.apprec_code, refusal.message, error_details(refusal))
        facts = ingress_facts(admission.header, document)  # of what was validated, before any offload
        if attachments is not None:  # after the claim: the message's id and duplicate check are of what was sent
            document = (await attachments.offload(document, admission.header)).document
        accepted = AcceptedMessage(
            message_id=claim.message_id, sender_her_id=admission.sender_her_id,
            receiver_her_ids=list(admission.receiver_her_ids), msg_id=admission.msg_id,
            message_type=admission.message_type, business_namespace=admission.header.business_namespace,
            document=document, received_at=received_at, source=Source.KAFKA, facts=facts,
        )
        correlation = message.correlation.child(
            message_id=str(claim.message_id), msg_id=admission.msg_id, sender_her_id=admission.sender_her_id)
        if claim.outcome is ClaimOutcome.NEW:
            metrics.MESSAGES_ACCEPTED.labels("validator", "kafka").inc()
        return [Output(ACCEPTED, accepted, correlation=correlation)]

    return service


def _rejection(message: Message[bytes], reject: Reject) -> Rejection:
    """The Rejection of a refused inbound document: the receipts service answers its sender from it."""
    header = header_or_none(message.payload)
    return Rejection(
        message_id=content_message_id(message.payload),
        sender_her_id=header.sender_her_id if header else None,
        msg_id=header.msg_id if header else None,
        errors=list(reject.errors),
        original_message_type=type_code(header) if header else None,
        original_is_apprec=header.is_apprec if header else False,
        document=message.payload,
        rejected_at=datetime.now(UTC),
    )


def header_or_none(document: bytes) -> RoutingHeader | None:
    """The routing header, if the document has a readable one (a refused document may not)."""
    try:
        headers = find_headers(parse_xml(document))
    except DocumentRefused:
        return None
    return read_header(headers[0]) if headers else None
