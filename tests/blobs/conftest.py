"""Blob stores for the contract suite: every test taking `store` runs on the directory store and on the
S3-compatible server the session starts (moto over HTTP, or EDI_TEST_S3_ENDPOINT)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from edi.adapters.blobs import MIN_PART_SIZE, BlobStore, DirectoryBlobStore, S3BlobStore
from tests.support.s3 import S3Server

Tamper = Callable[[str, bytes], Awaitable[None]]


@pytest.fixture(params=["directory", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# Function loop scope: the S3 client's connections must live on the test's own event loop.
@pytest_asyncio.fixture(loop_scope="function")
async def store(store_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[BlobStore]:
    """A fresh, empty store. S3 parts are S3's smallest, so multipart paths run with small objects."""
    opened: BlobStore
    if store_kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        opened = await server.open_store(await server.create_bucket(), part_size=MIN_PART_SIZE)
    else:
        opened = DirectoryBlobStore(tmp_path / "blobs")
    yield opened
    await opened.close()


@pytest.fixture
def tamper(store: BlobStore) -> Tamper:
    """Replaces an object's bytes behind the store's back, keeping what was recorded about it."""

    async def replace(key: str, content: bytes) -> None:
        if isinstance(store, S3BlobStore):
            info = await store.head(key)
            await store._client.put_object(
                Bucket=store.bucket, Key=f"objects/{key}", Body=content, ContentType=info.content_type,
                Metadata={**info.metadata, "sha256": info.sha256},
            )
        else:
            assert isinstance(store, DirectoryBlobStore)
            (store.root / "objects" / key / "data").write_bytes(content)

    return replace


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


async def stream(content: bytes, chunk: int = 65_537) -> AsyncIterator[bytes]:
    """The bytes as a sender's chunks, of an odd size so that no part boundary lines up with them."""
    for start in range(0, len(content), chunk):
        yield content[start : start + chunk]


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()
