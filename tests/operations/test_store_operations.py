"""The store's part of the operator tools on SQLite and on PostgreSQL: a database made by migration 0001 is
upgraded with its messages kept; finding messages by MsgId, HER-id and status; a dead letter re-driven once and
parked never; receipts put back unread and announced again; receivers' backlog and last fetch; every action in
the audit trail, in the same transaction as what it did."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from edi.adapters.sql import make_engine
from edi.events import ErrorDetail, Rejection, StatusChange, TransportState
from edi.services.messaging import NotificationKind
from edi.services.operations.models import DeadLetterState, MessageStatus
from edi.services.store import AcceptedRecord, BackboneStore, StoredDelivery
from edi.services.store import tables as t
from edi.services.store.store import Act

NOW = datetime.now(UTC)


def accepted(msg_id: str, sender: str = "1") -> AcceptedRecord:
    return AcceptedRecord(uuid.uuid4(), sender, msg_id, "sha", "DIALOG_NOTAT", False, NOW)


def delivery(message_id: uuid.UUID, receiver: str = "2", msg_id: str = "m",
             received_at: datetime = NOW) -> StoredDelivery:
    return StoredDelivery(message_id, receiver, "1", msg_id, "DIALOG_NOTAT", False, None, received_at, NOW, b"<x/>")


def act(action: str, target: str, operator: str = "kari", reason: str = "because") -> Act:
    return Act(operator=operator, action=action, target=target, reason=reason, at=datetime.now(UTC))


async def test_a_database_of_migration_0001_is_upgraded_and_its_messages_are_found(store_url: str) -> None:
    engine = make_engine(store_url)
    message_id = uuid.uuid4()

    def to_0001(connection: sa.Connection) -> None:
        alembic = Config()
        alembic.set_main_option("script_location", "edi.services.store:migrations")
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0001")

    async with engine.begin() as connection:
        await connection.run_sync(to_0001)
        # The messages table as 0001 made it (with `published`, which the tables no longer name).
        messages_0001 = sa.table("messages", *(sa.column(c.name, c.type) for c in t.messages.columns),
                                 sa.column("published", sa.Boolean))
        await connection.execute(sa.insert(messages_0001).values(
            message_id=message_id, sender_her_id="1", msg_id="old-msg", sha256="sha", message_type="DIALOG_NOTAT",
            is_apprec=False, accepted_at=NOW, published=True))
    await engine.dispose()
    store = await BackboneStore.open(store_url)
    try:
        assert await store.find_messages(msg_id="old-msg") == [message_id]
        assert await store.audit_trail() == [] and await store.backlog() == []
    finally:
        await store.close()


async def test_messages_are_found_by_msgid_her_id_and_status(store: BackboneStore) -> None:
    read, unread, stuck = accepted("read"), accepted("unread"), accepted("stuck", sender="9")
    for record in (read, unread, stuck):
        await store.claim(record)
    await store.deliver(delivery(read.message_id, msg_id="read"))
    await store.deliver(delivery(unread.message_id, receiver="3", msg_id="unread"))
    assert await store.mark_read(read.message_id, "2", NOW)
    refused_at_ingress = uuid.uuid4()
    rejection = Rejection(message_id=refused_at_ingress, sender_her_id="1", msg_id="bad", errors=[ErrorDetail(
        code="EDI-XSD-001", apprec_code="T02", message="not valid", message_nb="ikke gyldig")], rejected_at=NOW)
    await store.record_refusal(rejection)
    await store.record_refusal(rejection)  # told twice, noted once
    await store.apply_status(StatusChange(message_id=unread.message_id, receiver_her_id="4",
                                          transport_state=TransportState.REJECTED, at=NOW))

    assert await store.find_messages(msg_id="bad") == [refused_at_ingress]
    assert set(await store.find_messages(her_id="1")) == {read.message_id, unread.message_id, refused_at_ingress}
    assert await store.find_messages(her_id="3") == [unread.message_id]
    expected = {
        MessageStatus.READ: {read.message_id}, MessageStatus.UNREAD: {unread.message_id},
        MessageStatus.UNDELIVERED: {stuck.message_id}, MessageStatus.ABANDONED: set(),
        MessageStatus.REFUSED: {refused_at_ingress, unread.message_id}, MessageStatus.APPREC: set(),
    }
    for status, ids in expected.items():
        assert set(await store.find_messages(status=status)) == ids, status
    assert await store.find_messages(her_id="1", status=MessageStatus.REFUSED, among=[refused_at_ingress]) == [
        refused_at_ingress]
    facts = await store.facts(refused_at_ingress)
    assert facts is not None and facts.refusal is not None and facts.refusal.errors[0].apprec_code == "T02"
    assert await store.facts(uuid.uuid4()) is None


async def test_a_dead_letter_is_redriven_once_and_a_parked_one_never(store: BackboneStore) -> None:
    first = await store.begin_redrive(act("dlq.redrive", "router@3"), "router", 3, None)
    assert first.audit_id is not None and first.before is None
    unconfirmed = await store.begin_redrive(act("dlq.redrive", "router@3", operator="ola"), "router", 3, None)
    assert unconfirmed.audit_id is not None and unconfirmed.before is not None
    assert unconfirmed.before.state is DeadLetterState.REDRIVING
    await store.finish_redrive(unconfirmed.audit_id, "router", 3, "edi.accepted[1]@7", NOW)
    again = await store.begin_redrive(act("dlq.redrive", "router@3"), "router", 3, None)
    assert again.audit_id is None and again.before is not None and again.before.redriven_to == "edi.accepted[1]@7"
    assert (await store.park(act("dlq.park", "router@3"), "router", 3, None)) is not None

    assert await store.park(act("dlq.park", "mailbox@0", reason="nobody can read it"), "mailbox", 0, None) is None
    parked = await store.begin_redrive(act("dlq.redrive", "mailbox@0"), "mailbox", 0, None)
    assert parked.audit_id is None and parked.before is not None and parked.before.state is DeadLetterState.PARKED
    actions = await store.dead_letter_actions()
    assert {key: a.state for key, a in actions.items()} == {
        ("router", 3): DeadLetterState.REDRIVEN, ("mailbox", 0): DeadLetterState.PARKED}

    trail = [(a.operator, a.target, (a.outcome or "").split(" by ")[0]) for a in reversed(await store.audit_trail())]
    assert trail == [
        ("kari", "router@3", ""),  # the first re-drive, never confirmed
        ("ola", "router@3", "re-driven to edi.accepted[1]@7"),
        ("kari", "router@3", "refused: re-driven to edi.accepted[1]@7"),
        ("kari", "router@3", "refused: re-driven to edi.accepted[1]@7"),
        ("kari", "mailbox@0", "parked"),
        ("kari", "mailbox@0", "refused: parked"),
    ]


async def test_a_receipt_is_put_back_unread_and_announced_again(store: BackboneStore) -> None:
    receipt = uuid.uuid4()
    await store.deliver(delivery(receipt, receiver="1", msg_id=str(receipt)))
    assert await store.mark_read(receipt, "1", NOW)
    assert await store.reopen(act("receipt.resend", "m"), [(receipt, "1"), (uuid.uuid4(), "1")], "resent 1") == 1
    assert [e.message_id for e in await store.unread(["1"])] == [receipt]
    news = [n.kind for n in await store.notifications(["1"]) if n.message_id == receipt]
    assert news == [NotificationKind.NEW_MESSAGE, NotificationKind.NEW_MESSAGE]
    assert [(a.action, a.outcome) for a in await store.audit_trail(target="m")] == [("receipt.resend", "resent 1")]


async def test_backlog_shows_unread_counts_the_oldest_and_the_last_fetch(store: BackboneStore) -> None:
    old = NOW - timedelta(hours=3)
    await store.deliver(delivery(uuid.uuid4(), receiver="2", msg_id="a", received_at=old))
    await store.deliver(delivery(uuid.uuid4(), receiver="2", msg_id="b"))
    await store.deliver(delivery(uuid.uuid4(), receiver="3", msg_id="c"))
    assert len(await store.unread(["3", "5"])) == 1  # receivers 3 and 5 fetch; 2 does not
    rows = {row.her_id: row for row in await store.backlog()}
    assert [(h, r.unread) for h, r in rows.items()] == [("2", 2), ("3", 1), ("5", 0)]
    assert rows["2"].oldest_unread_at == old
    assert rows["2"].oldest_unread_age_s is not None and rows["2"].oldest_unread_age_s >= 3 * 3600
    assert rows["2"].last_fetch_at is None and rows["3"].last_fetch_at is not None
    assert [r.her_id for r in await store.backlog("5")] == ["5"]
