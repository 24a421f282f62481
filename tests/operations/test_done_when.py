"""Issue #7's first Done-when, as an operator meets it: three messages go in, one is refused (its receiver is
not in the capability registry), one is caught by an outage of the mailbox's database that outlasts the retries
and goes to edi.dlq.mailbox, and one is delivered. The operator finds each by its MsgId, reads its history across
the services, and once the database is back re-drives the dead letter: it is delivered exactly once, and a second
re-drive of the same dead letter is refused. On the embedded bus and on real Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError

from edi.events import default_codec
from edi.schemas.topics import DELIVERIES
from edi.services.messaging import NotificationKind
from edi.services.operations.dead_letters import read_dead_letters
from edi.services.operations.models import DeadLetterState, History, MessageStatus
from edi.services.operations.service import NotFoundError, OperationRefusedError, Operations
from edi.services.store import StoredDelivery
from edi.services.store.store import Act
from tests.services.conftest import APPRECS, eventually, party, running_backbone, seed_registry
from tests.services.documents import DIALOG_SPEC, RECEIVER, SENDER, dialog

UNKNOWN_RECEIVER = "8143099"  # a HER-id the capability registry does not know
OPERATOR = "kari.nordmann"


class DatabaseOutage:
    """The mailbox's database refusing every write while `down`, as a real outage does."""

    def __init__(self, deliver: Callable[[StoredDelivery], Awaitable[bool]]) -> None:
        self.down = False
        self.stored = 0  # deliveries written while up (a copy already there counts too)
        self._deliver = deliver

    async def deliver(self, delivery: StoredDelivery) -> bool:
        if self.down:
            raise OperationalError("INSERT INTO mailbox", {}, Exception("could not connect to server"))
        first = await self._deliver(delivery)
        self.stored += 1
        return first


async def _true(value: bool) -> bool:
    return value


def events(history: History) -> list[tuple[str, str | None]]:
    return [(e.event, e.her_id) for e in history.events]


async def test_refused_dead_lettered_and_delivered_messages_are_found_and_the_dead_letter_is_redriven_once(
    installation: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDI_RETRY_MAX_ATTEMPTS", "2")  # an outage outlasts the retries quickly
    await seed_registry([party(RECEIVER, DIALOG_SPEC), party(SENDER, *APPRECS)])
    delivered_msg_id, refused_msg_id, dead_msg_id = (f"{name}-{uuid.uuid4()}" for name in ("ok", "refused", "dlq"))
    async with running_backbone() as (backbone, parts), Operations.open() as ops:
        store = await parts.store()
        outage = DatabaseOutage(store.deliver)
        monkeypatch.setattr(store, "deliver", outage.deliver)

        delivered = (await backbone.submit(dialog(delivered_msg_id), allowed_sender_her_ids=None)).message_id
        refused = (await backbone.submit(dialog(refused_msg_id, receiver=UNKNOWN_RECEIVER),
                                         allowed_sender_her_ids=None)).message_id
        await eventually(lambda: backbone.unread([RECEIVER], msg_id=delivered_msg_id), what="the delivered one")
        assert await backbone.mark_read(delivered, RECEIVER)
        await eventually(lambda: backbone.unread([SENDER]), what="the refused one's negative AppRec")

        outage.down = True
        dead = (await backbone.submit(dialog(dead_msg_id), allowed_sender_her_ids=None)).message_id
        letters = await eventually(lambda: ops.dead_letters("mailbox"), what="the dead letter")
        assert [(d.message_id, d.original_topic, d.state) for d in letters] == [
            (dead, "edi.deliveries", DeadLetterState.OPEN)]
        letter = letters[0]
        assert "OperationalError" in letter.reason and letter.attempts == 2
        assert [s.message_id for s in await ops.find(status=MessageStatus.DEAD_LETTERED)] == [dead]

        # The operator finds each message by its MsgId and reads its history.
        for msg_id, message_id in ((delivered_msg_id, delivered), (refused_msg_id, refused), (dead_msg_id, dead)):
            assert [s.message_id for s in await ops.find(msg_id=msg_id)] == [message_id]
        ok = await ops.history(delivered)
        assert events(ok) == [("accepted", SENDER), ("delivered", RECEIVER), ("read", RECEIVER)]
        assert ok.message.status == "read"

        no = await ops.history(refused)
        assert no.message.status == "refused"
        assert [(e.event, e.service) for e in no.events if e.event.startswith(("refused", "receipt"))] == [
            ("refused", "router"), ("refused-for-receiver", "router"), ("receipt-sent", "receipts"),
            ("receipt-delivered", "mailbox")]
        reason = next(e.detail for e in no.events if e.event == "refused")
        assert reason.startswith("AppRec E21") and UNKNOWN_RECEIVER in reason
        assert refused in [s.message_id for s in await ops.find(status=MessageStatus.REFUSED, her_id=SENDER)]

        stuck = await ops.history(dead)
        assert events(stuck) == [("accepted", SENDER), ("dead-lettered", RECEIVER)]
        assert stuck.message.status == "undelivered, dead-lettered"
        assert "could not connect to server" in stuck.events[1].detail

        # The database is back: the dead letter is re-driven, and delivered once.
        outage.down = False
        redriven = await ops.redrive("mailbox", letter.offset, operator=OPERATOR, reason="mailbox database back")
        assert (redriven.topic, redriven.repeated) == ("edi.deliveries", False)
        await eventually(lambda: backbone.unread([RECEIVER], msg_id=dead_msg_id), what="the re-driven one")
        with pytest.raises(OperationRefusedError, match=r"re-driven to edi\.deliveries"):
            await ops.redrive("mailbox", letter.offset, operator="ola.nordmann", reason="once more, to be sure")
        with pytest.raises(OperationRefusedError, match="re-driven"):
            await ops.park("mailbox", letter.offset, operator=OPERATOR, reason="too late to park")

        again = await ops.history(dead)
        assert events(again) == [("accepted", SENDER), ("dead-lettered", RECEIVER), ("re-driven", None),
                                 ("delivered", RECEIVER)]
        assert again.message.status == "unread"
        assert await ops.dead_letters() == []
        assert [d.state for d in await ops.dead_letters(everything=True)] == [DeadLetterState.REDRIVEN]
        assert await ops.find(status=MessageStatus.DEAD_LETTERED) == []

        await eventually(lambda: ops.find(msg_id=dead_msg_id, status=MessageStatus.UNREAD), what="its status")
        assert [e.receiver_her_id for e in await backbone.entries(dead)] == [RECEIVER]
        news = [n for n in await backbone.notifications([RECEIVER])
                if n.kind is NotificationKind.NEW_MESSAGE and n.message_id == dead]
        assert len(news) == 1

        audit = await ops.audit()
        assert [(a.action, a.operator, a.outcome is not None and a.outcome.split(":")[0]) for a in audit] == [
            ("dlq.park", OPERATOR, "refused"), ("dlq.redrive", "ola.nordmann", "refused"),
            ("dlq.redrive", OPERATOR, f"re-driven to edi.deliveries[{redriven.partition}]@{redriven.new_offset}")]
        with pytest.raises(NotFoundError):
            await ops.history(uuid.uuid4())


@pytest.mark.parametrize("bus_kind", ["embedded"])
async def test_a_redrive_recorded_but_never_confirmed_may_be_made_again_and_still_delivers_once(
    installation: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process re-driving stopped after the record was produced and before the re-drive was confirmed: the
    next re-drive produces it again, and the mailbox (one copy per sender, MsgId and receiver) delivers it once."""
    monkeypatch.setenv("EDI_RETRY_MAX_ATTEMPTS", "1")
    await seed_registry([party(RECEIVER, DIALOG_SPEC)])
    msg_id = f"twice-{uuid.uuid4()}"
    async with running_backbone() as (backbone, parts), Operations.open() as ops:
        store = await parts.store()
        outage = DatabaseOutage(store.deliver)
        monkeypatch.setattr(store, "deliver", outage.deliver)
        outage.down = True
        message_id = (await backbone.submit(dialog(msg_id), allowed_sender_her_ids=None)).message_id
        letter = (await eventually(lambda: ops.dead_letters("mailbox"), what="the dead letter"))[0]
        outage.down = False

        # What the stopped process got done: the re-drive recorded, the record produced, nothing confirmed.
        act = Act(operator=OPERATOR, action="dlq.redrive", target=f"mailbox@{letter.offset}", reason="first try",
                  at=datetime.now(UTC))
        assert (await store.begin_redrive(act, "mailbox", letter.offset, message_id)).audit_id is not None
        stored = next(s for s in await read_dead_letters(await parts.bus(), ["mailbox"], default_codec()))
        await (await parts.bus()).produce(DELIVERIES, stored.letter.original_value, key=stored.letter.original_key,
                                          headers=stored.headers)
        await eventually(lambda: backbone.unread([RECEIVER], msg_id=msg_id), what="the first re-drive's delivery")
        assert [d.state for d in await ops.dead_letters("mailbox")] == [DeadLetterState.REDRIVING]

        redriven = await ops.redrive("mailbox", letter.offset, operator=OPERATOR, reason="confirm it")
        assert redriven.repeated
        await eventually(lambda: _true(outage.stored == 2), what="the mailbox handling the second copy")
        assert [e.receiver_her_id for e in await backbone.entries(message_id)] == [RECEIVER]
        news = [n for n in await backbone.notifications([RECEIVER]) if n.message_id == message_id]
        assert [n.kind for n in news] == [NotificationKind.NEW_MESSAGE]
        assert [a.outcome for a in await ops.audit()] == [
            f"re-driven to {DELIVERIES}[{redriven.partition}]@{redriven.new_offset}", None]

