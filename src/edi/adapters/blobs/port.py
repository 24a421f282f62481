"""The BlobStore port: named byte objects too large for a Kafka record, with their sha256.

Two adapters implement it with the same semantics: a directory (`directory.py`, the one-machine default) and
S3-compatible object storage (`s3.py`: AWS S3, MinIO, Ceph). What both guarantee:

- Bytes move as async streams of chunks, never as whole objects: `put` and `upload_part` read an async
  iterable, `get` yields chunks. Memory stays bounded by a few chunks (S3: a few parts) whatever the size.
- An object becomes visible only complete, with its size, content type, sha256 and metadata: an upload that
  fails part-way (client gone, store outage) leaves nothing `head`, `get` or `list_older_than` can see. What it
  left behind is invisible and `abort_uploads_older_than` reclaims it.
- The sha256 is computed while the bytes stream in and stored with the object; `get` recomputes it while the
  bytes stream out and raises `IntegrityError` after the last chunk if they differ (and at once when the size
  already differs), so a tampered or truncated object is never passed on as good.
- Connection failures raise `BlobStoreUnavailable`: retryable, and nothing was made visible.
- Multipart uploads follow S3's rules on both stores: part numbers 1..10000, every part but the last at least
  `MIN_PART_SIZE`, completion names each part with the ETag its upload returned.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PART_NUMBER = 10_000
CHUNK_SIZE = 1024 * 1024  # what `get` yields at most, and the write unit of the directory store
SHA256_METADATA = "sha256"  # reserved metadata name: the stores keep the object's hash under it

# Keys are file names in the directory store and stay unambiguous in S3 and in URLs.
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
# S3 user metadata travels as HTTP headers (x-amz-meta-*): ASCII only, names case-insensitive, 2 KB in all.
_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_METADATA_VALUE = re.compile(r"[ -~]{0,512}")


class BlobStoreError(Exception):
    """A blob store operation failed."""


class BlobNotFound(BlobStoreError):
    """No (complete) object under that key, or no such multipart upload."""


class IntegrityError(BlobStoreError):
    """The stored bytes do not match the sha256 (or size) recorded when the object was written."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"object {key} is corrupt: {detail}")
        self.key = key

    @classmethod
    def sha256_mismatch(cls, key: str, expected: str, actual: str) -> IntegrityError:
        return cls(key, f"its bytes hash to sha256 {actual}, but {expected} was recorded when it was stored")

    @classmethod
    def size_mismatch(cls, key: str, expected: int, actual: int) -> IntegrityError:
        return cls(key, f"it holds {actual} bytes, but {expected} were recorded when it was stored")


class BlobStoreUnavailable(BlobStoreError):
    """The store could not be reached or failed transiently: retry later. Nothing was made visible."""


class InvalidUpload(BlobStoreError):
    """A multipart request the store refuses: bad part number, unknown ETag, a part too small, ..."""


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid blob key {key!r}: letters, digits, '.', '_' and '-', at most 200")
    return key


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    checked = dict(metadata or {})
    for name, value in checked.items():
        if name == SHA256_METADATA or not _METADATA_NAME.fullmatch(name) or not _METADATA_VALUE.fullmatch(value):
            raise ValueError(f"invalid blob metadata {name!r}: lower-case ASCII names, printable ASCII values")
    return checked


def check_part_number(part_number: int) -> int:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise InvalidUpload(f"part number {part_number} is outside 1..{MAX_PART_NUMBER}")
    return part_number


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    content_type: str
    sha256: str  # lower-case hex
    created: datetime  # when the object became visible (UTC)
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadedPart:
    part_number: int
    etag: str
    size: int


class BlobStore(Protocol):
    async def put(
        self, key: str, data: AsyncIterable[bytes], *, content_type: str, metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo:
        """Store the stream under `key` (replacing any object there) and return what was stored."""
        ...

    def get(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks of at most CHUNK_SIZE. Raises BlobNotFound on the first iteration when
        there is no such object, IntegrityError when the bytes do not match the recorded sha256."""
        ...

    async def head(self, key: str) -> BlobInfo:
        """What is recorded about the object; raises BlobNotFound."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object; removing one that is not there is not an error."""
        ...

    async def create_multipart(
        self, key: str, *, content_type: str, metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Start a multipart upload to `key`; returns its upload id. Nothing is visible until completion."""
        ...

    async def upload_part(self, key: str, upload_id: str, part_number: int, data: AsyncIterable[bytes]) -> UploadedPart:
        """Store one part (uploading the same number again replaces it)."""
        ...

    async def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> BlobInfo:
        """Join the parts named by number and ETag, in part-number order, into the object, which becomes visible
        now."""
        ...

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; aborting one that is gone is not an error."""
        ...

    def list_older_than(self, cutoff: datetime) -> AsyncIterator[str]:
        """The key of every visible object created before `cutoff` (for the janitor)."""
        ...

    async def abort_uploads_older_than(self, cutoff: datetime) -> int:
        """Reclaim what uploads started before `cutoff` and never completed left behind; returns how many."""
        ...

    async def close(self) -> None:
        ...
