"""The S3 blob store (aiobotocore): AWS S3, MinIO, Ceph RGW or any S3-compatible server, by endpoint URL.

Keys under the bucket (and an optional prefix):

    objects/<key>                a visible object; user metadata `sha256` holds its hash
    staging/<started>-<random>   an object being written, or a multipart upload in progress

S3 wants an object's metadata when its upload starts, but a stream's sha256 is known only at its end. So a
stream that fits in one part goes up with a single PutObject straight to its key (hash known by then); a longer
one goes up as a multipart upload to a staging key and is then copied server-side to its key with the sha256 in
its metadata. Either way the key shows only a complete object with its hash: an outage part-way leaves at most
an invisible staging upload, which is aborted on the spot when the store is still reachable and by the janitor
(`abort_uploads_older_than`) otherwise. Uploads through the multipart methods (the object API's parts) also go
to a staging key; completion reads the joined object once to hash it, then copies it the same way.

Memory: a streamed put holds two parts (`part_size`, 8 MiB by default), one on the wire and one filling; a part
given to `upload_part` is spooled to a temporary file beyond `part_size`, because S3 needs each part's length up
front.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Literal

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from edi.adapters.blobs._streams import rechunk
from edi.adapters.blobs.port import (
    CHUNK_SIZE,
    SHA256_METADATA,
    BlobInfo,
    BlobNotFound,
    BlobStoreError,
    BlobStoreUnavailable,
    IntegrityError,
    InvalidUpload,
    UploadedPart,
    check_key,
    check_metadata,
    check_part_number,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_COPY_SIZE = 5 * 1024**3  # CopyObject's limit; larger objects are copied part by part
COPY_PART_SIZE = 512 * 1024 * 1024

_STAGING_NAME = re.compile(r"([0-9]{1,12})-[0-9a-f]{32}")
_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})
_REFUSED_UPLOAD = frozenset({"EntityTooSmall", "InvalidPart", "InvalidPartOrder", "EntityTooLarge"})
_TRANSIENT = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})
# Everything that means "could not talk to the store" rather than "the store said no".
_CONNECTION_ERRORS = (HTTPClientError, BotoConnectionError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


class S3BlobStore:
    def __init__(self, client: S3Client, bucket: str, *, prefix: str = "", part_size: int = DEFAULT_PART_SIZE,
                 resources: AsyncExitStack | None = None) -> None:
        self._client = client
        self.bucket = bucket
        self._objects = f"{prefix}objects/"
        self._staging = f"{prefix}staging/"
        self.part_size = part_size
        self._resources = resources or AsyncExitStack()

    @classmethod
    async def open(
        cls, bucket: str, *, endpoint_url: str | None = None, region: str | None = None,
        access_key_id: str | None = None, secret_access_key: str | None = None, prefix: str = "",
        part_size: int = DEFAULT_PART_SIZE, addressing_style: Literal["auto", "path", "virtual"] = "auto",
        connect_timeout_s: float = 5.0, read_timeout_s: float = 60.0, max_attempts: int = 3,
    ) -> S3BlobStore:
        """A store on `bucket`. Credentials not given come from the usual AWS chain (environment, profile, ...)."""
        config = AioConfig(
            # Only what S3 requires: newer default checksums (CRC trailers) break MinIO and Ceph versions in use.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            s3={"addressing_style": addressing_style},
        )
        resources = AsyncExitStack()
        client = await resources.enter_async_context(get_session().create_client(
            "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key, config=config,
        ))
        return cls(client, bucket, prefix=prefix, part_size=part_size, resources=resources)

    async def close(self) -> None:
        await self._resources.aclose()

    async def create_bucket(self) -> None:
        """Create the bucket when it is missing: for development and tests (production buckets are provisioned
        with their own retention, encryption and access policies)."""
        with _errors(self.bucket):
            try:
                await self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                    raise
                await self._client.create_bucket(Bucket=self.bucket)

    # --- whole objects ----------------------------------------------------------------------------------------

    async def put(
        self, key: str, data: AsyncIterable[bytes], *, content_type: str, metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo:
        target = self._objects + check_key(key)
        extra = check_metadata(metadata)
        parts = rechunk(data, self.part_size)
        first = await anext(parts, b"")
        second = await anext(parts, None)
        hasher = hashlib.sha256()
        await asyncio.to_thread(hasher.update, first)  # off the loop: 8 MiB of sha256 takes ~20 ms
        if second is None:
            sha256 = hasher.hexdigest()
            with _errors(key):
                await self._client.put_object(Bucket=self.bucket, Key=target, Body=first, ContentType=content_type,
                                              Metadata={**extra, SHA256_METADATA: sha256})
            return BlobInfo(key, len(first), content_type, sha256, datetime.now(UTC), extra)
        staging = self._staging + _staging_name()
        with _errors(key):
            upload_id = (await self._client.create_multipart_upload(Bucket=self.bucket, Key=staging))["UploadId"]
        sending: list[asyncio.Task[UploadedPart]] = []
        try:
            size = 0
            async for part in _prepend((first, second), parts):
                if sending:  # the first part was hashed above
                    await asyncio.to_thread(hasher.update, part)
                number = len(sending) + 1
                sending.append(asyncio.create_task(self._send_part(key, staging, upload_id, number, part, len(part))))
                size += len(part)
                if number > 1:
                    # One part on the wire while the next is read: the sender does not wait for each part's
                    # acknowledgement, and at most two parts are held.
                    await sending[-2]
            await self._complete(key, staging, upload_id, {n + 1: (await t).etag for n, t in enumerate(sending)})
        except BaseException:
            for task in sending:
                task.cancel()
            await asyncio.gather(*sending, return_exceptions=True)
            await self._abandon(staging, upload_id)
            raise
        info = BlobInfo(key, size, content_type, hasher.hexdigest(), datetime.now(UTC), extra)
        await self._publish(staging, info)
        return info

    async def get(self, key: str) -> AsyncIterator[bytes]:
        target = self._objects + check_key(key)
        with _errors(key):
            response = await self._client.get_object(Bucket=self.bucket, Key=target)
        body = response["Body"]
        try:
            expected = response["Metadata"].get(SHA256_METADATA)
            if expected is None:
                raise BlobNotFound(key)  # not written by a blob store: not ours to serve
            hasher = hashlib.sha256()
            received = 0
            while True:
                with _errors(key):
                    chunk = await body.read(CHUNK_SIZE)
                if not chunk:
                    break
                await asyncio.to_thread(hasher.update, chunk)
                received += len(chunk)
                yield chunk
            if received != response["ContentLength"]:
                raise BlobStoreUnavailable(f"object {key}: the connection ended after {received} bytes")
            if hasher.hexdigest() != expected:
                raise IntegrityError.sha256_mismatch(key, expected, hasher.hexdigest())
        finally:
            body.close()

    async def head(self, key: str) -> BlobInfo:
        with _errors(key):
            response = await self._client.head_object(Bucket=self.bucket, Key=self._objects + check_key(key))
        metadata = dict(response["Metadata"])
        sha256 = metadata.pop(SHA256_METADATA, None)
        if sha256 is None:
            raise BlobNotFound(key)
        return BlobInfo(key, response["ContentLength"], response["ContentType"], sha256,
                        response["LastModified"].astimezone(UTC), metadata)

    async def delete(self, key: str) -> None:
        with _errors(key):
            await self._client.delete_object(Bucket=self.bucket, Key=self._objects + check_key(key))

    # --- multipart --------------------------------------------------------------------------------------------

    async def create_multipart(
        self, key: str, *, content_type: str, metadata: Mapping[str, str] | None = None,
    ) -> str:
        check_key(key)
        staging = _staging_name()
        with _errors(key):
            response = await self._client.create_multipart_upload(
                Bucket=self.bucket, Key=self._staging + staging, ContentType=content_type,
                Metadata=check_metadata(metadata),
            )
        return f"{staging}/{response['UploadId']}"  # the staging key travels inside the upload id

    async def upload_part(self, key: str, upload_id: str, part_number: int, data: AsyncIterable[bytes]) -> UploadedPart:
        check_key(key)
        staging, s3_upload_id = self._split(upload_id)
        check_part_number(part_number)
        with tempfile.SpooledTemporaryFile(max_size=self.part_size) as spool:
            size = 0
            async for unit in rechunk(data, CHUNK_SIZE):
                await asyncio.to_thread(spool.write, unit)
                size += len(unit)
            spool.seek(0)
            return await self._send_part(key, staging, s3_upload_id, part_number, spool, size)

    async def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> BlobInfo:
        check_key(key)
        staging, s3_upload_id = self._split(upload_id)
        if not parts:
            raise InvalidUpload("a multipart upload needs at least one part to complete")
        for number in parts:
            check_part_number(number)
        await self._complete(key, staging, s3_upload_id, parts)
        try:
            with _errors(key):
                response = await self._client.head_object(Bucket=self.bucket, Key=staging)
            hasher = hashlib.sha256()
            size = 0
            with _errors(key):
                body = (await self._client.get_object(Bucket=self.bucket, Key=staging))["Body"]
                try:
                    while chunk := await body.read(CHUNK_SIZE):
                        await asyncio.to_thread(hasher.update, chunk)
                        size += len(chunk)
                finally:
                    body.close()
            info = BlobInfo(key, size, response["ContentType"], hasher.hexdigest(), datetime.now(UTC),
                            dict(response["Metadata"]))
            await self._publish(staging, info)
        except BaseException:
            await self._discard(staging)
            raise
        return info

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        check_key(key)
        staging, s3_upload_id = self._split(upload_id)
        try:
            with _errors(key):
                await self._client.abort_multipart_upload(Bucket=self.bucket, Key=staging, UploadId=s3_upload_id)
        except BlobNotFound:
            pass

    # --- the janitor's view -----------------------------------------------------------------------------------

    async def list_older_than(self, cutoff: datetime) -> AsyncIterator[str]:
        with _errors("listing"):
            async for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._objects,
            ):
                for entry in page.get("Contents", []):
                    if entry["LastModified"] < cutoff:
                        yield entry["Key"].removeprefix(self._objects)

    async def abort_uploads_older_than(self, cutoff: datetime) -> int:
        removed = 0
        with _errors("listing"):
            async for page in self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._staging,
            ):
                for upload in page.get("Uploads", []):
                    if _started(upload["Key"]) < cutoff:
                        await self._abandon(upload["Key"], upload["UploadId"])
                        removed += 1
            async for listing in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._staging,
            ):
                for entry in listing.get("Contents", []):
                    if _started(entry["Key"]) < cutoff:
                        await self._discard(entry["Key"])
                        removed += 1
        return removed

    # --- helpers ----------------------------------------------------------------------------------------------

    def _split(self, upload_id: str) -> tuple[str, str]:
        staging, _, s3_upload_id = upload_id.partition("/")
        if not _STAGING_NAME.fullmatch(staging) or not s3_upload_id:
            raise BlobNotFound(f"upload {upload_id}")
        return self._staging + staging, s3_upload_id

    async def _send_part(
        self, key: str, staging: str, upload_id: str, part_number: int, body: bytes | IO[bytes], size: int,
    ) -> UploadedPart:
        with _errors(key):
            response = await self._client.upload_part(
                Bucket=self.bucket, Key=staging, UploadId=upload_id, PartNumber=part_number, Body=body,
                ContentLength=size,
            )
        return UploadedPart(part_number, response["ETag"], size)

    async def _complete(self, key: str, staging: str, upload_id: str, parts: Mapping[int, str]) -> None:
        with _errors(key):
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=staging, UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]} for n in sorted(parts)]},
            )

    async def _publish(self, staging: str, info: BlobInfo) -> None:
        """Copy the complete staging object to its key with the metadata, then drop the staging copy."""
        target = self._objects + info.key
        metadata = {**info.metadata, SHA256_METADATA: info.sha256}
        try:
            with _errors(info.key):
                if info.size <= MAX_COPY_SIZE:
                    await self._client.copy_object(
                        Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": staging},
                        MetadataDirective="REPLACE", ContentType=info.content_type, Metadata=metadata,
                    )
                else:
                    await self._copy_in_parts(staging, target, info.size, info.content_type, metadata)
        finally:
            await self._discard(staging)

    async def _copy_in_parts(
        self, source: str, target: str, size: int, content_type: str, metadata: dict[str, str],
    ) -> None:
        upload_id = (await self._client.create_multipart_upload(
            Bucket=self.bucket, Key=target, ContentType=content_type, Metadata=metadata))["UploadId"]
        try:
            parts: list[CompletedPartTypeDef] = []
            for number, start in enumerate(range(0, size, COPY_PART_SIZE), start=1):
                end = min(start + COPY_PART_SIZE, size) - 1
                response = await self._client.upload_part_copy(
                    Bucket=self.bucket, Key=target, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source}, CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]})
            await self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            await self._abandon(target, upload_id)
            raise

    async def _abandon(self, staging: str, upload_id: str) -> None:
        """Best effort, also while failing or cancelled: the janitor reclaims what this cannot."""
        try:
            await asyncio.shield(self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=staging, UploadId=upload_id))
        except (ClientError, *_CONNECTION_ERRORS, asyncio.CancelledError):
            pass

    async def _discard(self, staging: str) -> None:
        try:
            await asyncio.shield(self._client.delete_object(Bucket=self.bucket, Key=staging))
        except (ClientError, *_CONNECTION_ERRORS, asyncio.CancelledError):
            pass


def _staging_name() -> str:
    # The start time in the name, not the server's Initiated or LastModified: S3-compatible servers do not all
    # report those faithfully, and the janitor must never take a fresh upload for a stale one.
    return f"{int(time.time())}-{uuid.uuid4().hex}"


def _started(staging_key: str) -> datetime:
    match = _STAGING_NAME.fullmatch(staging_key.rpartition("/")[2])
    return datetime.fromtimestamp(int(match.group(1)), UTC) if match else datetime.min.replace(tzinfo=UTC)


async def _prepend(first: tuple[bytes, ...], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for part in first:
        yield part
    async for part in rest:
        yield part


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """S3's answers as the port's errors: missing, refused upload, transient (retryable), or other."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in _NOT_FOUND:
            raise BlobNotFound(what) from None
        if code in _REFUSED_UPLOAD:
            raise InvalidUpload(f"{what}: {code}: {error.get('Message', '')}") from None
        if code in _TRANSIENT or status >= 500:
            raise BlobStoreUnavailable(f"{what}: the object store answered {code or status}") from exc
        raise BlobStoreError(f"{what}: the object store refused the request: {code or status}") from exc
    except _CONNECTION_ERRORS as exc:
        raise BlobStoreUnavailable(f"{what}: the object store cannot be reached: {type(exc).__name__}") from exc
