"""The backbone's store on SQLite and on PostgreSQL (same code): duplicates, one copy per receiver, status
transitions and the notifications they make, receipts at most once, also when writes come all at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from edi.core.apprec import AppRecStatus
from edi.events import AppRecErrorDetail, StatusChange, TransportState
from edi.services.messaging import NotificationKind
from edi.services.store import AcceptedRecord, BackboneStore, ClaimOutcome, StoredDelivery

NOW = datetime.now(UTC)


def record(msg_id: str, sha: str = "a", sender: str = "1") -> AcceptedRecord:
    return AcceptedRecord(uuid.uuid4(), sender, msg_id, sha, "DIALOG_NOTAT", False, NOW)


def delivery(message_id: uuid.UUID, receiver: str = "2", msg_id: str = "m", gen_date: datetime = NOW) -> StoredDelivery:
    return StoredDelivery(message_id, receiver, "1", msg_id, "DIALOG_NOTAT", False, gen_date, NOW, NOW, b"<doc/>")


def change(
    message_id: uuid.UUID, state: TransportState, receiver: str = "2", apprec: str | None = None,
) -> StatusChange:
    errors = [AppRecErrorDetail(code="E31", description="feil fnr")] if apprec == "3" else []
    return StatusChange(message_id=message_id, receiver_her_id=receiver, transport_state=state, apprec_status=apprec,
                        apprec_errors=errors, at=NOW)


async def test_a_msgid_is_claimed_once_per_sender_and_resubmissions_are_told_apart(store: BackboneStore) -> None:
    first = record("m1", "a")
    assert (await store.claim(first)).outcome is ClaimOutcome.NEW
    same, other = await store.claim(record("m1", "a")), await store.claim(record("m1", "b"))
    assert (same.outcome, same.message_id) == (ClaimOutcome.SAME, first.message_id)
    assert (other.outcome, other.message_id) == (ClaimOutcome.CONFLICT, first.message_id)
    assert (await store.claim(record("m1", "a", sender="9"))).outcome is ClaimOutcome.NEW
    racing = await asyncio.gather(*(store.claim(record("m2", "a")) for _ in range(20)))
    assert [c.outcome for c in racing].count(ClaimOutcome.NEW) == 1
    assert len({c.message_id for c in racing}) == 1


async def test_a_message_reaches_a_receivers_mailbox_once_and_is_announced_once(store: BackboneStore) -> None:
    message_id = uuid.uuid4()
    results = await asyncio.gather(*(store.deliver(delivery(message_id)) for _ in range(10)))
    assert results.count(True) == 1
    # Same sender, MsgId and receiver under another message id: the receiver has it already.
    assert not await store.deliver(delivery(uuid.uuid4()))
    assert await store.deliver(delivery(message_id, receiver="3"))
    assert [e.receiver_her_id for e in await store.entries(message_id)] == ["2", "3"]
    assert [n.kind for n in await store.notifications(["2"])] == [NotificationKind.NEW_MESSAGE]


async def test_unread_is_ordered_by_gendate_and_reading_takes_a_message_out(store: BackboneStore) -> None:
    older, newer = uuid.uuid4(), uuid.uuid4()
    await store.deliver(delivery(newer, msg_id="new", gen_date=NOW))
    await store.deliver(delivery(older, msg_id="old", gen_date=NOW - timedelta(days=1)))
    assert [e.msg_id for e in await store.unread(["2"])] == ["old", "new"]
    assert [e.msg_id for e in await store.unread(["2"], newest_first=True)] == ["new", "old"]
    assert await store.mark_read(older, "2", NOW) is True
    assert await store.mark_read(older, "2", NOW) is False
    assert await store.mark_read(uuid.uuid4(), "2", NOW) is None
    assert [e.msg_id for e in await store.unread(["2"])] == ["new"]


async def test_a_receivers_state_leaves_unconfirmed_once_and_the_sender_hears_of_each_change(
    store: BackboneStore,
) -> None:
    claimed = record("m3")
    await store.claim(claimed)
    message_id = claimed.message_id
    # Acknowledged overtakes Unconfirmed (published by the mailbox after the read mark): it stays Acknowledged.
    await store.apply_status(change(message_id, TransportState.ACKNOWLEDGED))
    await store.apply_status(change(message_id, TransportState.UNCONFIRMED))
    await store.apply_status(change(message_id, TransportState.UNCONFIRMED, apprec="3"))
    [status] = await store.status(message_id)
    assert (status.transport_state, status.apprec_status) == (TransportState.ACKNOWLEDGED,
                                                             AppRecStatus.OK_FEIL_I_DELMELDING)
    [info] = await store.apprec_info(message_id)
    assert [(e.code, e.details) for e in info.errors] == [("E31", "feil fnr")]
    kinds = [n.kind for n in await store.notifications(["1"])]
    assert kinds == [NotificationKind.MESSAGE_SENT_STATE_UPDATED, NotificationKind.MESSAGE_APPREC_INFO_UPDATED]
    await asyncio.gather(*(store.apply_status(change(message_id, TransportState.REJECTED, receiver="4"))
                           for _ in range(5)))
    assert [n.counterpart_her_id for n in await store.notifications(["1"])][2:] == ["4"]


async def test_a_refused_message_gets_one_receipt_and_its_sender_one_notification(store: BackboneStore) -> None:
    claimed = record("m4")
    await store.claim(claimed)
    receipt = uuid.uuid4()
    results = await asyncio.gather(*(store.record_receipt(claimed.message_id, receipt, NOW) for _ in range(5)))
    assert results.count(True) == 1
    assert await store.is_receipt(receipt) and not await store.is_receipt(claimed.message_id)
    assert [n.kind for n in await store.notifications(["1"])] == [NotificationKind.REFUSED_MESSAGE]


async def test_notifications_resume_after_the_last_offset_seen(store: BackboneStore) -> None:
    for n in range(5):
        await store.deliver(delivery(uuid.uuid4(), msg_id=f"n{n}"))
    first = await store.notifications(["2"], limit=2)
    rest = await store.notifications(["2"], after=first[-1].offset)
    assert len(first) == 2 and len(rest) == 3
    assert [n.offset for n in first + rest] == sorted({n.offset for n in first + rest})


async def test_writes_pending_when_the_store_closes_fail_instead_of_waiting_forever(store_url: str) -> None:
    store = await BackboneStore.open(store_url)
    claims = [asyncio.create_task(store.claim(record(f"closing-{n}"))) for n in range(300)]
    await asyncio.sleep(0)  # queued; some may be in the writer's transaction
    await store.close()
    done, pending = await asyncio.wait(claims, timeout=10)
    assert not pending, "a write waited on a closed store"
    outcomes = {type(task.exception()).__name__ if task.exception() else "made" for task in done}
    assert outcomes <= {"made", "StoreClosedError"}


async def test_a_write_after_the_database_dropped_the_writers_connection_is_made(store: BackboneStore) -> None:
    # The writer keeps its connection between batches; a server restart or an idle timeout ends it under it.
    assert (await store.claim(record("before"))).outcome is ClaimOutcome.NEW
    if store.engine.dialect.name == "postgresql":
        async with store.engine.connect() as connection:
            await connection.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    assert (await store.claim(record("after"))).outcome is ClaimOutcome.NEW
