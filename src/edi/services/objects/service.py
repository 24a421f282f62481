"""The object service: large files in the blob store, who may fetch them, and who has confirmed.

SQL holds the truth about each object (sender, receivers, size, sha256, confirmations, state); the blob store
holds its bytes. An object is written to the blob store first and recorded after, and it is recorded deleted
before its bytes are removed, so a crash or a store outage in between leaves at most bytes that nothing refers to,
which the janitor (`sweep`) removes. Authorisation is the caller's business (the API checks the caller's HER-ids
against `ObjectRecord.sender_her_id` and `receiver_her_ids`); the router and mailbox call this directly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from edi.adapters.blobs import BlobNotFound, BlobStore, BlobStoreError, UploadedPart
from edi.adapters.sql import make_engine, migrate_to_head
from edi.kapabilitetsregister.model import InvalidHerIdError, parse_her_id
from edi.observability import metrics
from edi.services.objects import tables as t
from edi.services.objects.tables import VERSION_TABLE

log = structlog.get_logger("edi.objects")

ORPHAN_GRACE = timedelta(hours=1)  # bytes stored this recently may still be about to be recorded
MAX_RECEIVERS = 100
_CONTENT_TYPE = re.compile(r"[!-~]+/[!-~]+( *;[ -~]*)?")  # printable ASCII: it travels as an HTTP header
_BATCH = 500


class State(StrEnum):
    UPLOADING = "uploading"  # initialised, parts being uploaded
    STORED = "stored"
    DELETED = "deleted"


class DeletedReason(StrEnum):
    CONFIRMED = "confirmed"  # every receiver confirmed its download
    EXPIRED = "expired"  # the retention period ran out
    SENDER = "sender"  # the sender deleted it
    CANCELLED = "cancelled"  # the sender cancelled the upload


class ObjectError(Exception):
    """A request the object service refuses; the message says why and is safe to show the caller."""


class ObjectNotFound(ObjectError):
    pass


class ObjectGone(ObjectError):
    pass


class ObjectConflict(ObjectError):
    """The object is not in a state that allows this (a part for a stored object, a download while uploading)."""


class InvalidObjectRequest(ObjectError):
    pass


class ObjectTooLarge(ObjectError):
    pass


@dataclass(frozen=True, slots=True)
class Receiver:
    her_id: str
    confirmed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    key: str
    sender_her_id: str
    receivers: tuple[Receiver, ...]
    content_type: str
    file_name: str | None
    state: State
    size: int | None
    sha256: str | None
    created_at: datetime
    deleted_at: datetime | None
    deleted_reason: DeletedReason | None
    upload_id: str | None

    @property
    def receiver_her_ids(self) -> list[str]:
        return [receiver.her_id for receiver in self.receivers]

    def concerns(self, her_ids: Iterable[str]) -> bool:
        """Whether a caller holding `her_ids` is the sender or one of the receivers."""
        held = set(her_ids)
        return self.sender_her_id in held or any(r.her_id in held for r in self.receivers)


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one janitor pass removed."""

    expired: int  # objects whose retention ran out
    purged: int  # tombstones past retention
    orphans: int  # stored bytes no live object refers to
    uploads: int  # leftovers of uploads never completed


class ObjectService:
    def __init__(self, engine: AsyncEngine, blobs: BlobStore, *, public_url: str, retention: timedelta,
                 max_bytes: int) -> None:
        self.engine = engine
        self.blobs = blobs
        self.public_url = public_url.rstrip("/")
        self.retention = retention
        self.max_bytes = max_bytes

    @classmethod
    async def open(cls, database_url: str, blobs: BlobStore, *, public_url: str, retention: timedelta,
                   max_bytes: int) -> ObjectService:
        """Connect, creating and migrating the database on first use. The service owns `blobs` from now on."""
        service = cls(make_engine(database_url), blobs, public_url=public_url, retention=retention,
                      max_bytes=max_bytes)
        try:
            await service.migrate()
        except BaseException:
            await service.close()
            raise
        return service

    async def close(self) -> None:
        await self.engine.dispose()
        await self.blobs.close()

    async def migrate(self) -> None:
        await migrate_to_head(self.engine, "edi.services.objects:migrations", VERSION_TABLE)

    def url_for(self, key: str) -> str:
        """The URL of the object: usable as is in MsgHead's RefDoc/FileReference."""
        return f"{self.public_url}/objects/{key}"

    def key_for(self, url: str) -> str | None:
        """The key of one of our objects from its URL; None for a URL elsewhere."""
        prefix = f"{self.public_url}/objects/"
        key = url.strip()[len(prefix):] if url.strip().startswith(prefix) else None
        return key if key and _is_key(key) else None

    # --- creating ---------------------------------------------------------------------------------------------

    async def put(
        self, *, sender: str, receivers: Sequence[str], data: AsyncIterable[bytes], content_type: str,
        file_name: str | None = None,
    ) -> ObjectRecord:
        """Store a stream as a new object from `sender` for `receivers`."""
        receivers = _checked_parties(sender, receivers)
        content_type = _checked_content_type(content_type)
        key = uuid.uuid4().hex
        info = await self.blobs.put(key, self._limited(data), content_type=content_type,
                                    metadata={"sender": sender})
        try:
            async with self.engine.begin() as connection:
                await _insert(connection, key, sender, receivers, content_type, file_name, State.STORED,
                              size=info.size, sha256=info.sha256)
        except BaseException:
            await self._drop_bytes(key)
            raise
        metrics.BLOB_BYTES.labels("objects").inc(info.size)
        return await self.record(key)

    async def initiate(
        self, *, sender: str, receivers: Sequence[str], content_type: str, file_name: str | None = None,
    ) -> ObjectRecord:
        """Start an object uploaded in parts (`upload_part`, then `complete`)."""
        receivers = _checked_parties(sender, receivers)
        content_type = _checked_content_type(content_type)
        key = uuid.uuid4().hex
        upload_id = await self.blobs.create_multipart(key, content_type=content_type, metadata={"sender": sender})
        try:
            async with self.engine.begin() as connection:
                await _insert(connection, key, sender, receivers, content_type, file_name, State.UPLOADING,
                              upload_id=upload_id)
        except BaseException:
            await self.blobs.abort_multipart(key, upload_id)
            raise
        return await self.record(key)

    async def upload_part(self, key: str, part_number: int, data: AsyncIterable[bytes]) -> UploadedPart:
        record = await self._uploading(key)
        assert record.upload_id is not None
        try:
            return await self.blobs.upload_part(key, record.upload_id, part_number, self._limited(data))
        except BlobNotFound:
            raise ObjectGone(f"the upload of object {key} was cancelled") from None

    async def complete(self, key: str, parts: Mapping[int, str]) -> ObjectRecord:
        """Join the parts (part number to ETag); the object is stored, and visible, from now on."""
        record = await self._uploading(key)
        assert record.upload_id is not None
        info = await self.blobs.complete_multipart(key, record.upload_id, parts)
        too_large = info.size > self.max_bytes
        async with self.engine.begin() as connection:
            if too_large:
                done = await _mark_deleted(connection, key, DeletedReason.CANCELLED, _now(), only=State.UPLOADING)
            else:
                done = bool((await connection.execute(
                    sa.update(t.objects).where(t.objects.c.key == key, t.objects.c.state == State.UPLOADING)
                    .values(state=State.STORED, size=info.size, sha256=info.sha256, upload_id=None,
                            updated_at=_now()))).rowcount)
        if too_large or not done:
            await self._drop_bytes(key)
        if too_large:
            raise ObjectTooLarge(f"the parts add up to {info.size} bytes, over the limit of {self.max_bytes}")
        if not done:  # cancelled or expired while the parts were being joined
            raise ObjectGone(f"the upload of object {key} was cancelled")
        metrics.BLOB_BYTES.labels("objects").inc(info.size)
        return await self.record(key)

    # --- reading ----------------------------------------------------------------------------------------------

    async def record(self, key: str) -> ObjectRecord:
        """What is recorded about the object, also once deleted; raises ObjectNotFound."""
        async with self.engine.connect() as connection:
            records = await _load(connection, [key])
        if not records:
            raise ObjectNotFound(f"there is no object {key}")
        return records[0]

    async def records(self, keys: Sequence[str]) -> dict[str, ObjectRecord]:
        async with self.engine.connect() as connection:
            return {record.key: record for record in await _load(connection, keys)}

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes, verified against its sha256 as they stream (IntegrityError at the end)."""
        return self.blobs.get(key)

    # --- ending -----------------------------------------------------------------------------------------------

    async def confirm(self, key: str, her_id: str) -> ObjectRecord:
        """Record that receiver `her_id` has the object; the last confirmation deletes it. Idempotent."""
        now = _now()
        async with self.engine.begin() as connection:
            # Touch the object first: that serialises confirmations of one object (a row lock on PostgreSQL, the
            # write lock on SQLite), so exactly one of two concurrent last confirmations sees that all are in.
            touched = await connection.execute(
                sa.update(t.objects).where(t.objects.c.key == key, t.objects.c.state == State.STORED)
                .values(updated_at=now))
            if touched.rowcount:
                await connection.execute(
                    sa.update(t.object_receivers)
                    .where(t.object_receivers.c.key == key, t.object_receivers.c.her_id == her_id,
                           t.object_receivers.c.confirmed_at.is_(None))
                    .values(confirmed_at=now))
                waiting = await connection.scalar(
                    sa.select(sa.func.count()).select_from(t.object_receivers)
                    .where(t.object_receivers.c.key == key, t.object_receivers.c.confirmed_at.is_(None)))
                if waiting == 0:
                    await _mark_deleted(connection, key, DeletedReason.CONFIRMED, now)
        record = await self.record(key)
        receiver = next((r for r in record.receivers if r.her_id == her_id), None)
        if receiver is None:
            raise InvalidObjectRequest(f"{her_id} is not a receiver of object {key}")
        if receiver.confirmed_at is None:
            raise _unavailable(record)
        if record.deleted_reason is DeletedReason.CONFIRMED and touched.rowcount:
            await self._drop_bytes(key)
        return record

    async def delete(self, key: str, reason: DeletedReason = DeletedReason.SENDER) -> ObjectRecord:
        """Delete the object (or cancel its upload) now, whoever has confirmed."""
        record = await self.record(key)
        if record.state is State.DELETED:
            return record
        async with self.engine.begin() as connection:
            if not await _mark_deleted(connection, key, reason, _now(), only=record.state):
                return await self.record(key)  # someone else ended it meanwhile
        await self._end(record)
        return await self.record(key)

    # --- the janitor ------------------------------------------------------------------------------------------

    async def sweep(self, now: datetime | None = None) -> Sweep:
        """Delete objects past retention and purge old tombstones; remove stored bytes no live object refers to
        and reclaim abandoned uploads. Safe to run in several processes at once."""
        now = now or _now()
        cutoff = now - self.retention
        expired = 0
        while batch := await self._expired(cutoff):
            for record in batch:
                async with self.engine.begin() as connection:
                    ended = await _mark_deleted(connection, record.key, DeletedReason.EXPIRED, now,
                                                only=record.state)
                if ended:
                    await self._end(record)
                    expired += 1
        async with self.engine.begin() as connection:
            purged = (await connection.execute(sa.delete(t.objects).where(
                t.objects.c.state == State.DELETED, t.objects.c.deleted_at < cutoff))).rowcount
        orphans = 0
        pending: list[str] = []
        async for key in self.blobs.list_older_than(now - ORPHAN_GRACE):
            pending.append(key)
            if len(pending) == _BATCH:
                orphans += await self._remove_orphans(pending)
                pending = []
        orphans += await self._remove_orphans(pending)
        uploads = await self.blobs.abort_uploads_older_than(cutoff)
        return Sweep(expired=expired, purged=purged, orphans=orphans, uploads=uploads)

    # --- helpers ----------------------------------------------------------------------------------------------

    async def _uploading(self, key: str) -> ObjectRecord:
        record = await self.record(key)
        if record.state is State.DELETED:
            raise _unavailable(record)
        if record.state is not State.UPLOADING:
            raise ObjectConflict(f"object {key} is complete; it takes no more parts")
        return record

    async def _limited(self, data: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in data:
            size += len(chunk)
            if size > self.max_bytes:
                raise ObjectTooLarge(f"the object is larger than the limit of {self.max_bytes} bytes")
            yield chunk

    async def _expired(self, cutoff: datetime) -> list[ObjectRecord]:
        async with self.engine.connect() as connection:
            keys = (await connection.scalars(
                sa.select(t.objects.c.key)
                .where(t.objects.c.state.in_([State.UPLOADING, State.STORED]), t.objects.c.created_at < cutoff)
                .order_by(t.objects.c.created_at).limit(_BATCH))).all()
            return await _load(connection, list(keys))

    async def _remove_orphans(self, keys: list[str]) -> int:
        if not keys:
            return 0
        async with self.engine.connect() as connection:
            live = set((await connection.scalars(
                sa.select(t.objects.c.key).where(t.objects.c.key.in_(keys), t.objects.c.state == State.STORED))).all())
        orphans = [key for key in keys if key not in live]
        for key in orphans:
            await self._drop_bytes(key)
        return len(orphans)

    async def _end(self, record: ObjectRecord) -> None:
        """Remove what an ended object had in the blob store."""
        if record.state is State.UPLOADING and record.upload_id is not None:
            try:
                await self.blobs.abort_multipart(record.key, record.upload_id)
            except BlobStoreError as exc:
                log.warning("could not abort an upload; the janitor will", key=record.key, error=str(exc))
        else:
            await self._drop_bytes(record.key)

    async def _drop_bytes(self, key: str) -> None:
        try:
            await self.blobs.delete(key)
        except BlobStoreError as exc:
            log.warning("could not delete an object's bytes; the janitor will", key=key, error=str(exc))


def _now() -> datetime:
    return datetime.now(UTC)


def _is_key(key: str) -> bool:
    return len(key) == 32 and all(c in "0123456789abcdef" for c in key)


def _unavailable(record: ObjectRecord) -> ObjectError:
    if record.state is State.UPLOADING:
        return ObjectConflict(f"object {record.key} is still being uploaded")
    reason = {
        DeletedReason.CONFIRMED: "every receiver has confirmed its download",
        DeletedReason.EXPIRED: "its retention period ran out",
        DeletedReason.SENDER: "its sender deleted it",
        DeletedReason.CANCELLED: "its sender cancelled the upload",
    }[record.deleted_reason or DeletedReason.SENDER]
    return ObjectGone(f"object {record.key} was deleted: {reason}")


def unavailable(record: ObjectRecord) -> ObjectError | None:
    """Why the object's bytes cannot be had (deleted, still uploading), or None when they can."""
    return None if record.state is State.STORED else _unavailable(record)


def is_her_id(value: str) -> bool:
    """Whether an object can name this party (as sender or receiver): a HER-id as the registry takes one."""
    try:
        parse_her_id(value)
    except InvalidHerIdError:
        return False
    return True


def _checked_parties(sender: str, receivers: Sequence[str]) -> list[str]:
    unique = list(dict.fromkeys(r.strip() for r in receivers))
    bad = [h for h in [sender, *unique] if not is_her_id(h)]
    if bad:
        raise InvalidObjectRequest(f"HER-ids are numbers; not: {', '.join(bad)}")
    if not unique:
        raise InvalidObjectRequest("an object needs at least one receiver (ReceiverHerIds)")
    if len(unique) > MAX_RECEIVERS:
        raise InvalidObjectRequest(f"an object may have at most {MAX_RECEIVERS} receivers")
    return unique


def _checked_content_type(content_type: str | None) -> str:
    content_type = (content_type or "application/octet-stream").strip()
    if len(content_type) > 255 or not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidObjectRequest(f"not a media type: {content_type[:80]!r}")
    return content_type


async def _insert(
    connection: AsyncConnection, key: str, sender: str, receivers: Sequence[str], content_type: str,
    file_name: str | None, state: State, *, size: int | None = None, sha256: str | None = None,
    upload_id: str | None = None,
) -> None:
    now = _now()
    await connection.execute(sa.insert(t.objects).values(
        key=key, sender_her_id=sender, content_type=content_type, file_name=file_name, state=state,
        upload_id=upload_id, size=size, sha256=sha256, created_at=now, updated_at=now))
    await connection.execute(sa.insert(t.object_receivers), [
        {"key": key, "her_id": her_id, "position": position} for position, her_id in enumerate(receivers)])


async def _mark_deleted(
    connection: AsyncConnection, key: str, reason: DeletedReason, now: datetime, *, only: State = State.STORED,
) -> bool:
    """Tombstone the object if it is still in state `only`; whether this call did it."""
    done = await connection.execute(
        sa.update(t.objects).where(t.objects.c.key == key, t.objects.c.state == only)
        .values(state=State.DELETED, deleted_at=now, deleted_reason=reason, updated_at=now, upload_id=None))
    return bool(done.rowcount)


async def _load(connection: AsyncConnection, keys: Sequence[str]) -> list[ObjectRecord]:
    if not keys:
        return []
    rows = (await connection.execute(sa.select(t.objects).where(t.objects.c.key.in_(keys)))).all()
    receivers: dict[str, list[Receiver]] = {}
    for row in (await connection.execute(
        sa.select(t.object_receivers).where(t.object_receivers.c.key.in_(keys))
        .order_by(t.object_receivers.c.key, t.object_receivers.c.position),
    )).all():
        receivers.setdefault(row.key, []).append(Receiver(row.her_id, row.confirmed_at))
    return [_record(row._mapping, tuple(receivers.get(row.key, []))) for row in rows]


def _record(row: Any, receivers: tuple[Receiver, ...]) -> ObjectRecord:
    return ObjectRecord(
        key=row["key"], sender_her_id=row["sender_her_id"], receivers=receivers, content_type=row["content_type"],
        file_name=row["file_name"], state=State(row["state"]), size=row["size"], sha256=row["sha256"],
        created_at=row["created_at"], deleted_at=row["deleted_at"],
        deleted_reason=DeletedReason(row["deleted_reason"]) if row["deleted_reason"] else None,
        upload_id=row["upload_id"],
    )
