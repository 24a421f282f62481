"""What the operator tools show: plain models, so the CLI prints them and the /ops API returns them as JSON."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from edi.kapabilitetsregister.view import unchecked_text


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class AuditEntry(_View):
    id: int
    at: datetime
    operator: str
    action: str  # dlq.redrive, dlq.park, receipt.resend
    target: str  # service/offset of a dead letter, or a message id
    reason: str
    outcome: str | None  # None: started and not finished (the process stopped in between)


class Backlog(_View):
    her_id: str
    unread: int
    oldest_unread_at: datetime | None  # when the oldest unread message was received
    oldest_unread_age_s: float | None
    last_fetch_at: datetime | None  # None: no fetch seen since the backbone started recording them


class CoverageEntry(_View):
    """A receiver that got a kind of message without a capability check: what a vendor could register."""

    receiver_her_id: str
    kind: str  # the kind's name (edi.core.kinds), "unknown" for a namespace the project does not know
    reason: str  # unchecked_not_governed, unchecked_no_capabilities or unchecked_by_policy
    count: int
    last_delivered_at: datetime

    @property
    def reason_text(self) -> str:
        return unchecked_text(self.reason)

    def line(self) -> str:
        return (f"{self.receiver_her_id}  {self.kind}  {self.count} delivered unchecked, last "
                f"{self.last_delivered_at.isoformat(timespec='seconds')}: {self.reason_text}")


class DeadLetterState(StrEnum):
    OPEN = "open"  # waiting for an operator
    REDRIVING = "redriving"  # a re-drive was recorded but not confirmed produced: re-driving again is safe
    REDRIVEN = "redriven"
    PARKED = "parked"  # put aside with a reason; never offered for re-drive


class DeadLetterAction(_View):
    """What an operator did with a dead letter."""

    state: DeadLetterState
    operator: str
    reason: str
    at: datetime
    redriven_to: str | None = None  # topic[partition]@offset
    done_at: datetime | None = None

    def describe(self) -> str:
        """What was done, by whom, when and why: e.g. why another action on the dead letter is refused."""
        what = {DeadLetterState.REDRIVEN: "re-driven", DeadLetterState.REDRIVING: "being re-driven"}.get(
            self.state, self.state.value)
        to = f" to {self.redriven_to}" if self.redriven_to else ""
        return f"{what}{to} by {self.operator} at {self.at.isoformat(timespec='seconds')} ({self.reason})"


class DeadLetterView(_View):
    service: str
    offset: int  # on the service's dead-letter topic (edi.dlq.<service>, one partition)
    original_topic: str
    original_partition: int
    original_offset: int
    reason: str
    attempts: int
    failed_at: datetime
    message_id: UUID | None
    msg_id: str | None
    sender_her_id: str | None
    receiver_her_id: str | None
    size: int  # bytes of the original record's value (the payload itself is not shown)
    state: DeadLetterState
    action: DeadLetterAction | None = None


class ReceiverState(_View):
    her_id: str
    state: str  # unread, read, abandoned, refused, pending (a status without a mailbox copy)
    apprec_status: str | None = None  # the receiver's AppRec (code list 8220), when it answered
    unchecked: str | None = None  # why it got the message without a capability check; None: checked (or refused)


class MessageSummary(_View):
    message_id: UUID
    msg_id: str | None
    sender_her_id: str | None
    message_type: str | None
    kind: str | None = None  # the kind's name (edi.core.kinds), once the router has delivered it
    at: datetime  # accepted, or refused at ingress
    status: str  # accepted (not yet in a mailbox), refused, or the receivers' states
    receivers: list[ReceiverState]


class HistoryEvent(_View):
    at: datetime
    event: str  # accepted, refused, receipt-sent, delivered, read, abandoned, apprec-received, dead-lettered, ...
    service: str | None = None
    her_id: str | None = None
    detail: str = ""


class History(_View):
    message: MessageSummary
    events: list[HistoryEvent]


class Redriven(_View):
    service: str
    offset: int
    topic: str
    partition: int
    new_offset: int
    repeated: bool  # an earlier re-drive of it was recorded but not confirmed: produced again


class ReceiptResent(_View):
    message_id: UUID  # the receipt's own message id
    her_id: str  # to whom (the refused or answered message's sender)
    kind: str  # negative-apprec (the backbone's) or apprec (a receiver's)


class MessageStatus(StrEnum):
    """What `edi ops find --status` looks for."""

    UNDELIVERED = "undelivered"  # accepted, in no mailbox and refused for nobody yet: in flight, or stuck
    UNREAD = "unread"  # waiting in a receiver's mailbox
    READ = "read"
    ABANDONED = "abandoned"  # left unread past its time to live
    REFUSED = "refused"  # refused, for every receiver or some
    APPREC = "apprec"  # a receiver has answered with an AppRec
    DEAD_LETTERED = "dead-lettered"  # a record of it waits on a dead-letter topic
