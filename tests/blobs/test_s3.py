"""What only the S3 store has to show: outages, and objects too large for a single server-side copy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from edi.adapters.blobs import MIN_PART_SIZE, BlobNotFound, BlobStoreUnavailable
from edi.adapters.blobs import s3 as s3_module
from tests.blobs.conftest import random_bytes, read_all, sha256, stream
from tests.support.s3 import ControllableS3, S3Server


async def test_an_outage_during_upload_is_retryable_and_leaves_nothing_visible(controllable_s3: ControllableS3) -> None:
    store = await controllable_s3.open_store(await controllable_s3.create_bucket(), part_size=MIN_PART_SIZE)
    content = random_bytes(4 * MIN_PART_SIZE)
    cut = 2 * MIN_PART_SIZE + MIN_PART_SIZE // 2  # two parts are on the server when it goes away

    async def interrupted() -> AsyncIterator[bytes]:
        async for chunk in stream(content[:cut]):
            yield chunk
        controllable_s3.stop()
        async for chunk in stream(content[cut:]):
            yield chunk

    try:
        with pytest.raises(BlobStoreUnavailable, match="cannot be reached"):
            await store.put("scan", interrupted(), content_type="application/pdf")
        with pytest.raises(BlobStoreUnavailable):
            await store.head("scan")

        controllable_s3.start()  # the same server state, reachable again
        with pytest.raises(BlobNotFound):
            await store.head("scan")
        soon = datetime.now(UTC) + timedelta(minutes=1)
        assert [key async for key in store.list_older_than(soon)] == []
        assert await store.abort_uploads_older_than(soon) == 1  # the invisible leftover, reclaimed

        await store.put("scan", stream(content), content_type="application/pdf")  # the client's retry
        assert sha256(await read_all(store.get("scan"))) == sha256(content)
    finally:
        await store.close()


async def test_objects_beyond_a_single_copy_are_copied_in_parts(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(s3_module, "MAX_COPY_SIZE", MIN_PART_SIZE)
    monkeypatch.setattr(s3_module, "COPY_PART_SIZE", MIN_PART_SIZE)
    store = await s3_server.open_store(await s3_server.create_bucket(), part_size=MIN_PART_SIZE)
    try:
        content = random_bytes(2 * MIN_PART_SIZE + 100)
        info = await store.put("large", stream(content), content_type="image/jpeg", metadata={"sender": "42"})
        head = await store.head("large")
        assert (head.size, head.sha256, head.content_type, dict(head.metadata)) == (
            len(content), sha256(content), "image/jpeg", {"sender": "42"})
        assert info.sha256 == head.sha256
        assert await read_all(store.get("large")) == content
    finally:
        await store.close()


async def test_a_part_larger_than_the_part_buffer_is_spooled_to_disk(s3_server: S3Server) -> None:
    store = await s3_server.open_store(await s3_server.create_bucket(), part_size=MIN_PART_SIZE)
    try:
        first, last = random_bytes(MIN_PART_SIZE + 1_000_000), random_bytes(10)
        upload = await store.create_multipart("spooled", content_type="application/pdf")
        tags = {1: (await store.upload_part("spooled", upload, 1, stream(first))).etag,
                2: (await store.upload_part("spooled", upload, 2, stream(last))).etag}
        info = await store.complete_multipart("spooled", upload, tags)
        assert (info.size, info.sha256) == (len(first + last), sha256(first + last))
        assert await read_all(store.get("spooled")) == first + last
    finally:
        await store.close()
