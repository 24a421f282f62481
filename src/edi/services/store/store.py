"""The backbone's store: SQLAlchemy (async) over SQLite or PostgreSQL, migrated by Alembic.

Every write is idempotent, because the services that make them get their records at least once: a message is
accepted once per (sender HER-id, MsgId), reaches a receiver's mailbox once per (sender HER-id, MsgId, receiver
HER-id), and gets at most one receipt. A notification is appended in the same transaction as the change it
announces, so a change is announced exactly once whichever redelivery makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from edi.adapters.sql import make_engine, migrate_to_head
from edi.core.apprec import AppRecStatus
from edi.events import StatusChange
from edi.services.messaging import (
    AppRecErrorInfo,
    AppRecInfo,
    MailboxEntry,
    Notification,
    NotificationKind,
    ReceiverStatus,
    TransportState,
)
from edi.services.store import tables as t
from edi.services.store.tables import VERSION_TABLE

T = TypeVar("T")
_MAX_BATCH = 200
_CLAIM, _DELIVER, _STATUS, _OPERATION = "claim", "deliver", "status", "operation"
_STATUS_VALUES = ("transport_state", "apprec_status", "apprec_errors", "updated_at")


def _notification(
    kind: NotificationKind, her_id: str, message_id: UUID, counterpart_her_id: str | None, at: datetime,
) -> dict[str, Any]:
    return {"kind": kind.value, "her_id": her_id, "message_id": message_id, "counterpart_her_id": counterpart_her_id,
            "at": at}


@dataclass(frozen=True, slots=True)
class _Write(Generic[T]):
    """A write waiting for the writer: one of the hot kinds (claim, deliver, status), done for a whole batch at
    once with a few statements, or any other operation, run as it is."""

    kind: str
    item: Any  # the record, delivery or change; or the operation (a function of the connection)
    done: asyncio.Future[T]


def _settle(write: _Write[Any], outcome: Any) -> None:
    if write.done.done():  # the caller gave up waiting (cancelled); the write stands, it is idempotent
        return
    if isinstance(outcome, Exception):
        write.done.set_exception(outcome)
    else:
        write.done.set_result(outcome)




class ClaimOutcome(enum.Enum):
    NEW = "new"  # first time this sender used this MsgId
    SAME = "same"  # the same document again: a duplicate of the message it names
    CONFLICT = "conflict"  # the MsgId was used before for other content


@dataclass(frozen=True, slots=True)
class AcceptedRecord:
    message_id: UUID
    sender_her_id: str
    msg_id: str
    sha256: str
    message_type: str
    is_apprec: bool
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    message_id: UUID  # the new message's id, or the original's
    published: bool  # the original is known to be on the bus


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    message_id: UUID
    receiver_her_id: str
    sender_her_id: str
    msg_id: str
    message_type: str
    is_apprec: bool
    gen_date: datetime | None
    received_at: datetime
    delivered_at: datetime
    document: bytes


@dataclass(frozen=True, slots=True)
class StatusRow:
    transport_state: TransportState
    apprec_status: AppRecStatus | None = None
    apprec_errors: tuple[AppRecErrorInfo, ...] = ()


def next_status(current: StatusRow | None, change: StatusChange) -> StatusRow:
    """Apply a change: a receiver's transport state leaves Unconfirmed once (to Acknowledged, Rejected or
    Abandoned) and then stays, whatever order the changes come in; an AppRec's status and errors replace the
    previous ones."""
    state = TransportState(change.transport_state.value)
    if current is not None and current.transport_state is not TransportState.UNCONFIRMED:
        state = current.transport_state
    if change.apprec_status is None:
        return StatusRow(state, current.apprec_status if current else None, current.apprec_errors if current else ())
    errors = tuple(AppRecErrorInfo(code=e.code, details=e.description) for e in change.apprec_errors)
    return StatusRow(state, AppRecStatus(change.apprec_status), errors)


class BackboneStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._writes: asyncio.Queue[_Write[Any]] | None = None
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str) -> BackboneStore:
        """Connect, creating and migrating the database on first use."""
        store = cls(make_engine(url))
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self.engine.dispose()

    async def _write(self, kind: str, item: Any) -> Any:
        """Queue a write for the writer, which commits the writes queued at the same moment together.

        The services make one small write per record, for many records at once: one writer per store doing them
        set-at-a-time (one INSERT of many rows, not many INSERTs) in one transaction costs a few statements and
        one commit per batch, and on SQLite spares concurrent transactions the database lock's sleep-and-retry.
        A batch that fails is retried one write at a time, so a failing write fails alone."""
        if self._writer is None or self._writes is None:
            self._writes = asyncio.Queue()
            self._writer = asyncio.create_task(self._write_loop(self._writes), name="edi-store-writer")
        write: _Write[Any] = _Write(kind, item, asyncio.get_running_loop().create_future())
        self._writes.put_nowait(write)
        return await write.done

    async def _operation(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        result: T = await self._write(_OPERATION, operation)
        return result

    async def _write_loop(self, writes: asyncio.Queue[_Write[Any]]) -> None:
        while True:
            batch = [await writes.get()]
            while not writes.empty() and len(batch) < _MAX_BATCH:
                batch.append(writes.get_nowait())
            try:
                async with self.engine.begin() as connection:
                    results = await self._run_batch(connection, batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc)
                    continue
                for write in batch:
                    try:
                        async with self.engine.begin() as connection:
                            _settle(write, (await self._run_batch(connection, [write]))[0])
                    except Exception as single:
                        _settle(write, single)
                continue
            for write, result in zip(batch, results, strict=True):
                _settle(write, result)

    async def _run_batch(self, connection: AsyncConnection, batch: list[_Write[Any]]) -> list[Any]:
        """Every write of the batch, kind by kind (each kind's writes in the order they came); their results in
        the batch's order."""
        results: dict[int, Any] = {}
        for kind, run in ((_CLAIM, self._claims), (_DELIVER, self._deliveries), (_STATUS, self._status_changes)):
            indexes = [i for i, write in enumerate(batch) if write.kind == kind]
            if indexes:
                results.update(zip(indexes, await run(connection, [batch[i].item for i in indexes]), strict=True))
        for i, write in enumerate(batch):
            if write.kind == _OPERATION:
                results[i] = await write.item(connection)
        return [results[i] for i in range(len(batch))]

    async def migrate(self) -> None:
        await migrate_to_head(self.engine, "edi.services.store:migrations", VERSION_TABLE)

    def _insert_new(self, table: sa.Table, **values: Any) -> Any:
        """INSERT that does nothing when a row with the same key is there (its rowcount says which)."""
        return self._insert(table).values(**values).on_conflict_do_nothing()

    # --- accepted messages and duplicates -----------------------------------------------------------------------

    async def claim(self, record: AcceptedRecord) -> Claim:
        """Record a message about to be accepted, unless its sender used its MsgId before: then say whether it
        is the same document (and the original's id) or other content."""
        claim: Claim = await self._write(_CLAIM, record)
        return claim

    async def _claims(self, connection: AsyncConnection, records: list[AcceptedRecord]) -> list[Claim]:
        m = t.messages.c
        first = {(r.sender_her_id, r.msg_id): r for r in reversed(records)}  # the first record of each key
        await connection.execute(self._insert(t.messages).on_conflict_do_nothing(), [
            {"message_id": r.message_id, "sender_her_id": r.sender_her_id, "msg_id": r.msg_id, "sha256": r.sha256,
             "message_type": r.message_type, "is_apprec": r.is_apprec, "accepted_at": r.accepted_at,
             "published": False}
            for r in first.values()
        ])
        rows = await connection.execute(sa.select(m.sender_her_id, m.msg_id, m.message_id, m.sha256, m.published)
                                        .where(sa.tuple_(m.sender_her_id, m.msg_id).in_(list(first))))
        held = {(row.sender_her_id, row.msg_id): row for row in rows}
        claims = []
        for record in records:
            row = held[(record.sender_her_id, record.msg_id)]
            if row.message_id == record.message_id:
                claims.append(Claim(ClaimOutcome.NEW, record.message_id, published=row.published))
            else:
                outcome = ClaimOutcome.SAME if row.sha256 == record.sha256 else ClaimOutcome.CONFLICT
                claims.append(Claim(outcome, row.message_id, row.published))
        return claims

    async def mark_published(self, message_id: UUID) -> None:
        async def op(connection: AsyncConnection) -> None:
            await connection.execute(
                sa.update(t.messages).where(t.messages.c.message_id == message_id).values(published=True)
            )

        return await self._operation(op)

    async def sender_of(self, message_id: UUID) -> str | None:
        async with self.engine.connect() as connection:
            return await _sender_of(connection, message_id)

    async def find_message(self, sender_her_id: str, msg_id: str) -> UUID | None:
        """The id of the message this sender sent with this MsgId (what an AppRec's OriginalMsgId names)."""
        async with self.engine.connect() as connection:
            found: UUID | None = (await connection.execute(sa.select(t.messages.c.message_id).where(
                t.messages.c.sender_her_id == sender_her_id, t.messages.c.msg_id == msg_id,
            ))).scalar_one_or_none()
            return found

    # --- mailbox ------------------------------------------------------------------------------------------------

    async def deliver(self, delivery: StoredDelivery) -> bool:
        """Put a message in a receiver's mailbox and announce it; False when it is there already."""
        delivered: bool = await self._write(_DELIVER, delivery)
        return delivered

    async def _deliveries(self, connection: AsyncConnection, deliveries: list[StoredDelivery]) -> list[bool]:
        m = t.mailbox.c
        # RETURNING names the rows inserted: those that were there already (by either key) are not announced.
        inserted = await connection.execute(
            self._insert(t.mailbox).on_conflict_do_nothing().returning(m.message_id, m.receiver_her_id), [
                {"message_id": d.message_id, "receiver_her_id": d.receiver_her_id, "sender_her_id": d.sender_her_id,
                 "msg_id": d.msg_id, "message_type": d.message_type, "is_apprec": d.is_apprec,
                 "gen_date": d.gen_date, "received_at": d.received_at, "delivered_at": d.delivered_at,
                 "document": d.document}
                for d in deliveries
            ])
        new = {(row.message_id, row.receiver_her_id) for row in inserted}
        results = []
        announced = []
        for d in deliveries:
            first = (d.message_id, d.receiver_her_id) in new
            new.discard((d.message_id, d.receiver_her_id))
            results.append(first)
            if first:
                announced.append(_notification(NotificationKind.NEW_MESSAGE, d.receiver_her_id, d.message_id,
                                               d.sender_her_id, d.delivered_at))
        await self._notify_all(connection, announced)
        return results

    async def unread(
        self, receiver_her_ids: Sequence[str], *, sender_her_id: str | None = None, msg_id: str | None = None,
        limit: int = 10, newest_first: bool = False,
    ) -> list[MailboxEntry]:
        m = t.mailbox.c
        order = sa.func.coalesce(m.gen_date, m.received_at)
        query = (
            sa.select(*_ENTRY_COLUMNS)
            .where(m.receiver_her_id.in_(list(receiver_her_ids)), m.read_at.is_(None), m.abandoned_at.is_(None))
            .order_by(order.desc() if newest_first else order, m.delivered_at, m.message_id)
            .limit(limit)
        )
        if sender_her_id is not None:
            query = query.where(m.sender_her_id == sender_her_id)
        if msg_id is not None:
            query = query.where(m.msg_id == msg_id)
        async with self.engine.connect() as connection:
            return [_entry(row) for row in await connection.execute(query)]

    async def entries(self, message_id: UUID) -> list[MailboxEntry]:
        query = sa.select(*_ENTRY_COLUMNS).where(t.mailbox.c.message_id == message_id).order_by(
            t.mailbox.c.receiver_her_id)
        async with self.engine.connect() as connection:
            return [_entry(row) for row in await connection.execute(query)]

    async def document(self, message_id: UUID, receiver_her_id: str) -> bytes | None:
        m = t.mailbox.c
        async with self.engine.connect() as connection:
            found: bytes | None = (await connection.execute(sa.select(m.document).where(
                m.message_id == message_id, m.receiver_her_id == receiver_her_id))).scalar_one_or_none()
            return found

    async def mark_read(self, message_id: UUID, receiver_her_id: str, at: datetime) -> bool | None:
        """True when this marked the message read, False when it already was read (or abandoned), None when the
        receiver has no such message."""
        m = t.mailbox.c
        async def op(connection: AsyncConnection) -> bool | None:
            updated = await connection.execute(sa.update(t.mailbox).where(
                m.message_id == message_id, m.receiver_her_id == receiver_her_id, m.read_at.is_(None),
                m.abandoned_at.is_(None),
            ).values(read_at=at))
            if updated.rowcount == 1:
                return True
            exists = (await connection.execute(sa.select(sa.literal(1)).where(
                m.message_id == message_id, m.receiver_her_id == receiver_her_id))).first()
            return False if exists else None

        return await self._operation(op)

    async def expired_unread(self, received_before: datetime, limit: int) -> list[tuple[UUID, str]]:
        """Unread messages that arrived before the given moment: their time to live has run out."""
        m = t.mailbox.c
        query = sa.select(m.message_id, m.receiver_her_id).where(
            m.read_at.is_(None), m.abandoned_at.is_(None), m.received_at < received_before,
        ).order_by(m.received_at).limit(limit)
        async with self.engine.connect() as connection:
            return [(row.message_id, row.receiver_her_id) for row in await connection.execute(query)]

    async def mark_abandoned(self, message_id: UUID, receiver_her_id: str, at: datetime) -> bool:
        m = t.mailbox.c
        async def op(connection: AsyncConnection) -> bool:
            updated = await connection.execute(sa.update(t.mailbox).where(
                m.message_id == message_id, m.receiver_her_id == receiver_her_id, m.read_at.is_(None),
                m.abandoned_at.is_(None),
            ).values(abandoned_at=at))
            return updated.rowcount == 1

        return await self._operation(op)

    # --- status -------------------------------------------------------------------------------------------------

    async def apply_status(self, change: StatusChange) -> None:
        """Record a receiver's status change and tell the sender what changed."""
        await self._write(_STATUS, change)

    async def _status_changes(self, connection: AsyncConnection, changes: list[StatusChange]) -> list[None]:
        s, m = t.receiver_status.c, t.messages.c
        keys = list(dict.fromkeys((c.message_id, c.receiver_her_id) for c in changes))
        rows = await connection.execute(sa.select(t.receiver_status).where(
            sa.tuple_(s.message_id, s.receiver_her_id).in_(keys)))
        current: dict[tuple[UUID, str], StatusRow] = {
            (row.message_id, row.receiver_her_id): _status_row(row) for row in rows}
        senders: dict[UUID, str] = {row.message_id: row.sender_her_id for row in await connection.execute(
            sa.select(m.message_id, m.sender_her_id).where(m.message_id.in_({c.message_id for c in changes})))}
        changed: dict[tuple[UUID, str], tuple[StatusRow, datetime]] = {}
        announced = []
        for change in changes:
            key = (change.message_id, change.receiver_her_id)
            before = current.get(key)
            after = next_status(before, change)
            if after == before:
                continue
            current[key] = after
            changed[key] = (after, change.at)
            sender = senders.get(change.message_id)
            if sender is None:
                continue  # nobody to tell (a message the backbone never accepted)
            if after.transport_state is not TransportState.UNCONFIRMED and after.transport_state != (
                    before.transport_state if before else None):
                announced.append(_notification(NotificationKind.MESSAGE_SENT_STATE_UPDATED, sender,
                                               change.message_id, change.receiver_her_id, change.at))
            if change.apprec_status is not None:
                announced.append(_notification(NotificationKind.MESSAGE_APPREC_INFO_UPDATED, sender,
                                               change.message_id, change.receiver_her_id, change.at))
        if changed:
            upsert = self._insert(t.receiver_status)
            await connection.execute(upsert.on_conflict_do_update(
                index_elements=[s.message_id, s.receiver_her_id],
                set_={name: upsert.excluded[name] for name in _STATUS_VALUES},
            ), [
                {"message_id": message_id, "receiver_her_id": receiver,
                 "transport_state": row.transport_state.value,
                 "apprec_status": None if row.apprec_status is None else row.apprec_status.value,
                 "apprec_errors": [e.model_dump(mode="json") for e in row.apprec_errors] or None,
                 "updated_at": at}
                for (message_id, receiver), (row, at) in changed.items()
            ])
        await self._notify_all(connection, announced)
        return [None] * len(changes)

    async def status(self, message_id: UUID) -> list[ReceiverStatus]:
        return [
            ReceiverStatus(receiver_her_id=receiver, transport_state=row.transport_state,
                           apprec_status=row.apprec_status)
            for receiver, row in await self._statuses(message_id)
        ]

    async def apprec_info(self, message_id: UUID) -> list[AppRecInfo]:
        return [
            AppRecInfo(receiver_her_id=receiver, apprec_status=row.apprec_status, errors=row.apprec_errors)
            for receiver, row in await self._statuses(message_id)
        ]

    async def _statuses(self, message_id: UUID) -> list[tuple[str, StatusRow]]:
        s = t.receiver_status.c
        query = sa.select(t.receiver_status).where(s.message_id == message_id).order_by(s.receiver_her_id)
        async with self.engine.connect() as connection:
            return [(row.receiver_her_id, _status_row(row)) for row in await connection.execute(query)]

    # --- receipts -----------------------------------------------------------------------------------------------

    async def record_receipt(self, message_id: UUID, apprec_message_id: UUID, at: datetime) -> bool:
        """Note the negative AppRec made for a refused message; the first time, and if the backbone had accepted
        the message, tell its sender it was refused. False when it was noted before."""
        async def op(connection: AsyncConnection) -> bool:
            inserted = await connection.execute(self._insert_new(
                t.receipts, message_id=message_id, apprec_message_id=apprec_message_id, created_at=at))
            if inserted.rowcount != 1:
                return False
            sender = await _sender_of(connection, message_id)
            if sender is not None:
                await self._notify_all(connection, [
                    _notification(NotificationKind.REFUSED_MESSAGE, sender, message_id, None, at)])
            return True

        return await self._operation(op)

    async def is_receipt(self, message_id: UUID) -> bool:
        """Whether the message is a negative AppRec the backbone made itself (not a receiver's answer)."""
        async with self.engine.connect() as connection:
            return (await connection.execute(sa.select(sa.literal(1)).where(
                t.receipts.c.apprec_message_id == message_id))).first() is not None

    # --- notifications ------------------------------------------------------------------------------------------

    async def _notify_all(self, connection: AsyncConnection, notifications: list[dict[str, Any]]) -> None:
        if notifications:
            await connection.execute(sa.insert(t.notifications), notifications)

    async def notifications(self, her_ids: Sequence[str], *, after: int = 0, limit: int = 100) -> list[Notification]:
        n = t.notifications.c
        query = sa.select(t.notifications).where(n.her_id.in_(list(her_ids)), n.offset > after).order_by(
            n.offset).limit(limit)
        async with self.engine.connect() as connection:
            return [
                Notification(offset=row.offset, kind=NotificationKind(row.kind), her_id=row.her_id,
                             message_id=row.message_id, counterpart_her_id=row.counterpart_her_id, at=row.at)
                for row in await connection.execute(query)
            ]

    # --- relay positions ----------------------------------------------------------------------------------------

    async def relay_position(self, name: str) -> int:
        async with self.engine.connect() as connection:
            position: int | None = (await connection.execute(sa.select(t.relay_positions.c.position).where(
                t.relay_positions.c.name == name))).scalar_one_or_none()
            return position or 0

    async def set_relay_position(self, name: str, position: int) -> None:
        async def op(connection: AsyncConnection) -> None:
            statement = self._insert(t.relay_positions).values(name=name, position=position)
            await connection.execute(statement.on_conflict_do_update(
                index_elements=[t.relay_positions.c.name], set_={"position": position}))

        return await self._operation(op)


_ENTRY_COLUMNS = (
    t.mailbox.c.message_id, t.mailbox.c.receiver_her_id, t.mailbox.c.sender_her_id, t.mailbox.c.msg_id,
    t.mailbox.c.gen_date, t.mailbox.c.is_apprec, t.mailbox.c.received_at, t.mailbox.c.read_at,
)


def _entry(row: Any) -> MailboxEntry:
    return MailboxEntry(
        message_id=row.message_id, receiver_her_id=row.receiver_her_id, sender_her_id=row.sender_her_id,
        msg_id=row.msg_id, gen_date=row.gen_date, is_apprec=row.is_apprec, received_at=row.received_at,
        read=row.read_at is not None,
    )


def _status_row(row: sa.Row[Any]) -> StatusRow:
    return StatusRow(
        TransportState(row.transport_state),
        None if row.apprec_status is None else AppRecStatus(row.apprec_status),
        tuple(AppRecErrorInfo.model_validate(e) for e in row.apprec_errors or ()),
    )


async def _sender_of(connection: AsyncConnection, message_id: UUID) -> str | None:
    sender: str | None = (await connection.execute(sa.select(t.messages.c.sender_her_id).where(
        t.messages.c.message_id == message_id))).scalar_one_or_none()
    return sender
