"""The object service on SQLite and PostgreSQL: confirmations, the janitor, outages, a shared database."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from edi.adapters.blobs import MIN_PART_SIZE, BlobNotFound
from edi.kapabilitetsregister.store import RegistryStore
from edi.services.objects import janitor, tables
from edi.services.objects.api import create_objects_app
from edi.services.objects.service import DeletedReason, ObjectGone, ObjectNotFound, ObjectService, State, Sweep
from tests.objects.conftest import PUBLIC_URL, RECEIVER, RETENTION, SENDER, OpenService, as_, chunks, header_her_ids
from tests.support.s3 import ControllableS3


async def test_concurrent_last_confirmations_delete_the_object_once(
    open_service: OpenService, any_database: str,
) -> None:
    service = await open_service(any_database)
    receivers = [str(8200 + n) for n in range(8)]
    record = await service.put(sender=SENDER, receivers=receivers, data=chunks(b"shared"), content_type="text/plain")
    confirmed = await asyncio.gather(*(service.confirm(record.key, her_id) for her_id in receivers))
    assert sum(r.state is State.DELETED for r in confirmed) >= 1
    final = await service.record(record.key)
    assert (final.state, final.deleted_reason) == (State.DELETED, DeletedReason.CONFIRMED)
    assert all(r.confirmed_at is not None for r in final.receivers)
    with pytest.raises(BlobNotFound):
        await service.blobs.head(record.key)


async def test_the_janitor_deletes_what_outlives_its_retention(open_service: OpenService, any_database: str) -> None:
    service = await open_service(any_database)
    old = await service.put(sender=SENDER, receivers=[RECEIVER], data=chunks(b"old"), content_type="text/plain")
    uploading = await service.initiate(sender=SENDER, receivers=[RECEIVER], content_type="text/plain")
    await service.upload_part(uploading.key, 1, chunks(b"part"))
    fresh = await service.put(sender=SENDER, receivers=[RECEIVER], data=chunks(b"new"), content_type="text/plain")
    orphan = "f" * 32  # bytes whose object was never recorded (a crash between the two)
    await service.blobs.put(orphan, chunks(b"nobody's"), content_type="text/plain")
    await _backdate(service, [old.key, uploading.key], RETENTION + timedelta(days=1))

    now = datetime.now(UTC)
    assert await service.sweep(now) == Sweep(expired=2, purged=0, orphans=0, uploads=0)  # orphan: in its grace
    for key in (old.key, uploading.key):
        record = await service.record(key)
        assert (record.state, record.deleted_reason) == (State.DELETED, DeletedReason.EXPIRED)
    with pytest.raises(BlobNotFound):
        await service.blobs.head(old.key)
    with pytest.raises(ObjectGone):
        await service.upload_part(uploading.key, 2, chunks(b"late"))
    assert await service.sweep(now + timedelta(hours=2)) == Sweep(expired=0, purged=0, orphans=1, uploads=0)
    assert [key async for key in service.blobs.list_older_than(now + timedelta(days=1))] == [fresh.key]

    # A retention period later the tombstones go too, and the fresh object has expired in turn.
    assert await service.sweep(now + RETENTION + timedelta(days=1)) == Sweep(expired=1, purged=2, orphans=0,
                                                                             uploads=0)
    with pytest.raises(ObjectNotFound):
        await service.record(old.key)


async def test_the_janitor_runs_until_stopped(open_service: OpenService, database_url: str) -> None:
    service = await open_service(database_url)
    old = await service.put(sender=SENDER, receivers=[RECEIVER], data=chunks(b"old"), content_type="text/plain")
    await _backdate(service, [old.key], RETENTION + timedelta(days=1))
    stop = asyncio.Event()
    task = asyncio.create_task(janitor.run(service, 3600, stop))
    for _ in range(100):
        if (await service.record(old.key)).state is State.DELETED:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert (await service.record(old.key)).deleted_reason is DeletedReason.EXPIRED


async def test_the_service_shares_a_database_with_the_registry(open_service: OpenService, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    registry = await RegistryStore.open(url)
    try:
        service = await open_service(url)
        await service.migrate()  # again: already current
        assert (await service.put(sender=SENDER, receivers=[RECEIVER], data=chunks(b"x"),
                                  content_type="text/plain")).size == 1
        assert await registry.list_parties() == []
    finally:
        await registry.close()


async def test_an_s3_outage_during_upload_is_a_retryable_error_that_leaves_no_object(
    open_service: OpenService, database_url: str, controllable_s3: ControllableS3,
) -> None:
    blobs = await controllable_s3.open_store(await controllable_s3.create_bucket(), part_size=MIN_PART_SIZE)
    service = await open_service(database_url, blobs)
    content = os.urandom(4 * MIN_PART_SIZE)
    boundary = "edi-test-boundary"

    async def body() -> AsyncIterator[bytes]:
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"SenderHerId\"\r\n\r\n{SENDER}\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"ReceiverHerIds\"\r\n\r\n{RECEIVER}\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"File\"; filename=\"ct.dcm\"\r\n"
               f"Content-Type: application/dicom\r\n\r\n").encode()
        cut = 2 * MIN_PART_SIZE + MIN_PART_SIZE // 2
        async for chunk in chunks(content[:cut]):
            yield chunk
        controllable_s3.stop()
        async for chunk in chunks(content[cut:]):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    app = create_objects_app(service, header_her_ids)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as http:
        response = await http.post("/objects", content=body(), headers={
            **as_(SENDER), "content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert "cannot be reached" in response.json()["detail"]

    controllable_s3.start()
    soon = datetime.now(UTC) + timedelta(minutes=1)
    assert [key async for key in blobs.list_older_than(soon)] == []
    async with service.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(tables.objects)) == 0
    assert await blobs.abort_uploads_older_than(soon) == 1  # the invisible leftover, for the janitor


async def _backdate(service: ObjectService, keys: list[str], age: timedelta) -> None:
    async with service.engine.begin() as connection:
        await connection.execute(sa.update(tables.objects).where(tables.objects.c.key.in_(keys))
                                 .values(created_at=datetime.now(UTC) - age))
