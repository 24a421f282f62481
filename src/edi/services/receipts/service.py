"""The receipts service: edi.rejected -> a negative AppRec (status 2, Avvist, with every error) addressed to the
refused message's sender, in the version the sender can consume, sent through the same flow (edi.accepted,
then the router's capability check, then the sender's mailbox).

Never an AppRec to an AppRec, and at most one per message: the AppRec's message id and Id are derived from the
refused message's id, so however often a rejection comes, the sender's mailbox (one copy per sender, MsgId and
receiver) holds one receipt.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import structlog

from edi.core.apprec import AppRecError, AppRecNotAllowed, AppRecStatus, build_apprec
from edi.core.header import HER, Ident, LevelKind, Party, PartyLevel
from edi.events import AcceptedMessage, Rejection, Source
from edi.schemas.topics import ACCEPTED, REJECTED
from edi.services.reading import read_facts
from edi.services.receipts.answer import NAMESPACES, apprec_version
from edi.services.registry_relay.feed import RegistryFeed
from edi.services.runtime import Message, Output, Result, Service
from edi.services.store import BackboneSettings, BackboneStore
from edi.services.validator.admission import BACKBONE_NAMESPACE
from edi.services.validator.service import header_or_none

log = structlog.get_logger(__name__)


class ReceiptsSettings(BackboneSettings):
    # The messaging service's own HER-id as the sender of its receipts; unset: the refused message's receiver.
    receipts_sender_her_id: str | None = None
    receipts_sender_name: str = "EDI-meldingstjeneste"

    def receipts_sender(self) -> Party | None:
        if self.receipts_sender_her_id is None:
            return None
        level = PartyLevel(kind=LevelKind.ORGANISATION, name=self.receipts_sender_name,
                           idents=(Ident(id=self.receipts_sender_her_id, type=HER),))
        return Party(levels=(level,))


def receipt_id(message_id: uuid.UUID) -> uuid.UUID:
    """The id of the negative AppRec answering a refused message (also its AppRec Id and MsgId)."""
    return uuid.uuid5(BACKBONE_NAMESPACE, f"apprec/{message_id}")


def build(store: BackboneStore, feed: RegistryFeed, settings: ReceiptsSettings) -> Service:
    service = Service("receipts")
    own_party = settings.receipts_sender()

    @service.handler(REJECTED, payload=Rejection, outputs=[ACCEPTED])
    async def answer(message: Message[Rejection]) -> Result:
        rejection = message.payload
        await store.record_refusal(rejection)  # why, for the operators (`edi ops history`), answered or not
        if rejection.original_is_apprec:
            log.info("no receipt: an AppRec is never answered with an AppRec")
            return []
        header = header_or_none(rejection.document) if isinstance(rejection.document, bytes) else None
        if header is None or rejection.sender_her_id is None:
            log.info("no receipt: the refused document names no sender to answer")
            return []
        sender = own_party or header.receiver
        if sender is None or sender.her_id is None:
            log.info("no receipt: neither the refused document's receiver nor EDI_RECEIPTS_SENDER_HER_ID has a "
                     "HER-id to send it from")
            return []
        now = datetime.now(UTC)
        version = apprec_version(await feed.wait_ready(), rejection.sender_her_id, now)
        apprec_id = receipt_id(rejection.message_id)
        errors = [AppRecError(code=e.apprec_code, description=e.message_nb) for e in rejection.errors]
        try:
            document = build_apprec(header, AppRecStatus.AVVIST, errors, version=version, sender=sender,
                                    apprec_id=str(apprec_id))
        except AppRecNotAllowed as exc:
            log.info("no receipt", reason=str(exc))
            return []
        await store.record_receipt(rejection.message_id, apprec_id, now)
        # Read back from the AppRec just built (small, and receipts are rare): exactly what the router and the
        # mailbox would read, without either parsing it.
        read = read_facts(document)
        receipt = AcceptedMessage(
            message_id=apprec_id, sender_her_id=sender.her_id, receiver_her_ids=[rejection.sender_her_id],
            msg_id=str(apprec_id), message_type="APPREC", business_namespace=NAMESPACES[version],
            document=document, received_at=now, source=Source.KAFKA, facts=read[1] if read else None,
        )
        correlation = message.correlation.child(
            message_id=str(apprec_id), msg_id=str(apprec_id), sender_her_id=sender.her_id,
            receiver_her_id=rejection.sender_her_id)
        return [Output(ACCEPTED, receipt, correlation=correlation)]

    return service
