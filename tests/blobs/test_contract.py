"""The BlobStore contract, the same on the directory store and on a real S3-compatible server over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edi.adapters.blobs import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
    BlobNotFound,
    BlobStore,
    IntegrityError,
    InvalidUpload,
)
from tests.blobs.conftest import Tamper, random_bytes, read_all, sha256, stream


async def test_a_small_object_round_trips_with_what_was_recorded(store: BlobStore) -> None:
    content = random_bytes(70_000)
    before = datetime.now(UTC) - timedelta(seconds=5)
    info = await store.put("obj-1", stream(content), content_type="application/pdf", metadata={"sender": "8093"})
    assert (info.key, info.size, info.content_type, info.sha256) == ("obj-1", len(content), "application/pdf",
                                                                      sha256(content))
    head = await store.head("obj-1")
    assert (head.size, head.content_type, head.sha256, dict(head.metadata)) == (
        len(content), "application/pdf", sha256(content), {"sender": "8093"})
    assert before <= head.created <= datetime.now(UTC) + timedelta(seconds=5)
    assert await read_all(store.get("obj-1")) == content


async def test_a_stream_longer_than_a_part_is_stored_whole_and_read_back_in_bounded_chunks(store: BlobStore) -> None:
    content = random_bytes(2 * MIN_PART_SIZE + 12_345)  # three S3 parts
    info = await store.put("big", stream(content), content_type="image/tiff")
    assert (info.size, info.sha256) == (len(content), sha256(content))
    assert (await store.head("big")).sha256 == sha256(content)
    chunks = [chunk async for chunk in store.get("big")]
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
    assert b"".join(chunks) == content


async def test_an_empty_object_is_an_object(store: BlobStore) -> None:
    info = await store.put("empty", stream(b""), content_type="text/plain")
    assert (info.size, info.sha256) == (0, sha256(b""))
    assert await read_all(store.get("empty")) == b""


async def test_missing_objects(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.head("nothing")
    with pytest.raises(BlobNotFound):
        await read_all(store.get("nothing"))
    await store.delete("nothing")  # not an error


async def test_delete_and_replace(store: BlobStore) -> None:
    await store.put("k", stream(b"first"), content_type="text/plain")
    await store.put("k", stream(b"second"), content_type="text/csv")
    assert await read_all(store.get("k")) == b"second"
    assert (await store.head("k")).content_type == "text/csv"
    await store.delete("k")
    with pytest.raises(BlobNotFound):
        await store.head("k")


async def test_keys_and_metadata_are_checked(store: BlobStore) -> None:
    for key in ("../escape", "a/b", "", ".hidden", "x" * 201):
        with pytest.raises(ValueError):
            await store.put(key, stream(b"x"), content_type="text/plain")
    with pytest.raises(ValueError):
        await store.put("k", stream(b"x"), content_type="text/plain", metadata={"sha256": "forged"})
    with pytest.raises(ValueError):
        await store.put("k", stream(b"x"), content_type="text/plain", metadata={"name": "blåbær"})


async def test_a_tampered_object_fails_its_sha256_check(store: BlobStore, tamper: Tamper) -> None:
    content = random_bytes(3 * CHUNK_SIZE)
    await store.put("t", stream(content), content_type="application/pdf")
    flipped = bytearray(content)
    flipped[-1] ^= 0xFF
    await tamper("t", bytes(flipped))
    with pytest.raises(IntegrityError, match="sha256") as raised:
        await read_all(store.get("t"))
    assert raised.value.key == "t"
    assert sha256(content) in str(raised.value)


async def test_a_truncated_object_fails_its_check(store: BlobStore, tamper: Tamper) -> None:
    await store.put("t", stream(b"0123456789"), content_type="text/plain")
    await tamper("t", b"01234")
    with pytest.raises(IntegrityError):
        await read_all(store.get("t"))


async def test_multipart_upload_is_invisible_until_complete(store: BlobStore) -> None:
    first, second = random_bytes(MIN_PART_SIZE), random_bytes(1000)
    upload = await store.create_multipart("mp", content_type="application/pdf", metadata={"sender": "1"})
    part2 = await store.upload_part("mp", upload, 2, stream(second))
    await store.upload_part("mp", upload, 1, stream(random_bytes(MIN_PART_SIZE)))
    part1 = await store.upload_part("mp", upload, 1, stream(first))  # uploading a part again replaces it
    assert (part1.part_number, part1.size, part2.size) == (1, MIN_PART_SIZE, 1000)
    with pytest.raises(BlobNotFound):
        await store.head("mp")
    info = await store.complete_multipart("mp", upload, {2: part2.etag, 1: part1.etag})  # joined by number
    assert (info.size, info.sha256, info.content_type) == (len(first + second), sha256(first + second),
                                                           "application/pdf")
    head = await store.head("mp")
    assert (head.sha256, dict(head.metadata)) == (sha256(first + second), {"sender": "1"})
    assert await read_all(store.get("mp")) == first + second


async def test_multipart_completion_checks_its_parts(store: BlobStore) -> None:
    upload = await store.create_multipart("mp", content_type="text/plain")
    small = await store.upload_part("mp", upload, 1, stream(b"too small to be followed"))
    last = await store.upload_part("mp", upload, 2, stream(b"end"))
    with pytest.raises(InvalidUpload):
        await store.complete_multipart("mp", upload, {1: small.etag, 2: last.etag})
    with pytest.raises(InvalidUpload):
        await store.complete_multipart("mp", upload, {1: '"' + "0" * 64 + '"'})
    with pytest.raises(InvalidUpload):
        await store.complete_multipart("mp", upload, {1: "../../escape"})
    with pytest.raises(InvalidUpload):
        await store.upload_part("mp", upload, 0, stream(b"x"))
    with pytest.raises(BlobNotFound):
        await store.head("mp")
    assert (await store.complete_multipart("mp", upload, {2: last.etag})).size == 3  # a lone part may be small


async def test_an_aborted_upload_leaves_nothing(store: BlobStore) -> None:
    upload = await store.create_multipart("gone", content_type="text/plain")
    await store.upload_part("gone", upload, 1, stream(b"abc"))
    await store.abort_multipart("gone", upload)
    await store.abort_multipart("gone", upload)  # again: not an error
    with pytest.raises(BlobNotFound):
        await store.head("gone")
    assert await store.abort_uploads_older_than(datetime.now(UTC) + timedelta(minutes=1)) == 0  # nothing left


async def test_the_janitors_view(store: BlobStore) -> None:
    await store.put("a", stream(b"a"), content_type="text/plain")
    await store.put("b", stream(b"b"), content_type="text/plain")
    soon = datetime.now(UTC) + timedelta(minutes=1)
    assert sorted([key async for key in store.list_older_than(soon)]) == ["a", "b"]
    assert [key async for key in store.list_older_than(soon - timedelta(hours=1))] == []

    upload = await store.create_multipart("c", content_type="text/plain")
    await store.upload_part("c", upload, 1, stream(b"c"))
    assert await store.abort_uploads_older_than(soon - timedelta(hours=1)) == 0
    assert await store.abort_uploads_older_than(soon) == 1
    assert await store.abort_uploads_older_than(soon) == 0
    assert sorted([key async for key in store.list_older_than(soon)]) == ["a", "b"]
