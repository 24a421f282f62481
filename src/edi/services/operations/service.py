"""The operator tools over the bus and the SQL store: what `edi ops` and the gateway's /ops API do.

A message's history is put together from what the services recorded in the store (accepted, refused and why,
receipts, mailbox copies, reads, AppRecs) and from the dead-letter topics; operators' actions on dead letters
and receipts are kept in the store with an audit entry each, written in the same transaction as the change.

Re-driving a dead letter produces its original record again to its original topic, once: the re-drive is
recorded before the record is produced, and a recorded one is refused the next time. Should the process stop
between recording and producing, the re-drive stays unconfirmed and may be made again; the services downstream
are idempotent (one mailbox copy per sender, MsgId and receiver; one receipt per message), so a record produced
twice is still delivered once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from edi.adapters.bus import Bus, BusError
from edi.events import TransportState, default_codec
from edi.events.headers import DLQ_PREFIX, REDRIVEN_FROM
from edi.kapabilitetsregister.view import unchecked_text
from edi.schemas.topics import CONSUMING_SERVICES
from edi.services.operations.dead_letters import READ_TIMEOUT_S, StoredLetter, read_dead_letters
from edi.services.operations.models import (
    AuditEntry,
    Backlog,
    CoverageEntry,
    DeadLetterAction,
    DeadLetterState,
    DeadLetterView,
    History,
    HistoryEvent,
    MessageStatus,
    MessageSummary,
    ReceiptResent,
    ReceiverState,
    Redriven,
)
from edi.services.reading import read_delivered
from edi.services.store import BackboneSettings, BackboneStore, open_bus_and_store
from edi.services.store.store import COVERAGE_LIMIT, Act, MessageFacts


class NotFoundError(LookupError):
    """No such message or dead letter."""


class OperationRefusedError(Exception):
    """The action cannot be taken (the message says why); it is audited as refused."""


class Operations:
    def __init__(self, bus: Bus, store: BackboneStore, *, read_timeout_s: float = READ_TIMEOUT_S) -> None:
        self._bus = bus
        self._store = store
        self._codec = default_codec()
        self._read_timeout_s = read_timeout_s

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: BackboneSettings | None = None) -> AsyncIterator[Operations]:
        """On the configured bus and store, closed on exit."""
        settings = settings or BackboneSettings()
        async with AsyncExitStack() as stack:
            yield cls(*await open_bus_and_store(settings, stack))

    # --- messages -----------------------------------------------------------------------------------------------

    async def find(
        self, *, msg_id: str | None = None, message_id: uuid.UUID | None = None, her_id: str | None = None,
        status: MessageStatus | None = None, limit: int = 50,
    ) -> list[MessageSummary]:
        """The messages meeting every criterion given, newest first."""
        open_letters = await self._open_letter_ids()
        among = list(open_letters) if status is MessageStatus.DEAD_LETTERED else None
        ids = await self._store.find_messages(message_id=message_id, msg_id=msg_id, her_id=her_id, status=status,
                                              among=among, limit=limit)
        summaries = []
        for found in ids:
            facts = await self._store.facts(found)
            if facts is not None:
                summaries.append(summarise(facts, dead_lettered=found in open_letters))
        return summaries

    async def history(self, message_id: uuid.UUID) -> History:
        facts = await self._store.facts(message_id)
        letters = [s for s in await self._letters(None) if s.message_id == message_id]
        if facts is None and not letters:
            raise NotFoundError(f"the backbone knows no message {message_id}")
        actions = await self._store.dead_letter_actions()
        audit = await self._store.audit_trail(target=str(message_id))
        events = [] if facts is None else _store_events(facts)
        for stored in letters:
            events.extend(_letter_events(stored, actions.get((stored.service, stored.offset))))
        events.extend(HistoryEvent(at=entry.at, event=entry.action, detail=_audited(entry)) for entry in audit)
        events.sort(key=lambda e: e.at)
        open_letter = any((s.service, s.offset) not in actions for s in letters)
        if facts is not None:
            summary = summarise(facts, dead_lettered=open_letter)
        else:
            first = letters[0]
            summary = MessageSummary(
                message_id=message_id, msg_id=first.correlation.msg_id,
                sender_her_id=first.correlation.sender_her_id, message_type=None, at=first.letter.failed_at,
                status="dead-lettered" if open_letter else "dead letter dealt with", receivers=[])
        return History(message=summary, events=events)

    # --- dead letters -------------------------------------------------------------------------------------------

    async def dead_letters(self, service: str | None = None, *, everything: bool = False) -> list[DeadLetterView]:
        """The dead letters waiting for an operator (`everything`: also those re-driven or parked)."""
        actions = await self._store.dead_letter_actions(service)
        views = [_view(s, actions.get((s.service, s.offset))) for s in await self._letters(service)]
        return views if everything else [v for v in views if v.state is not DeadLetterState.PARKED
                                         and v.state is not DeadLetterState.REDRIVEN]

    async def dead_letter(self, service: str, offset: int) -> DeadLetterView:
        stored = await self._letter(service, offset)
        actions = await self._store.dead_letter_actions(service)
        return _view(stored, actions.get((service, offset)))

    async def redrive(self, service: str, offset: int, *, operator: str, reason: str) -> Redriven:
        """Produce the dead letter's original record again to its original topic, once."""
        act = _act(operator, "dlq.redrive", f"{service}@{offset}", reason)
        stored = await self._audited_letter(act, service, offset)
        claim = await self._store.begin_redrive(act, service, offset, stored.message_id)
        if claim.audit_id is None:
            assert claim.before is not None
            raise OperationRefusedError(f"dead letter {service}@{offset} was {claim.before.describe()}; it is not "
                                        "re-driven again")
        letter = stored.letter
        headers = (*((k, v) for k, v in stored.headers if not k.startswith(DLQ_PREFIX)),
                   (REDRIVEN_FROM, f"{service}@{offset}".encode()))
        try:
            ack = await self._bus.produce(letter.original_topic, letter.original_value, key=letter.original_key,
                                          headers=headers)
        except BusError as exc:
            await self._store.fail_action(claim.audit_id, f"failed, may be re-driven again: {exc}")
            raise
        to = f"{ack.topic}[{ack.partition}]@{ack.offset}"
        await self._store.finish_redrive(claim.audit_id, service, offset, to, datetime.now(UTC))
        return Redriven(service=service, offset=offset, topic=ack.topic, partition=ack.partition,
                        new_offset=ack.offset, repeated=claim.before is not None)

    async def park(self, service: str, offset: int, *, operator: str, reason: str) -> DeadLetterView:
        """Put a dead letter aside with a reason: it is not offered for re-drive again."""
        act = _act(operator, "dlq.park", f"{service}@{offset}", reason)
        stored = await self._audited_letter(act, service, offset)
        before = await self._store.park(act, service, offset, stored.message_id)
        if before is not None:
            raise OperationRefusedError(f"dead letter {service}@{offset} was {before.describe()}")
        return _view(stored, (await self._store.dead_letter_actions(service)).get((service, offset)))

    # --- receipts, backlog, audit -------------------------------------------------------------------------------

    async def resend_receipt(self, message_id: uuid.UUID, *, operator: str, reason: str) -> list[ReceiptResent]:
        """Give the message's sender its receipts again: the negative AppRec the backbone made for a refused
        message, and the AppRecs its receivers answered with. They are put back in the sender's mailbox as
        unread and announced again."""
        act = _act(operator, "receipt.resend", str(message_id), reason)
        facts = await self._store.facts(message_id)
        if facts is None:
            await self._store.audit_action(act, "refused: no such message")
            raise NotFoundError(f"the backbone knows no message {message_id}")
        receipts = [ReceiptResent(message_id=row.message_id, her_id=row.receiver_her_id, kind="negative-apprec")
                    for row in facts.receipt_copies]
        sender, msg_id = _sender_and_msg_id(facts)
        receivers = sorted({row.receiver_her_id for row in facts.mailbox})
        if sender is not None and msg_id is not None and receivers:
            for row, document in await self._store.apprecs_to(sender, receivers):
                answer = read_delivered(document).answer
                if answer is not None and answer.original_msg_id == msg_id:
                    receipts.append(ReceiptResent(message_id=row.message_id, her_id=row.receiver_her_id,
                                                  kind="apprec"))
        if not receipts:
            why = _no_receipt(facts)
            await self._store.audit_action(act, f"refused: {why}")
            raise OperationRefusedError(why)
        listed = ", ".join(f"{r.kind} {r.message_id} to {r.her_id}" for r in receipts)
        await self._store.reopen(act, [(r.message_id, r.her_id) for r in receipts], f"resent {listed}")
        return receipts

    async def backlog(self, her_id: str | None = None) -> list[Backlog]:
        return await self._store.backlog(her_id)

    async def coverage(self, since: datetime | None = None, limit: int = COVERAGE_LIMIT) -> list[CoverageEntry]:
        """Which receivers got which kinds of message without a capability check, from the traffic routed."""
        return await self._store.coverage(since, limit)

    async def audit(self, *, limit: int = 100) -> list[AuditEntry]:
        return await self._store.audit_trail(limit=limit)

    # --- reading dead letters -----------------------------------------------------------------------------------

    async def _letters(self, service: str | None) -> list[StoredLetter]:
        services = list(CONSUMING_SERVICES) if service is None else [_service(service)]
        return await read_dead_letters(self._bus, services, self._codec, timeout_s=self._read_timeout_s)

    async def _letter(self, service: str, offset: int) -> StoredLetter:
        found = next((s for s in await self._letters(service) if s.offset == offset), None)
        if found is None:
            raise NotFoundError(f"no dead letter at offset {offset} of {service}'s dead-letter topic")
        return found

    async def _audited_letter(self, act: Act, service: str, offset: int) -> StoredLetter:
        try:
            return await self._letter(service, offset)
        except (NotFoundError, ValueError) as exc:
            await self._store.audit_action(act, f"refused: {exc}")
            raise

    async def _open_letter_ids(self) -> set[uuid.UUID]:
        actions = await self._store.dead_letter_actions()
        return {s.message_id for s in await self._letters(None)
                if s.message_id is not None and (s.service, s.offset) not in actions}


def summarise(facts: MessageFacts, *, dead_lettered: bool = False) -> MessageSummary:
    receivers: dict[str, ReceiverState] = {}
    for row in facts.mailbox:
        state = "abandoned" if row.abandoned_at else "read" if row.read_at else "unread"
        unchecked = None if row.unchecked_reason is None else unchecked_text(row.unchecked_reason)
        receivers[row.receiver_her_id] = ReceiverState(her_id=row.receiver_her_id, state=state, unchecked=unchecked)
    for status in facts.statuses:
        known = receivers.get(status.receiver_her_id)
        refused = status.status.transport_state is TransportState.REJECTED
        state = known.state if known else "refused" if refused else "pending"
        apprec = None if status.status.apprec_status is None else status.status.apprec_status.value
        receivers[status.receiver_her_id] = ReceiverState(her_id=status.receiver_her_id, state=state,
                                                          apprec_status=apprec,
                                                          unchecked=known.unchecked if known else None)
    states = sorted({r.state for r in receivers.values()})
    if not states:
        states = ["refused" if facts.refusal is not None else "undelivered"]
    if dead_lettered:
        states.append("dead-lettered")
    sender, msg_id = _sender_and_msg_id(facts)
    first_copy = facts.mailbox[0] if facts.mailbox else None
    at = (facts.accepted.accepted_at if facts.accepted else facts.refusal.rejected_at if facts.refusal
          else first_copy.received_at if first_copy else facts.statuses[0].updated_at)
    return MessageSummary(
        message_id=facts.message_id, msg_id=msg_id, sender_her_id=sender,
        message_type=facts.accepted.message_type if facts.accepted else first_copy.message_type if first_copy
        else None,
        kind=next((row.kind for row in facts.mailbox if row.kind), None),
        at=at, status=", ".join(states), receivers=sorted(receivers.values(), key=lambda r: r.her_id),
    )


def _sender_and_msg_id(facts: MessageFacts) -> tuple[str | None, str | None]:
    if facts.accepted is not None:
        return facts.accepted.sender_her_id, facts.accepted.msg_id
    if facts.refusal is not None:
        return facts.refusal.sender_her_id, facts.refusal.msg_id
    if facts.mailbox:
        return facts.mailbox[0].sender_her_id, facts.mailbox[0].msg_id
    return None, None


def _store_events(facts: MessageFacts) -> list[HistoryEvent]:
    events: list[HistoryEvent] = []
    accepted = facts.accepted
    if accepted is not None:
        events.append(HistoryEvent(at=accepted.accepted_at, event="accepted", her_id=accepted.sender_her_id,
                                   detail=f"validated and accepted from {accepted.sender_her_id}: "
                                   f"{accepted.message_type}, MsgId {accepted.msg_id}"))
    if facts.refusal is not None:
        # Once accepted, only the router refuses (a receiver); before, the validator (the document).
        service = "router" if accepted is not None else "validator"
        events.extend(HistoryEvent(at=facts.refusal.rejected_at, event="refused", service=service,
                                   detail=f"AppRec {e.apprec_code} ({e.code}): {e.message}")
                      for e in facts.refusal.errors)
    for status in facts.statuses:
        state = status.status
        if state.transport_state is TransportState.REJECTED:
            events.append(HistoryEvent(at=status.updated_at, event="refused-for-receiver", service="router",
                                       her_id=status.receiver_her_id, detail="transport state Rejected"))
        if state.apprec_status is not None:
            errors = "".join(f"; {e.code}: {e.details}" for e in state.apprec_errors)
            events.append(HistoryEvent(at=status.updated_at, event="apprec-received", service="status",
                                       her_id=status.receiver_her_id,
                                       detail=f"AppRec status {state.apprec_status.value} "
                                       f"({state.apprec_status.display_name}){errors}"))
    if facts.receipt is not None:
        apprec_id, made_at = facts.receipt
        events.append(HistoryEvent(at=made_at, event="receipt-sent", service="receipts",
                                   detail=f"negative AppRec {apprec_id} for the sender"))
    for row in facts.mailbox:
        check = ("capability not checked: " + unchecked_text(row.unchecked_reason) if row.unchecked_reason
                 else "capability checked" if row.kind else "")
        what = "; ".join(part for part in (row.kind, check) if part)
        events.append(HistoryEvent(at=row.delivered_at, event="delivered", service="mailbox",
                                   her_id=row.receiver_her_id,
                                   detail=f"in the mailbox of {row.receiver_her_id}" + (f" ({what})" if what else "")))
        if row.read_at is not None:
            events.append(HistoryEvent(at=row.read_at, event="read", her_id=row.receiver_her_id,
                                       detail=f"marked read by {row.receiver_her_id}"))
        if row.abandoned_at is not None:
            events.append(HistoryEvent(at=row.abandoned_at, event="abandoned", service="status",
                                       her_id=row.receiver_her_id, detail="left unread past its time to live"))
    for row in facts.receipt_copies:
        events.append(HistoryEvent(at=row.delivered_at, event="receipt-delivered", service="mailbox",
                                   her_id=row.receiver_her_id,
                                   detail=f"negative AppRec {row.message_id} in the mailbox of {row.receiver_her_id}"))
        if row.read_at is not None:
            events.append(HistoryEvent(at=row.read_at, event="receipt-read", her_id=row.receiver_her_id,
                                       detail=f"negative AppRec read by {row.receiver_her_id}"))
    return events


def _letter_events(stored: StoredLetter, action: DeadLetterAction | None) -> list[HistoryEvent]:
    letter = stored.letter
    where = f"{letter.original_topic}[{letter.original_partition}]@{letter.original_offset}"
    events = [HistoryEvent(
        at=letter.failed_at, event="dead-lettered", service=stored.service, her_id=stored.correlation.receiver_her_id,
        detail=f"{letter.reason} (attempts: {letter.attempts}); {where} is dead letter "
        f"{stored.service}@{stored.offset}",
    )]
    if action is not None:
        event = {DeadLetterState.REDRIVEN: "re-driven", DeadLetterState.REDRIVING: "re-drive-started"}.get(
            action.state, action.state.value)
        events.append(HistoryEvent(at=action.done_at or action.at, event=event, service=stored.service,
                                   detail=f"dead letter {stored.service}@{stored.offset} {action.describe()}"))
    return events


def _view(stored: StoredLetter, action: DeadLetterAction | None) -> DeadLetterView:
    letter, correlation = stored.letter, stored.correlation
    return DeadLetterView(
        service=stored.service, offset=stored.offset, original_topic=letter.original_topic,
        original_partition=letter.original_partition, original_offset=letter.original_offset, reason=letter.reason,
        attempts=letter.attempts, failed_at=letter.failed_at, message_id=stored.message_id,
        msg_id=correlation.msg_id, sender_her_id=correlation.sender_her_id,
        receiver_her_id=correlation.receiver_her_id, size=len(letter.original_value or b""),
        state=DeadLetterState.OPEN if action is None else action.state, action=action,
    )


def _no_receipt(facts: MessageFacts) -> str:
    if facts.refusal is not None or any(s.status.transport_state is TransportState.REJECTED for s in facts.statuses):
        if facts.receipt is None:
            return ("it was refused, but the backbone made no negative AppRec for it (an AppRec is never answered, "
                    "a sender without a HER-id cannot be; or the receipts service has not got to it: see "
                    "`edi ops dlq list --service receipts`)")
        return "its negative AppRec is not in the sender's mailbox yet"
    return "no receiver has answered it with an AppRec"


def _audited(entry: AuditEntry) -> str:
    return f"by {entry.operator}: {entry.reason}; {entry.outcome or 'not finished'}"


def _service(name: str) -> str:
    if name not in CONSUMING_SERVICES:
        raise ValueError(f"unknown service {name!r}; the services with dead-letter topics are: "
                         f"{', '.join(CONSUMING_SERVICES)}")
    return name


def _act(operator: str, action: str, target: str, reason: str) -> Act:
    if not reason.strip():
        raise ValueError("a reason is required: it goes into the audit trail")
    if not operator.strip():
        raise ValueError("the operator must be named: it goes into the audit trail")
    return Act(operator=operator.strip(), action=action, target=target, reason=reason.strip(), at=datetime.now(UTC))
