"""The seam between the HTTP gateway and the rest of the backbone.

The gateway (EDI 2.0 API, notifications) needs exactly this from the backbone: submit a business document,
read a receiver's mailbox, mark messages read, see per-receiver transport and AppRec status, send an AppRec,
and follow notifications. The services implement it over the bus and the SQL store; the gateway depends on
nothing else, so each side can be tested and deployed on its own.

Authorisation is the gateway's job (it knows the caller's HER-ids); this seam takes the HER-ids it is given as
already authorised, except where noted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from edi.core.apprec import AppRecError, AppRecStatus
from edi.core.problems import Problem
from edi.events.models import TransportState


class RefusalKind(StrEnum):
    """Why a submission is refused; the gateway maps each to NHN's numeric error codes."""

    INVALID_DOCUMENT = "invalid_document"  # 1000 with validationErrors
    APPREC_TO_APPREC = "apprec_to_apprec"  # 1100
    APPREC_FROM_NON_RECEIVER = "apprec_from_non_receiver"  # 1102
    NO_RECEIVERS = "no_receivers"  # 1200: the receivers cannot be worked out from the document
    SENDER_NOT_AUTHORISED = "sender_not_authorised"  # 1201: the caller may not send as the document's sender
    DUPLICATE_MSGID = "duplicate_msgid"  # 1000: same sender and MsgId, different content (E10)


class DocumentUnavailable(Exception):
    """The document exists but cannot be given to this receiver now: an attachment it must get inline is gone
    (deleted, expired) or would make it too large. The message says which and why."""


class Refused(Exception):
    """The submission was not accepted; nothing was put on the bus."""

    def __init__(self, kind: RefusalKind, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.problems = tuple(problems)


class Submitted(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: UUID
    duplicate: bool = False  # the same document was accepted before: this is its original id


class MailboxEntry(BaseModel):
    """One message as one receiver sees it."""

    model_config = ConfigDict(frozen=True)

    message_id: UUID
    receiver_her_id: str
    sender_her_id: str
    msg_id: str  # the business document's own id (MsgId)
    gen_date: datetime | None  # the business document's GenDate: mailboxes are ordered by it
    is_apprec: bool
    content_type: str = "application/xml"
    received_at: datetime
    read: bool = False
    kind: str | None = None  # the message's kind name (edi.core.kinds); None: delivered by an older router
    unchecked_reason: str | None = None  # why this receiver got it without a capability check; None: checked


class ReceiverStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    receiver_her_id: str
    transport_state: TransportState
    apprec_status: AppRecStatus | None = None  # None until the receiver's AppRec has arrived


class AppRecErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str  # e.g. E21, T02
    details: str | None = None  # the free text (OT) the receiver gave
    description: str | None = None  # the code's display name (DN)
    oid: str | None = None  # the code system (S), 2.16.578.1.12.4.1.1.8221 for AppRec errors


class AppRecInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    receiver_her_id: str
    apprec_status: AppRecStatus | None = None
    errors: tuple[AppRecErrorInfo, ...] = ()


class NotificationKind(StrEnum):
    NEW_MESSAGE = "NewMessage"  # to the receiver
    MESSAGE_SENT_STATE_UPDATED = "MessageSentStateUpdated"  # to the sender: a receiver's transport state changed
    MESSAGE_APPREC_INFO_UPDATED = "MessageApprecInfoUpdated"  # to the sender: a receiver's AppRec arrived
    REFUSED_MESSAGE = "RefusedMessage"  # to the sender: the backbone refused the message after accepting it


class Notification(BaseModel):
    model_config = ConfigDict(frozen=True)

    offset: int  # strictly increasing; a client resumes after the last offset it saw
    kind: NotificationKind
    her_id: str  # whom it is for
    message_id: UUID
    counterpart_her_id: str | None = None  # the sender of a new message, or the receiver whose state changed
    at: datetime
    # The delivery it is about, when the message reached a mailbox: its kind's name and why that receiver got it
    # without a capability check (None: checked).
    message_kind: str | None = None
    unchecked_reason: str | None = None


class Messaging(Protocol):
    async def submit(
        self, document: bytes, *, allowed_sender_her_ids: frozenset[str] | None,
        receiver_subset: Sequence[str] | None = None, request_id: str | None = None,
    ) -> Submitted:
        """Validate the document with the core, work out its receivers (all, or `receiver_subset` of them), and
        return once the accepted message is durably on the bus. `allowed_sender_her_ids` None means any sender
        (trusted internal producers). Resubmitting the same document returns the original id; raises Refused."""
        ...

    async def unread(
        self, receiver_her_ids: Sequence[str], *, sender_her_id: str | None = None, msg_id: str | None = None,
        limit: int = 10, newest_first: bool = False,
    ) -> list[MailboxEntry]:
        """Unread messages for these receivers, ordered by the document's GenDate."""
        ...

    async def entries(self, message_id: UUID) -> list[MailboxEntry]:
        """The message as each of its receivers has it (empty when unknown); the gateway authorises from it."""
        ...

    async def business_document(self, message_id: UUID, receiver_her_id: str) -> bytes | None:
        """The document as this receiver should get it (attachments inline or by FileReference); None for no such
        message and receiver. Raises DocumentUnavailable when its attachments cannot be put back inline."""
        ...

    async def mark_read(self, message_id: UUID, receiver_her_id: str) -> bool:
        """Marks the message read for this receiver (transport state Acknowledged); False when unknown."""
        ...

    async def status(self, message_id: UUID) -> list[ReceiverStatus]:
        """Per-receiver transport state and AppRec status; empty when unknown."""
        ...

    async def apprec_info(self, message_id: UUID) -> list[AppRecInfo]:
        """Per-receiver AppRec status and errors; empty when unknown."""
        ...

    async def sender_of(self, message_id: UUID) -> str | None:
        """The sender's HER-id, so the gateway can authorise status and AppRec queries."""
        ...

    async def send_apprec(
        self, message_id: UUID, apprec_sender_her_id: str, status: AppRecStatus, errors: Sequence[AppRecError],
    ) -> Submitted:
        """Build the AppRec answering the message (version by what its sender can consume) and submit it.
        Raises Refused (APPREC_TO_APPREC, APPREC_FROM_NON_RECEIVER)."""
        ...

    async def notifications(self, her_ids: Sequence[str], *, after: int = 0, limit: int = 100) -> list[Notification]:
        ...

    def follow(self, her_ids: Sequence[str], *, after: int = 0) -> AsyncIterator[Notification]:
        """Notifications as they happen, starting after `after` (for server-sent events)."""
        ...
