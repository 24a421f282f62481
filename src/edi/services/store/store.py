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
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from edi.adapters.bus import Bus
from edi.adapters.sql import make_engine, migrate_to_head
from edi.core.apprec import AppRecStatus
from edi.core.kinds import UNKNOWN_KIND
from edi.events import ErrorDetail, Rejection, StatusChange, TransportState
from edi.schemas.topics import ALL_TOPICS
from edi.services.messaging import (
    AppRecErrorInfo,
    AppRecInfo,
    MailboxEntry,
    Notification,
    NotificationKind,
    ReceiverStatus,
)
from edi.services.operations.models import (
    AuditEntry,
    Backlog,
    CoverageEntry,
    DeadLetterAction,
    DeadLetterState,
    MessageStatus,
)
from edi.services.store import tables as t
from edi.services.store.settings import BackboneSettings
from edi.services.store.tables import VERSION_TABLE

T = TypeVar("T")
_MAX_BATCH = 200
_CLAIM, _DELIVER, _STATUS, _OPERATION = "claim", "deliver", "status", "operation"
_STATUS_VALUES = ("transport_state", "apprec_status", "apprec_errors", "updated_at")

# The writer's queries, built once with an expanding parameter for their key lists: building one per batch
# coerced every key into a bound parameter and computed the statement's cache key again, costing the writer as
# much CPU as the statements' round trips.
_CLAIMED = sa.select(
    t.messages.c.sender_her_id, t.messages.c.msg_id, t.messages.c.message_id, t.messages.c.sha256,
).where(sa.tuple_(t.messages.c.sender_her_id, t.messages.c.msg_id).in_(sa.bindparam("keys", expanding=True)))
_STATUS_ROWS = sa.select(t.receiver_status).where(sa.tuple_(
    t.receiver_status.c.message_id, t.receiver_status.c.receiver_her_id).in_(sa.bindparam("keys", expanding=True)))
_SENDERS = sa.select(t.messages.c.message_id, t.messages.c.sender_her_id).where(
    t.messages.c.message_id.in_(sa.bindparam("message_ids", expanding=True)))
COVERAGE_LIMIT = 1000  # (receiver, kind) pairs in one coverage report, the most frequent first
# A receiver's fetch is noted at most this often per HER-id and store, so that polling costs no write per poll.
FETCH_RESOLUTION_S = 5.0


def _notification(
    kind: NotificationKind, her_id: str, message_id: UUID, counterpart_her_id: str | None, at: datetime,
) -> dict[str, Any]:
    return {"kind": kind.value, "her_id": her_id, "message_id": message_id, "counterpart_her_id": counterpart_her_id,
            "at": at}


class StoreClosedError(Exception):
    """A write queued or in progress when the store was closed: it was not made."""


@dataclass(frozen=True, slots=True)
class _Write(Generic[T]):
    """A write waiting for the writer: one of the hot kinds (claim, deliver, status), done for a whole batch at
    once with a few statements, or any other operation, run as it is."""

    kind: str
    item: Any  # the record, delivery or change; or the operation (a function of the connection)
    done: asyncio.Future[T]


async def _released(connection: AsyncConnection | None) -> None:
    """Give the writer's connection back to the pool (which, on PostgreSQL, pings it before lending it again)."""
    if connection is not None:
        with contextlib.suppress(Exception):
            await connection.close()


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
    kind: str | None = None  # the message's kind name; None: delivered by an older router
    unchecked_reason: str | None = None  # why the receiver got it without a capability check; None: checked


@dataclass(frozen=True, slots=True)
class StatusRow:
    transport_state: TransportState
    apprec_status: AppRecStatus | None = None
    apprec_errors: tuple[AppRecErrorInfo, ...] = ()


def next_status(current: StatusRow | None, change: StatusChange) -> StatusRow:
    """Apply a change: a receiver's transport state leaves Unconfirmed once (to Acknowledged, Rejected or
    Abandoned) and then stays, whatever order the changes come in; an AppRec's status and errors replace the
    previous ones."""
    state = change.transport_state
    if current is not None and current.transport_state is not TransportState.UNCONFIRMED:
        state = current.transport_state
    if change.apprec_status is None:
        return StatusRow(state, current.apprec_status if current else None, current.apprec_errors if current else ())
    errors = tuple(AppRecErrorInfo(code=e.code, details=e.description) for e in change.apprec_errors)
    return StatusRow(state, AppRecStatus(change.apprec_status), errors)


async def open_bus_and_store(settings: BackboneSettings, stack: AsyncExitStack) -> tuple[Bus, BackboneStore]:
    """The configured bus (started, every topic there) and store, both closed by `stack`."""
    bus = settings.open_bus()
    await bus.start()
    stack.push_async_callback(bus.close)
    await bus.ensure_topics(ALL_TOPICS)
    store = await BackboneStore.open(settings.store_url)
    stack.push_async_callback(store.close)
    return bus, store


class BackboneStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        dialect = engine.dialect.name
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._claim_insert = self._insert(t.messages).on_conflict_do_nothing().returning(t.messages.c.message_id)
        # Claims alone in autocommit on PostgreSQL only: an in-memory SQLite database has one connection for all.
        self._claims_autocommit = dialect == "postgresql"
        self._writes: asyncio.Queue[_Write[Any]] | None = None
        self._closed = False
        self._writer: asyncio.Task[None] | None = None
        self._fetches_noted: dict[str, float] = {}  # HER-id -> when (monotonic) its last fetch was written

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
        self._closed = True  # a write asked for after this fails, rather than start a writer on a disposed engine
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        while self._writes is not None and not self._writes.empty():  # nobody waits forever on a closed store
            _settle(self._writes.get_nowait(), StoreClosedError("the store was closed before this write was made"))
        await self.engine.dispose()

    async def _write(self, kind: str, item: Any) -> Any:
        """Queue a write for the writer, which commits the writes queued at the same moment together.

        The services make one small write per record, for many records at once: one writer per store doing them
        set-at-a-time (one INSERT of many rows, not many INSERTs) in one transaction costs a few statements and
        one commit per batch, and on SQLite spares concurrent transactions the database lock's sleep-and-retry.
        A batch that fails is retried one write at a time, so a failing write fails alone."""
        if self._closed:
            raise StoreClosedError("the store is closed")
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
        # The writer keeps its connections from batch to batch: a checkout per batch costs the pool's liveness
        # ping, a round trip per transaction. After any failure it starts again on fresh ones from the pool.
        # On PostgreSQL a batch of claims alone is one INSERT, atomic by itself, so it is made on a connection in
        # autocommit: BEGIN and COMMIT cost the client more CPU than the INSERT (one-claim batches took 0.29-0.38 ms
        # with them and 0.13-0.15 ms without).
        connection: AsyncConnection | None = None
        autocommit: AsyncConnection | None = None
        try:
            while True:
                batch = [await writes.get()]
                while not writes.empty() and len(batch) < _MAX_BATCH:
                    batch.append(writes.get_nowait())
                try:
                    if self._claims_autocommit and all(write.kind == _CLAIM for write in batch):
                        if autocommit is None:
                            autocommit = await self.engine.connect()  # held before it is set up: released on error
                            await autocommit.execution_options(isolation_level="AUTOCOMMIT")
                        results = await self._run_batch(autocommit, batch)
                    else:
                        connection = connection or await self.engine.connect()
                        async with connection.begin():
                            results = await self._run_batch(connection, batch)
                except asyncio.CancelledError:  # closing: the batch's transaction is rolled back (claims made in
                    # autocommit stay, and a sender's retry of one is accepted as the same message)
                    for write in batch:
                        _settle(write, StoreClosedError("the store was closed while this write was being made"))
                    raise
                except Exception:
                    # Each write again on its own, on a fresh connection from the pool: a failing write fails
                    # alone, and a lone write whose held connection had gone stale (a database restart, an idle
                    # timeout) is made on one the pool has checked.
                    await _released(connection)
                    await _released(autocommit)
                    connection = autocommit = None
                    for write in batch:
                        try:
                            async with self.engine.begin() as single_connection:
                                _settle(write, (await self._run_batch(single_connection, [write]))[0])
                        except Exception as single:
                            _settle(write, single)
                    continue
                for write, result in zip(batch, results, strict=True):
                    _settle(write, result)
        finally:
            await _released(connection)
            await _released(autocommit)

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
        first = {(r.sender_her_id, r.msg_id): r for r in reversed(records)}  # the first record of each key
        inserted = await connection.execute(self._claim_insert, [
                {"message_id": r.message_id, "sender_her_id": r.sender_her_id, "msg_id": r.msg_id,
                 "sha256": r.sha256, "message_type": r.message_type, "is_apprec": r.is_apprec,
                 "accepted_at": r.accepted_at}
                for r in first.values()
            ])
        new = {row.message_id for row in inserted}
        # What each key holds now: the rows just written are known; only keys claimed before are read back.
        held: dict[tuple[str, str], tuple[UUID, str]] = {
            key: (r.message_id, r.sha256) for key, r in first.items() if r.message_id in new}
        if earlier := [key for key in first if key not in held]:
            for row in await connection.execute(_CLAIMED, {"keys": earlier}):
                held[(row.sender_her_id, row.msg_id)] = (row.message_id, row.sha256)
        claims = []
        for record in records:
            message_id, sha256 = held[(record.sender_her_id, record.msg_id)]
            if message_id == record.message_id:
                claims.append(Claim(ClaimOutcome.NEW, record.message_id))
            else:
                outcome = ClaimOutcome.SAME if sha256 == record.sha256 else ClaimOutcome.CONFLICT
                claims.append(Claim(outcome, message_id))
        return claims

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
                 "document": d.document, "kind": d.kind, "unchecked_reason": d.unchecked_reason}
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
        await self._note_fetch(receiver_her_ids)
        async with self.engine.connect() as connection:
            return [_entry(row) for row in await connection.execute(query)]

    async def _note_fetch(self, her_ids: Sequence[str]) -> None:
        """A look at receivers' unread messages is their fetch: note when (for `edi ops backlog`)."""
        now = time.monotonic()
        due = [h for h in dict.fromkeys(her_ids) if now - self._fetches_noted.get(h, -FETCH_RESOLUTION_S)
               >= FETCH_RESOLUTION_S]
        if not due:
            return
        for her_id in due:
            self._fetches_noted[her_id] = now
        at = datetime.now(UTC)

        async def op(connection: AsyncConnection) -> None:
            upsert = self._insert(t.receiver_fetches)
            await connection.execute(upsert.on_conflict_do_update(
                index_elements=[t.receiver_fetches.c.her_id], set_={"fetched_at": upsert.excluded.fetched_at},
            ), [{"her_id": her_id, "fetched_at": at} for her_id in due])

        await self._operation(op)

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
        s = t.receiver_status.c
        keys = list(dict.fromkeys((c.message_id, c.receiver_her_id) for c in changes))
        rows = await connection.execute(_STATUS_ROWS, {"keys": keys})
        current: dict[tuple[UUID, str], StatusRow] = {
            (row.message_id, row.receiver_her_id): _status_row(row) for row in rows}
        senders: dict[UUID, str] = {row.message_id: row.sender_her_id for row in await connection.execute(
            _SENDERS, {"message_ids": list({c.message_id for c in changes})})}
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
        n, b = t.notifications.c, t.mailbox.c
        # The delivery a notification is about: the receiver's own copy of a new message, or the copy of the
        # receiver whose state changed for the sender.
        delivered_to = sa.case((n.kind == NotificationKind.NEW_MESSAGE.value, n.her_id), else_=n.counterpart_her_id)
        query = sa.select(
            n.offset, n.kind, n.her_id, n.message_id, n.counterpart_her_id, n.at,
            b.kind.label("message_kind"), b.unchecked_reason,
        ).outerjoin(
            t.mailbox, sa.and_(b.message_id == n.message_id, b.receiver_her_id == delivered_to),
        ).where(n.her_id.in_(list(her_ids)), n.offset > after).order_by(n.offset).limit(limit)
        async with self.engine.connect() as connection:
            return [
                Notification(offset=row.offset, kind=NotificationKind(row.kind), her_id=row.her_id,
                             message_id=row.message_id, counterpart_her_id=row.counterpart_her_id, at=row.at,
                             message_kind=row.message_kind, unchecked_reason=row.unchecked_reason)
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

    # --- operator tools -----------------------------------------------------------------------------------------

    async def record_refusal(self, rejection: Rejection) -> None:
        """Note why a message was refused (the first time it is told; a refusal is not repeated differently)."""
        async def op(connection: AsyncConnection) -> None:
            await connection.execute(self._insert_new(
                t.refusals, message_id=rejection.message_id, sender_her_id=rejection.sender_her_id,
                msg_id=rejection.msg_id, errors=[e.model_dump(mode="json") for e in rejection.errors],
                rejected_at=rejection.rejected_at))

        return await self._operation(op)

    async def find_messages(
        self, *, message_id: UUID | None = None, msg_id: str | None = None, her_id: str | None = None,
        status: MessageStatus | None = None, among: Sequence[UUID] | None = None, limit: int = 50,
    ) -> list[UUID]:
        """The messages (accepted, or refused at ingress) that meet every criterion given, newest first. `her_id`
        matches a sender or a receiver; `among` limits them to these ids. DEAD_LETTERED is the caller's to find
        (on the bus) and give as `among`."""
        m, r, b, s = t.messages.c, t.refusals.c, t.mailbox.c, t.receiver_status.c
        known = sa.union_all(
            sa.select(m.message_id, m.accepted_at.label("at")), sa.select(r.message_id, r.rejected_at.label("at")),
        ).subquery()
        ids = known.c.message_id
        query = sa.select(ids).group_by(ids).order_by(sa.func.min(known.c.at).desc(), ids).limit(limit)
        if message_id is not None:
            query = query.where(ids == message_id)
        if msg_id is not None:
            query = query.where(ids.in_(sa.union(sa.select(m.message_id).where(m.msg_id == msg_id),
                                                 sa.select(r.message_id).where(r.msg_id == msg_id))))
        if her_id is not None:
            query = query.where(ids.in_(sa.union(
                sa.select(m.message_id).where(m.sender_her_id == her_id),
                sa.select(r.message_id).where(r.sender_her_id == her_id),
                sa.select(b.message_id).where(b.receiver_her_id == her_id),
                sa.select(s.message_id).where(s.receiver_her_id == her_id),
            )))
        if among is not None:
            query = query.where(ids.in_(list(among)))
        if status is not None and status is not MessageStatus.DEAD_LETTERED:
            query = query.where(ids.in_(_with_status(status)))
        async with self.engine.connect() as connection:
            return [row.message_id for row in await connection.execute(query)]

    async def facts(self, message_id: UUID) -> MessageFacts | None:
        """Everything the store knows of a message, for its history; None when it knows nothing of it."""
        m, r, c, b, s = t.messages.c, t.refusals.c, t.receipts.c, t.mailbox.c, t.receiver_status.c
        async with self.engine.connect() as connection:
            accepted = (await connection.execute(sa.select(t.messages).where(m.message_id == message_id))).first()
            refusal = (await connection.execute(sa.select(t.refusals).where(r.message_id == message_id))).first()
            receipt = (await connection.execute(sa.select(t.receipts).where(c.message_id == message_id))).first()
            copies = [message_id] if receipt is None else [message_id, receipt.apprec_message_id]
            mailbox = (await connection.execute(sa.select(*_MAILBOX_COLUMNS).where(b.message_id.in_(copies))
                                                .order_by(b.delivered_at, b.receiver_her_id))).all()
            statuses = (await connection.execute(sa.select(t.receiver_status).where(s.message_id == message_id)
                                                 .order_by(s.updated_at, s.receiver_her_id))).all()
        if accepted is None and refusal is None and not mailbox and not statuses:
            return None
        return MessageFacts(
            message_id=message_id,
            accepted=None if accepted is None else AcceptedRecord(
                message_id=accepted.message_id, sender_her_id=accepted.sender_her_id, msg_id=accepted.msg_id,
                sha256=accepted.sha256, message_type=accepted.message_type, is_apprec=accepted.is_apprec,
                accepted_at=accepted.accepted_at),
            refusal=None if refusal is None else RecordedRefusal(
                sender_her_id=refusal.sender_her_id, msg_id=refusal.msg_id,
                errors=tuple(ErrorDetail.model_validate(e) for e in refusal.errors), rejected_at=refusal.rejected_at),
            receipt=None if receipt is None else (receipt.apprec_message_id, receipt.created_at),
            mailbox=tuple(_mailbox_row(row) for row in mailbox if row.message_id == message_id),
            receipt_copies=tuple(_mailbox_row(row) for row in mailbox if row.message_id != message_id),
            statuses=tuple(ReceiverStatusRow(row.receiver_her_id, _status_row(row), row.updated_at)
                           for row in statuses),
        )

    async def apprecs_to(self, sender_her_id: str, from_her_ids: Sequence[str]) -> list[tuple[MailboxRow, bytes]]:
        """The AppRecs in a sender's mailbox from these HER-ids (the receivers of one of its messages), with their
        documents: the caller reads which message each answers."""
        b = t.mailbox.c
        query = sa.select(*_MAILBOX_COLUMNS, b.document).where(
            b.receiver_her_id == sender_her_id, b.sender_her_id.in_(list(from_her_ids)), b.is_apprec.is_(True))
        async with self.engine.connect() as connection:
            return [(_mailbox_row(row), row.document) for row in await connection.execute(query)]

    async def audit_action(self, act: Act, outcome: str) -> None:
        """Audit an action that changed nothing (refused, or nothing to do)."""
        async def op(connection: AsyncConnection) -> None:
            await _audit(connection, act, outcome)

        return await self._operation(op)

    async def dead_letter_actions(self, service: str | None = None) -> dict[tuple[str, int], DeadLetterAction]:
        d = t.dead_letters.c
        query = sa.select(t.dead_letters) if service is None else sa.select(t.dead_letters).where(d.service == service)
        async with self.engine.connect() as connection:
            return {(row.service, row.dlq_offset): _dead_letter_action(row) for row in await connection.execute(query)}

    async def begin_redrive(self, act: Act, service: str, offset: int, message_id: UUID | None) -> Redrive:
        """Record a re-drive before it is made, with its audit entry. Refused (and audited so) when the dead
        letter was re-driven or parked before; an earlier re-drive that was recorded but never confirmed may be
        made again (the services downstream are idempotent, so producing it twice delivers it once)."""
        async def op(connection: AsyncConnection) -> Redrive:
            before = await _dead_letter(connection, service, offset)
            if before is not None and before.state is not DeadLetterState.REDRIVING:
                refused = f"refused: {before.describe()}"
                await _audit(connection, act, refused)
                return Redrive(None, before)
            values = {"message_id": message_id, "state": DeadLetterState.REDRIVING.value, "operator": act.operator,
                      "reason": act.reason, "at": act.at, "redriven_to": None, "done_at": None}
            upsert = self._insert(t.dead_letters).values(service=service, dlq_offset=offset, **values)
            await connection.execute(upsert.on_conflict_do_update(
                index_elements=[t.dead_letters.c.service, t.dead_letters.c.dlq_offset], set_=values))
            return Redrive(await _audit(connection, act, None), before)

        return await self._operation(op)

    async def finish_redrive(self, audit_id: int, service: str, offset: int, redriven_to: str, at: datetime) -> None:
        async def op(connection: AsyncConnection) -> None:
            d = t.dead_letters.c
            await connection.execute(sa.update(t.dead_letters).where(d.service == service, d.dlq_offset == offset)
                                     .values(state=DeadLetterState.REDRIVEN.value, redriven_to=redriven_to,
                                             done_at=at))
            await _set_outcome(connection, audit_id, f"re-driven to {redriven_to}")

        return await self._operation(op)

    async def fail_action(self, audit_id: int, outcome: str) -> None:
        async def op(connection: AsyncConnection) -> None:
            await _set_outcome(connection, audit_id, outcome)

        return await self._operation(op)

    async def park(self, act: Act, service: str, offset: int, message_id: UUID | None) -> DeadLetterAction | None:
        """Park a dead letter with the act's reason; None once parked, else what it was before (re-driven, or
        parked already: nothing changes, and the audit says so)."""
        async def op(connection: AsyncConnection) -> DeadLetterAction | None:
            before = await _dead_letter(connection, service, offset)
            if before is not None:
                await _audit(connection, act, f"refused: {before.describe()}")
                return before
            await connection.execute(sa.insert(t.dead_letters).values(
                service=service, dlq_offset=offset, message_id=message_id, state=DeadLetterState.PARKED.value,
                operator=act.operator, reason=act.reason, at=act.at))
            await _audit(connection, act, "parked")
            return None

        return await self._operation(op)

    async def reopen(self, act: Act, copies: Sequence[tuple[UUID, str]], outcome: str) -> int:
        """Put mailbox copies (message id, receiver) back as unread and announce them again as new, so the
        receiver fetches them once more; their time to live starts again. Returns how many were there."""
        b = t.mailbox.c

        async def op(connection: AsyncConnection) -> int:
            reopened = []
            for message_id, receiver in copies:
                updated = await connection.execute(
                    sa.update(t.mailbox).where(b.message_id == message_id, b.receiver_her_id == receiver)
                    .values(read_at=None, abandoned_at=None, received_at=act.at)
                    .returning(b.sender_her_id))
                sender = updated.scalar_one_or_none()
                if sender is not None:
                    reopened.append(_notification(NotificationKind.NEW_MESSAGE, receiver, message_id, sender, act.at))
            await self._notify_all(connection, reopened)
            await _audit(connection, act, outcome)
            return len(reopened)

        return await self._operation(op)

    async def audit_trail(self, *, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Operator actions, newest first."""
        a = t.operator_actions.c
        query = sa.select(t.operator_actions).order_by(a.id.desc()).limit(limit)
        if target is not None:
            query = query.where(a.target == target)
        async with self.engine.connect() as connection:
            return [AuditEntry(id=row.id, at=row.at, operator=row.operator, action=row.action, target=row.target,
                               reason=row.reason, outcome=row.outcome) for row in await connection.execute(query)]

    async def backlog(self, her_id: str | None = None) -> list[Backlog]:
        """Per receiver with unread messages or a fetch on record: how many wait, since when, and its last fetch."""
        b, f = t.mailbox.c, t.receiver_fetches.c
        unread = sa.select(b.receiver_her_id, sa.func.count().label("count"),
                           sa.func.min(b.received_at).label("oldest")).where(
            b.read_at.is_(None), b.abandoned_at.is_(None)).group_by(b.receiver_her_id)
        fetches = sa.select(f.her_id, f.fetched_at)
        if her_id is not None:
            unread, fetches = unread.where(b.receiver_her_id == her_id), fetches.where(f.her_id == her_id)
        async with self.engine.connect() as connection:
            waiting = {row.receiver_her_id: (row.count, row.oldest) for row in await connection.execute(unread)}
            fetched = {row.her_id: row.fetched_at for row in await connection.execute(fetches)}
        now = datetime.now(UTC)
        return [
            Backlog(her_id=receiver, unread=waiting.get(receiver, (0, None))[0],
                    oldest_unread_at=(oldest := waiting.get(receiver, (0, None))[1]),
                    oldest_unread_age_s=None if oldest is None else round((now - oldest).total_seconds(), 3),
                    last_fetch_at=fetched.get(receiver))
            for receiver in sorted({*waiting, *fetched}, key=lambda h: (len(h), h))
        ]

    async def coverage(self, since: datetime | None = None, limit: int = COVERAGE_LIMIT) -> list[CoverageEntry]:
        """The (receiver, kind) pairs delivered without a capability check, with why, how often and when last:
        the `limit` most frequent."""
        b = t.mailbox.c
        count = sa.func.count().label("count")
        query = sa.select(
            b.receiver_her_id, b.kind, b.unchecked_reason, count, sa.func.max(b.delivered_at).label("last_at"),
        ).where(b.unchecked_reason.is_not(None)).group_by(b.receiver_her_id, b.kind, b.unchecked_reason).order_by(
            count.desc(), b.receiver_her_id, b.kind).limit(limit)
        if since is not None:
            query = query.where(b.delivered_at >= since)
        async with self.engine.connect() as connection:
            rows = list(await connection.execute(query))
        return [CoverageEntry(receiver_her_id=row.receiver_her_id, kind=row.kind or UNKNOWN_KIND,
                              reason=row.unchecked_reason, count=row.count, last_delivered_at=row.last_at)
                for row in rows]


_ENTRY_COLUMNS = (
    t.mailbox.c.message_id, t.mailbox.c.receiver_her_id, t.mailbox.c.sender_her_id, t.mailbox.c.msg_id,
    t.mailbox.c.gen_date, t.mailbox.c.is_apprec, t.mailbox.c.received_at, t.mailbox.c.read_at,
    t.mailbox.c.kind, t.mailbox.c.unchecked_reason,
)


def _entry(row: Any) -> MailboxEntry:
    return MailboxEntry(
        message_id=row.message_id, receiver_her_id=row.receiver_her_id, sender_her_id=row.sender_her_id,
        msg_id=row.msg_id, gen_date=row.gen_date, is_apprec=row.is_apprec, received_at=row.received_at,
        read=row.read_at is not None, kind=row.kind, unchecked_reason=row.unchecked_reason,
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


# --- operator tools: records and helpers ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Act:
    """An operator's action, as the audit trail records it."""

    operator: str
    action: str
    target: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Redrive:
    audit_id: int | None  # None: refused (see `before`)
    before: DeadLetterAction | None  # what an operator had done with the dead letter before


@dataclass(frozen=True, slots=True)
class MailboxRow:
    message_id: UUID
    receiver_her_id: str
    sender_her_id: str
    msg_id: str
    message_type: str
    is_apprec: bool
    received_at: datetime
    delivered_at: datetime
    read_at: datetime | None
    abandoned_at: datetime | None
    kind: str | None = None
    unchecked_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiverStatusRow:
    receiver_her_id: str
    status: StatusRow
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RecordedRefusal:
    sender_her_id: str | None
    msg_id: str | None
    errors: tuple[ErrorDetail, ...]
    rejected_at: datetime


@dataclass(frozen=True, slots=True)
class MessageFacts:
    message_id: UUID
    accepted: AcceptedRecord | None
    refusal: RecordedRefusal | None
    receipt: tuple[UUID, datetime] | None  # the negative AppRec the backbone made, and when
    mailbox: tuple[MailboxRow, ...]  # the receivers' copies
    receipt_copies: tuple[MailboxRow, ...]  # the negative AppRec in the sender's mailbox
    statuses: tuple[ReceiverStatusRow, ...]


_MAILBOX_COLUMNS = (
    t.mailbox.c.message_id, t.mailbox.c.receiver_her_id, t.mailbox.c.sender_her_id, t.mailbox.c.msg_id,
    t.mailbox.c.message_type, t.mailbox.c.is_apprec, t.mailbox.c.received_at, t.mailbox.c.delivered_at,
    t.mailbox.c.read_at, t.mailbox.c.abandoned_at, t.mailbox.c.kind, t.mailbox.c.unchecked_reason,
)


def _mailbox_row(row: Any) -> MailboxRow:
    return MailboxRow(
        message_id=row.message_id, receiver_her_id=row.receiver_her_id, sender_her_id=row.sender_her_id,
        msg_id=row.msg_id, message_type=row.message_type, is_apprec=row.is_apprec, received_at=row.received_at,
        delivered_at=row.delivered_at, read_at=row.read_at, abandoned_at=row.abandoned_at, kind=row.kind,
        unchecked_reason=row.unchecked_reason,
    )


def _with_status(status: MessageStatus) -> sa.Select[Any]:
    """The ids of the messages with a status (all but DEAD_LETTERED, which is on the bus)."""
    m, r, b, s = t.messages.c, t.refusals.c, t.mailbox.c, t.receiver_status.c
    if status is MessageStatus.UNDELIVERED:
        return sa.select(m.message_id).where(
            ~sa.exists().where(b.message_id == m.message_id), ~sa.exists().where(s.message_id == m.message_id),
            ~sa.exists().where(r.message_id == m.message_id))
    if status is MessageStatus.UNREAD:
        return sa.select(b.message_id).where(b.read_at.is_(None), b.abandoned_at.is_(None))
    if status is MessageStatus.READ:
        return sa.select(b.message_id).where(b.read_at.is_not(None))
    if status is MessageStatus.ABANDONED:
        return sa.select(b.message_id).where(b.abandoned_at.is_not(None))
    if status is MessageStatus.REFUSED:
        return sa.union(sa.select(r.message_id), sa.select(s.message_id).where(
            s.transport_state == TransportState.REJECTED.value)).subquery().select()
    if status is MessageStatus.APPREC:
        return sa.select(s.message_id).where(s.apprec_status.is_not(None))
    raise ValueError(f"{status} is not in the store")


def _dead_letter_action(row: Any) -> DeadLetterAction:
    return DeadLetterAction(state=DeadLetterState(row.state), operator=row.operator, reason=row.reason, at=row.at,
                            redriven_to=row.redriven_to, done_at=row.done_at)


async def _dead_letter(connection: AsyncConnection, service: str, offset: int) -> DeadLetterAction | None:
    d = t.dead_letters.c
    row = (await connection.execute(sa.select(t.dead_letters).where(
        d.service == service, d.dlq_offset == offset))).first()
    return None if row is None else _dead_letter_action(row)


async def _audit(connection: AsyncConnection, act: Act, outcome: str | None) -> int:
    inserted = await connection.execute(sa.insert(t.operator_actions).values(
        at=act.at, operator=act.operator, action=act.action, target=act.target, reason=act.reason, outcome=outcome,
    ).returning(t.operator_actions.c.id))
    audit_id: int = inserted.scalar_one()
    return audit_id


async def _set_outcome(connection: AsyncConnection, audit_id: int, outcome: str) -> None:
    await connection.execute(sa.update(t.operator_actions).where(t.operator_actions.c.id == audit_id)
                             .values(outcome=outcome))
