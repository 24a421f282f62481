"""A test double of the Messaging seam: the documented semantics, in memory, validating with the real core.

It stands in for the backbone (bus, router, mailbox, status, receipts) so that the gateway and the client can be
tested on their own. What it does, the backbone does too: validate synchronously, refuse with the documented
RefusalKind, deliver one mailbox entry per receiver, answer AppRecs, and record a notification for every step.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID, uuid4

from lxml import etree

from edi.core.apprec import AppRecError, AppRecNotAllowed, AppRecStatus, build_apprec
from edi.core.header import RoutingHeader
from edi.core.rules import parse_kith_datetime
from edi.core.validation import Validator
from edi.events import TransportState
from edi.services.messaging import (
    AppRecErrorInfo,
    AppRecInfo,
    MailboxEntry,
    Notification,
    NotificationKind,
    ReceiverStatus,
    RefusalKind,
    Refused,
    Submitted,
)


@dataclass
class _Stored:
    message_id: UUID
    document: bytes
    digest: str
    header: RoutingHeader
    entries: dict[str, MailboxEntry]  # by receiver HER-id
    states: dict[str, TransportState]
    apprecs: dict[str, AppRecInfo] = field(default_factory=dict)


class InMemoryMessaging:
    def __init__(self, validator: Validator) -> None:
        self._validator = validator
        self._messages: dict[UUID, _Stored] = {}
        self._by_msg_id: dict[tuple[str, str], UUID] = {}  # (sender HER-id, MsgId)
        self._notifications: list[Notification] = []
        self._changed = asyncio.Condition()

    async def submit(
        self, document: bytes, *, allowed_sender_her_ids: frozenset[str] | None,
        receiver_subset: Sequence[str] | None = None, request_id: str | None = None,
    ) -> Submitted:
        report = self._validator.validate(document)
        header = report.header
        if report.errors or header is None:
            raise Refused(RefusalKind.INVALID_DOCUMENT, "the document is not valid", report.errors)
        sender = header.sender_her_id
        if sender is None:
            raise Refused(RefusalKind.INVALID_DOCUMENT, "the document names no sender HER-id")
        if allowed_sender_her_ids is not None and sender not in allowed_sender_her_ids:
            raise Refused(RefusalKind.SENDER_NOT_AUTHORISED, f"Not authorized for HerId(s): {sender}")
        receivers = header.receiver_her_ids
        if receiver_subset is not None:
            receivers = [r for r in receivers if r in set(receiver_subset)]
        if not receivers:
            raise Refused(RefusalKind.NO_RECEIVERS, "the receivers cannot be worked out from the document")
        digest = hashlib.sha256(document).hexdigest()
        key = (sender, header.msg_id or "")
        if key in self._by_msg_id:
            original = self._messages[self._by_msg_id[key]]
            if original.digest == digest:
                return Submitted(message_id=original.message_id, duplicate=True)
            raise Refused(RefusalKind.DUPLICATE_MSGID, f"MsgId {header.msg_id} was used before for another message")
        is_apprec = header.standard == "AppRec"
        gen_date = parse_kith_datetime(header.gen_date) if header.gen_date else None
        now = datetime.now(UTC)
        message_id = uuid4()
        entries = {
            r: MailboxEntry(
                message_id=message_id, receiver_her_id=r, sender_her_id=sender, msg_id=header.msg_id or "",
                gen_date=gen_date, is_apprec=is_apprec, received_at=now,
            )
            for r in receivers
        }
        self._messages[message_id] = _Stored(
            message_id, document, digest, header, entries, dict.fromkeys(receivers, TransportState.UNCONFIRMED),
        )
        self._by_msg_id[key] = message_id
        async with self._changed:
            for receiver in receivers:
                self._notify(NotificationKind.NEW_MESSAGE, receiver, message_id, sender)
            if is_apprec:
                self._record_apprec(header, sender, _apprec_errors(document))
            self._changed.notify_all()
        return Submitted(message_id=message_id)

    def _record_apprec(
        self, header: RoutingHeader, apprec_sender: str, errors: tuple[AppRecErrorInfo, ...],
    ) -> None:
        """An AppRec answers the message its OriginalMsgId names, sent by the AppRec's receiver."""
        original_sender = header.receiver_her_ids[0] if header.receiver_her_ids else None
        original_id = self._by_msg_id.get((original_sender or "", header.original_msg_id or ""))
        if original_id is None:
            return
        original = self._messages[original_id]
        code = header.apprec_status.code if header.apprec_status else None
        status = AppRecStatus(code) if code else None
        original.apprecs[apprec_sender] = AppRecInfo(receiver_her_id=apprec_sender, apprec_status=status, errors=errors)
        self._notify(NotificationKind.MESSAGE_APPREC_INFO_UPDATED, original.header.sender_her_id or "", original_id,
                     apprec_sender)

    def _notify(self, kind: NotificationKind, her_id: str, message_id: UUID, counterpart: str | None) -> None:
        self._notifications.append(Notification(
            offset=len(self._notifications) + 1, kind=kind, her_id=her_id, message_id=message_id,
            counterpart_her_id=counterpart, at=datetime.now(UTC),
        ))

    async def unread(
        self, receiver_her_ids: Sequence[str], *, sender_her_id: str | None = None, msg_id: str | None = None,
        limit: int = 10, newest_first: bool = False,
    ) -> list[MailboxEntry]:
        wanted = set(receiver_her_ids)
        found = [
            e for m in self._messages.values() for r, e in m.entries.items()
            if r in wanted and not e.read and (sender_her_id is None or e.sender_her_id == sender_her_id)
            and (msg_id is None or e.msg_id == msg_id)
        ]
        found.sort(key=lambda e: (e.gen_date or e.received_at, e.received_at), reverse=newest_first)
        return found[:limit]

    async def entries(self, message_id: UUID) -> list[MailboxEntry]:
        stored = self._messages.get(message_id)
        return list(stored.entries.values()) if stored else []

    async def business_document(self, message_id: UUID, receiver_her_id: str) -> bytes | None:
        stored = self._messages.get(message_id)
        return stored.document if stored and receiver_her_id in stored.entries else None

    async def mark_read(self, message_id: UUID, receiver_her_id: str) -> bool:
        stored = self._messages.get(message_id)
        if stored is None or receiver_her_id not in stored.entries:
            return False
        entry = stored.entries[receiver_her_id]
        if not entry.read:
            stored.entries[receiver_her_id] = entry.model_copy(update={"read": True})
            stored.states[receiver_her_id] = TransportState.ACKNOWLEDGED
            async with self._changed:
                self._notify(NotificationKind.MESSAGE_SENT_STATE_UPDATED, entry.sender_her_id, message_id,
                             receiver_her_id)
                self._changed.notify_all()
        return True

    async def status(self, message_id: UUID) -> list[ReceiverStatus]:
        stored = self._messages.get(message_id)
        if stored is None:
            return []
        return [
            ReceiverStatus(
                receiver_her_id=r, transport_state=state,
                apprec_status=stored.apprecs[r].apprec_status if r in stored.apprecs else None,
            )
            for r, state in stored.states.items()
        ]

    async def apprec_info(self, message_id: UUID) -> list[AppRecInfo]:
        stored = self._messages.get(message_id)
        if stored is None:
            return []
        return [stored.apprecs.get(r, AppRecInfo(receiver_her_id=r)) for r in stored.entries]

    async def sender_of(self, message_id: UUID) -> str | None:
        stored = self._messages.get(message_id)
        return stored.header.sender_her_id if stored else None

    async def send_apprec(
        self, message_id: UUID, apprec_sender_her_id: str, status: AppRecStatus, errors: Sequence[AppRecError],
    ) -> Submitted:
        stored = self._messages[message_id]
        header = stored.header
        if header.standard == "AppRec":
            raise Refused(RefusalKind.APPREC_TO_APPREC, "an AppRec is never answered with an AppRec")
        if apprec_sender_her_id not in stored.entries:
            raise Refused(RefusalKind.APPREC_FROM_NON_RECEIVER, f"{apprec_sender_her_id} is not a receiver")
        parties = [p for p in (header.receiver, *header.copy_receivers) if p and p.her_id == apprec_sender_her_id]
        try:
            document = build_apprec(header, status, errors, sender=parties[0] if parties else None)
        except AppRecNotAllowed as refused:
            raise Refused(RefusalKind.INVALID_DOCUMENT, str(refused)) from None
        return await self.submit(document, allowed_sender_her_ids=None)

    async def notifications(self, her_ids: Sequence[str], *, after: int = 0, limit: int = 100) -> list[Notification]:
        wanted = set(her_ids)
        return [n for n in self._notifications if n.offset > after and n.her_id in wanted][:limit]

    async def follow(self, her_ids: Sequence[str], *, after: int = 0) -> AsyncIterator[Notification]:
        wanted = set(her_ids)
        position = after
        while True:
            async with self._changed:
                while self._latest() <= position:
                    await self._changed.wait()
                latest = self._latest()
                batch = [n for n in self._notifications[position:latest] if n.her_id in wanted]
            position = latest
            for notification in batch:
                yield notification

    def _latest(self) -> int:
        return self._notifications[-1].offset if self._notifications else 0


def _apprec_errors(document: bytes) -> tuple[AppRecErrorInfo, ...]:
    """The Error elements of an AppRec (the routing header carries its status, not its errors)."""
    root = etree.fromstring(document)
    return tuple(
        AppRecErrorInfo(code=e.get("V", ""), details=e.get("OT"), description=e.get("DN"), oid=e.get("S"))
        for e in root.iter("{*}Error")
    )
