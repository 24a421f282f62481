"""The Messaging seam implemented over the bus and the SQL store: what the gateway (and `edi send`/`edi inbox`)
use in-process.

`submit` validates with the core and applies the same admission rule as the validator service, enforces the
caller's sender HER-ids, detects duplicates, and returns once the accepted message is acknowledged by the bus:
it writes straight to edi.accepted, since it has done the validator's work already. The read methods query the
store the mailbox and status services materialise; `mark_read` publishes the Acknowledged status the status
service records; `send_apprec` builds an AppRec and submits it like any document.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

import structlog

from edi.adapters.bus import Bus
from edi.core.apprec import AppRecError, AppRecNotAllowed, AppRecStatus, build_apprec
from edi.core.validation import Validator
from edi.events import AcceptedMessage, Source, StatusChange, TransportState, default_codec
from edi.events.headers import Correlation, new_traceparent
from edi.observability import metrics
from edi.observability.tracing import current_traceparent
from edi.schemas.topics import ACCEPTED, STATUS
from edi.services.messaging import (
    AppRecErrorInfo,
    AppRecInfo,
    DocumentUnavailable,
    MailboxEntry,
    Notification,
    ReceiverStatus,
    RefusalKind,
    Refused,
    Submitted,
)
from edi.services.objects.offload import Attachments, AttachmentsTooLarge
from edi.services.objects.service import ObjectError
from edi.services.objects.settings import ObjectSettings
from edi.services.reading import ingress_facts, read_delivered
from edi.services.receipts.answer import FALLBACK, apprec_version
from edi.services.receipts.service import receipt_id
from edi.services.registry_relay.feed import RegistryFeed
from edi.services.store import AcceptedRecord, BackboneSettings, BackboneStore, ClaimOutcome, open_bus_and_store
from edi.services.validator.admission import Refusal, admit, duplicate_msgid, sha256_of
from edi.services.validator.service import header_or_none, validate
from edi.settings import ValidationSettings

log = structlog.get_logger(__name__)

# How long send_apprec waits for a fresh registry view before it falls back to the default AppRec version.
REGISTRY_WAIT_S = 5.0


class MessagingSettings(BackboneSettings):
    # Refuse (T10) a document with a part whose schema is not installed (the validator service's setting too).
    require_schemas: bool = False
    # How often `follow` looks for new notifications.
    follow_interval_s: float = 0.25


class Backbone:
    def __init__(
        self, *, bus: Bus, store: BackboneStore, validator: Validator, feed: RegistryFeed | None = None,
        require_schemas: bool = False, follow_interval_s: float = 0.25, attachments: Attachments | None = None,
    ) -> None:
        """From explicit parts, all started; `feed` (a registry view) picks the AppRec version `send_apprec`
        builds, and without it AppRecs are version 1.0. `attachments`: large attachments go to the object service
        at submission and come back inline for receivers that cannot read FileReference."""
        self._bus = bus
        self._store = store
        self._validator = validator
        self._feed = feed
        self._require_schemas = require_schemas
        self._follow_interval_s = follow_interval_s
        self._attachments = attachments
        self._codec = default_codec()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, settings: MessagingSettings | None = None, validator: Validator | None = None,
    ) -> AsyncIterator[Backbone]:
        """A backbone on the configured bus and store, with a registry view of its own, closed on exit; it
        validates with `validator`, by default one of the EDI_SCHEMA_DIRS settings."""
        settings = settings or MessagingSettings()
        async with AsyncExitStack() as stack:
            bus, store = await open_bus_and_store(settings, stack)
            feed = RegistryFeed(bus, "backbone")
            stop = asyncio.Event()
            following = asyncio.create_task(feed.run(stop), name="backbone-registry-view")

            async def stop_feed() -> None:
                stop.set()
                await following

            stack.push_async_callback(stop_feed)
            attachments = await ObjectSettings(data_dir=settings.data_dir).open_attachments()
            stack.push_async_callback(attachments.objects.close)
            backbone = cls(bus=bus, store=store, validator=validator or ValidationSettings().validator(), feed=feed,
                           require_schemas=settings.require_schemas, follow_interval_s=settings.follow_interval_s,
                           attachments=attachments)
            yield backbone

    # --- submitting -----------------------------------------------------------------------------------------

    async def submit(
        self, document: bytes, *, allowed_sender_her_ids: frozenset[str] | None,
        receiver_subset: Sequence[str] | None = None, request_id: str | None = None,
    ) -> Submitted:
        metrics.MESSAGES_RECEIVED.labels("gateway", "api").inc()
        admission = admit(await validate(self._validator, document), require_schemas=self._require_schemas)
        if isinstance(admission, Refusal):
            metrics.refused("gateway", [admission.apprec_code])
            raise Refused(admission.kind, admission.message, admission.problems)
        sender = admission.sender_her_id
        if allowed_sender_her_ids is not None and sender not in allowed_sender_her_ids:
            named = f"HER-id {sender}" if sender else "a sender without a HER-id"
            raise Refused(RefusalKind.SENDER_NOT_AUTHORISED, f"the caller may not send as {named}")
        receivers = list(admission.receiver_her_ids)
        if receiver_subset is not None:
            strangers = sorted(set(receiver_subset) - set(receivers))
            if strangers:
                raise Refused(RefusalKind.NO_RECEIVERS,
                              f"the document does not name {', '.join(strangers)} as receiver or copy receiver")
            receivers = [r for r in receivers if r in receiver_subset]
            if not receivers:
                raise Refused(RefusalKind.NO_RECEIVERS, "no receivers were chosen")
        if self._attachments is not None and (problems := await self._attachments.check(admission.header)):
            raise Refused(RefusalKind.INVALID_DOCUMENT, "; ".join(p.message for p in problems), problems)
        now = datetime.now(UTC)
        claim = await self._store.claim(AcceptedRecord(
            message_id=uuid.uuid4(), sender_her_id=sender, msg_id=admission.msg_id, sha256=sha256_of(document),
            message_type=admission.message_type, is_apprec=admission.is_apprec,
            accepted_at=now,
        ))
        if claim.outcome is ClaimOutcome.CONFLICT:
            problem = duplicate_msgid(sender, admission.msg_id)
            metrics.refused("gateway", [problem.apprec_code.value])
            raise Refused(RefusalKind.DUPLICATE_MSGID, problem.message, [problem])
        # New, or the same document again: published (again), since nothing records whether the first one
        # reached the bus; the services take a second publication as the message they have, by its id.
        facts = ingress_facts(admission.header, document)  # of what was validated, before any offload
        if self._attachments is not None:  # large attachments by reference: the record must fit the bus
            document = (await self._attachments.offload(document, admission.header)).document
        accepted = AcceptedMessage(
            message_id=claim.message_id, sender_her_id=sender, receiver_her_ids=receivers, msg_id=admission.msg_id,
            message_type=admission.message_type,
            business_namespace=admission.header.business_namespace, document=document, received_at=now,
            source=Source.API, facts=facts,
        )
        correlation = Correlation(message_id=str(claim.message_id), msg_id=admission.msg_id, sender_her_id=sender,
                                  request_id=request_id, traceparent=current_traceparent() or new_traceparent())
        await self._bus.produce(ACCEPTED, self._codec.encode(accepted), key=accepted.partition_key(),
                                headers=correlation.to_headers())
        log.info("message accepted", request_id=request_id, message_id=str(claim.message_id), msg_id=admission.msg_id,
                 sender_her_id=sender, receivers=len(receivers), warnings=len(admission.warnings))
        if claim.outcome is ClaimOutcome.NEW:
            metrics.MESSAGES_ACCEPTED.labels("gateway", "api").inc()
        return Submitted(message_id=claim.message_id, duplicate=claim.outcome is ClaimOutcome.SAME)

    async def send_apprec(
        self, message_id: UUID, apprec_sender_her_id: str, status: AppRecStatus, errors: Sequence[AppRecError],
    ) -> Submitted:
        entry = next((e for e in await self._store.entries(message_id)
                      if e.receiver_her_id == apprec_sender_her_id), None)
        if entry is None:
            raise Refused(RefusalKind.APPREC_FROM_NON_RECEIVER,
                          f"HER-id {apprec_sender_her_id} did not receive message {message_id}")
        if entry.is_apprec:
            raise Refused(RefusalKind.APPREC_TO_APPREC, "an AppRec is never answered with an AppRec")
        original = await self._store.document(message_id, apprec_sender_her_id)
        header = None if original is None else header_or_none(original)
        if header is None:
            raise Refused(RefusalKind.INVALID_DOCUMENT, f"message {message_id} has no routing header to answer")
        sender = next((p for p in (header.receiver, *header.copy_receivers)
                       if p is not None and p.her_id == apprec_sender_her_id), None)
        version = FALLBACK
        if self._feed is not None:
            with contextlib.suppress(TimeoutError):
                view = await asyncio.wait_for(self._feed.wait_ready(), REGISTRY_WAIT_S)
                version = apprec_version(view, entry.sender_her_id, datetime.now(UTC))
        try:
            document = build_apprec(header, status, errors, version=version, sender=sender)
        except AppRecNotAllowed as exc:
            raise Refused(RefusalKind.INVALID_DOCUMENT, str(exc)) from None
        return await self.submit(document, allowed_sender_her_ids=frozenset({apprec_sender_her_id}))

    # --- reading --------------------------------------------------------------------------------------------

    async def unread(
        self, receiver_her_ids: Sequence[str], *, sender_her_id: str | None = None, msg_id: str | None = None,
        limit: int = 10, newest_first: bool = False,
    ) -> list[MailboxEntry]:
        return await self._store.unread(receiver_her_ids, sender_her_id=sender_her_id, msg_id=msg_id, limit=limit,
                                        newest_first=newest_first)

    async def entries(self, message_id: UUID) -> list[MailboxEntry]:
        return await self._store.entries(message_id)

    async def business_document(self, message_id: UUID, receiver_her_id: str) -> bytes | None:
        document = await self._store.document(message_id, receiver_her_id)
        if document is None or self._attachments is None:
            return document
        view = None if self._feed is None else await self._feed.wait_ready()
        try:
            return await self._attachments.for_receiver(document, receiver_her_id, view)
        except (AttachmentsTooLarge, ObjectError) as exc:
            raise DocumentUnavailable(f"the document's attachments cannot be put back inline: {exc}") from exc

    async def mark_read(self, message_id: UUID, receiver_her_id: str) -> bool:
        entry = next((e for e in await self._store.entries(message_id) if e.receiver_her_id == receiver_her_id), None)
        if entry is None:
            return False
        if entry.read:
            return True
        # The status first, then the mark: if the mark fails, the caller retries and the status (which the status
        # service records once) is simply published again.
        now = datetime.now(UTC)
        change = StatusChange(message_id=message_id, receiver_her_id=receiver_her_id,
                              transport_state=TransportState.ACKNOWLEDGED, at=now)
        headers = Correlation(message_id=str(message_id), receiver_her_id=receiver_her_id,
                              sender_her_id=entry.sender_her_id,
                              traceparent=current_traceparent() or new_traceparent()).to_headers()
        await self._bus.produce(STATUS, self._codec.encode(change), key=change.partition_key(), headers=headers)
        await self._store.mark_read(message_id, receiver_her_id, now)
        metrics.MESSAGES_READ.labels("gateway").inc()
        if self._attachments is not None and (document := await self._store.document(message_id, receiver_her_id)):
            view = None if self._feed is None else await self._feed.wait_ready()
            await self._attachments.confirm_inline(document, receiver_her_id, view)
        return True

    async def status(self, message_id: UUID) -> list[ReceiverStatus]:
        return await self._store.status(message_id)

    async def apprec_info(self, message_id: UUID) -> list[AppRecInfo]:
        return await self._store.apprec_info(message_id)

    async def sender_of(self, message_id: UUID) -> str | None:
        return await self._store.sender_of(message_id)

    async def refusal(self, message_id: UUID) -> list[AppRecErrorInfo]:
        """Why the backbone refused receivers of a message it had accepted: the errors of the negative AppRec it
        sent the sender (empty when there is none in the sender's mailbox)."""
        sender = await self._store.sender_of(message_id)
        document = None if sender is None else await self._store.document(receipt_id(message_id), sender)
        answer = None if document is None else read_delivered(document).answer
        return [] if answer is None else [AppRecErrorInfo(code=e.code, details=e.description) for e in answer.errors]

    async def notifications(self, her_ids: Sequence[str], *, after: int = 0, limit: int = 100) -> list[Notification]:
        return await self._store.notifications(her_ids, after=after, limit=limit)

    async def follow(self, her_ids: Sequence[str], *, after: int = 0) -> AsyncIterator[Notification]:
        while True:
            batch = await self._store.notifications(her_ids, after=after)
            for notification in batch:
                yield notification
                after = notification.offset
            if not batch:
                await asyncio.sleep(self._follow_interval_s)
