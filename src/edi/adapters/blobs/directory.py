"""The directory blob store: one machine, zero setup.

Layout under the root:

    objects/<key>/data, meta.json     a visible object: its bytes and what was recorded (size, sha256, ...)
    uploads/<upload id>/upload.json   a multipart upload in progress, with its parts `part-00001-<etag>`
    staging/<random>/                 an object being written
    trash/<random>/                   an object being deleted

An object is assembled in `staging/` (bytes and meta.json, fsynced) and becomes visible by renaming its
directory into `objects/`, which is atomic: readers see all of it or nothing. Deleting renames it into `trash/`
first, for the same reason. File I/O runs in worker threads, one CHUNK_SIZE unit per hop, so the event loop
never waits on the disk; hashing happens in the same hop (hashlib releases the GIL on large buffers).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from edi.adapters.blobs._streams import rechunk
from edi.adapters.blobs.port import (
    CHUNK_SIZE,
    MIN_PART_SIZE,
    BlobInfo,
    BlobNotFound,
    IntegrityError,
    InvalidUpload,
    UploadedPart,
    check_key,
    check_metadata,
    check_part_number,
)

_DATA, _META, _UPLOAD = "data", "meta.json", "upload.json"
_ETAG = re.compile(r"[0-9a-f]{64}")  # a part's ETag here is the sha256 of its bytes


class DirectoryBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects, self._uploads = root / "objects", root / "uploads"
        self._staging, self._trash = root / "staging", root / "trash"
        for directory in (self._objects, self._uploads, self._staging, self._trash):
            directory.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    # --- whole objects ----------------------------------------------------------------------------------------

    async def put(
        self, key: str, data: AsyncIterable[bytes], *, content_type: str, metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo:
        check_key(key)
        extra = check_metadata(metadata)
        staging = self._new_dir(self._staging)
        try:
            hasher = hashlib.sha256()
            size = await _write(staging / _DATA, data, hasher)
            info = BlobInfo(key, size, content_type, hasher.hexdigest(), datetime.now(UTC), extra)
            await asyncio.to_thread(self._publish, staging, info)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)  # gone already unless something failed
        return info

    async def get(self, key: str) -> AsyncIterator[bytes]:
        directory = self._objects / check_key(key)
        info = await asyncio.to_thread(_read_meta, directory, key)
        try:
            file = await asyncio.to_thread(open, directory / _DATA, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None  # deleted since its meta.json was read
        try:
            stored = os.fstat(file.fileno()).st_size
            if stored != info.size:
                raise IntegrityError.size_mismatch(key, info.size, stored)
            hasher = hashlib.sha256()
            while chunk := await asyncio.to_thread(_read_hashed, file, hasher):
                yield chunk
            if hasher.hexdigest() != info.sha256:
                raise IntegrityError.sha256_mismatch(key, info.sha256, hasher.hexdigest())
        finally:
            file.close()

    async def head(self, key: str) -> BlobInfo:
        return await asyncio.to_thread(_read_meta, self._objects / check_key(key), key)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._remove, self._objects / check_key(key))

    # --- multipart --------------------------------------------------------------------------------------------

    async def create_multipart(
        self, key: str, *, content_type: str, metadata: Mapping[str, str] | None = None,
    ) -> str:
        check_key(key)
        upload = {"key": key, "content_type": content_type, "metadata": check_metadata(metadata)}
        upload_dir = self._new_dir(self._uploads)
        await asyncio.to_thread((upload_dir / _UPLOAD).write_text, json.dumps(upload))
        return upload_dir.name

    async def upload_part(self, key: str, upload_id: str, part_number: int, data: AsyncIterable[bytes]) -> UploadedPart:
        upload_dir = await asyncio.to_thread(self._upload_dir, key, upload_id)
        prefix = f"part-{check_part_number(part_number):05d}-"
        partial = upload_dir / f".{prefix}{uuid.uuid4().hex}"
        try:
            hasher = hashlib.sha256()
            size = await _write(partial, data, hasher)
            etag = hasher.hexdigest()
            await asyncio.to_thread(_replace_part, upload_dir, partial, prefix, etag)
        except FileNotFoundError:
            raise BlobNotFound(f"upload {upload_id}") from None  # aborted meanwhile
        finally:
            partial.unlink(missing_ok=True)
        return UploadedPart(part_number, etag, size)

    async def complete_multipart(self, key: str, upload_id: str, parts: Mapping[int, str]) -> BlobInfo:
        upload_dir = await asyncio.to_thread(self._upload_dir, key, upload_id)
        upload = json.loads(await asyncio.to_thread((upload_dir / _UPLOAD).read_text))
        files = await asyncio.to_thread(_chosen_parts, upload_dir, parts)
        staging = self._new_dir(self._staging)
        try:
            hasher = hashlib.sha256()
            size = await _write(staging / _DATA, _concatenate(files), hasher)
            info = BlobInfo(key, size, upload["content_type"], hasher.hexdigest(), datetime.now(UTC),
                            upload["metadata"])
            await asyncio.to_thread(self._publish, staging, info)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        await asyncio.to_thread(shutil.rmtree, upload_dir, True)
        return info

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            upload_dir = await asyncio.to_thread(self._upload_dir, key, upload_id)
        except BlobNotFound:
            return
        await asyncio.to_thread(shutil.rmtree, upload_dir, True)

    # --- the janitor's view -----------------------------------------------------------------------------------

    async def list_older_than(self, cutoff: datetime) -> AsyncIterator[str]:
        for key in await asyncio.to_thread(_names, self._objects):
            try:
                info = await self.head(key)
            except (BlobNotFound, ValueError):
                continue  # deleted meanwhile, or not ours
            if info.created < cutoff:
                yield key

    async def abort_uploads_older_than(self, cutoff: datetime) -> int:
        def sweep() -> int:
            removed = 0
            for parent in (self._uploads, self._staging, self._trash):
                for name in _names(parent):
                    path = parent / name
                    try:
                        started = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                    except FileNotFoundError:
                        continue
                    if parent is self._trash or started < cutoff:
                        shutil.rmtree(path, ignore_errors=True)
                        removed += 1
            return removed

        return await asyncio.to_thread(sweep)

    # --- helpers (run in worker threads) ----------------------------------------------------------------------

    def _new_dir(self, parent: Path) -> Path:
        path = parent / uuid.uuid4().hex
        path.mkdir()
        return path

    def _publish(self, staging: Path, info: BlobInfo) -> None:
        meta = {
            "size": info.size, "content_type": info.content_type, "sha256": info.sha256,
            "created": info.created.isoformat(), "metadata": dict(info.metadata),
        }
        _write_durably(staging / _META, json.dumps(meta).encode())
        _fsync_dir(staging)
        target = self._objects / info.key
        self._remove(target)  # replacing: the old object disappears an instant before the new one appears
        staging.rename(target)
        _fsync_dir(self._objects)

    def _remove(self, target: Path) -> None:
        trash = self._trash / uuid.uuid4().hex
        try:
            target.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _upload_dir(self, key: str, upload_id: str) -> Path:
        check_key(key)
        upload_dir = self._uploads / upload_id
        try:
            if not upload_id.isalnum() or json.loads((upload_dir / _UPLOAD).read_text())["key"] != key:
                raise BlobNotFound(f"upload {upload_id}")
        except FileNotFoundError:
            raise BlobNotFound(f"upload {upload_id}") from None
        return upload_dir


async def _write(path: Path, data: AsyncIterable[bytes], hasher: Any) -> int:
    """Write the stream to `path` (fsynced), feeding `hasher`; returns the size."""
    file = await asyncio.to_thread(open, path, "wb")
    size = 0
    try:
        async for unit in rechunk(data, CHUNK_SIZE):
            await asyncio.to_thread(_write_hashed, file, hasher, unit)
            size += len(unit)
        await asyncio.to_thread(_flush, file)
    finally:
        file.close()
    return size


async def _concatenate(files: list[Path]) -> AsyncIterator[bytes]:
    for path in files:
        with await asyncio.to_thread(open, path, "rb") as file:
            while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
                yield chunk


def _write_hashed(file: IO[bytes], hasher: Any, unit: bytes) -> None:
    hasher.update(unit)
    file.write(unit)


def _read_hashed(file: IO[bytes], hasher: Any) -> bytes:
    chunk = file.read(CHUNK_SIZE)
    hasher.update(chunk)
    return chunk


def _flush(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())


def _write_durably(path: Path, content: bytes) -> None:
    with path.open("wb") as file:
        file.write(content)
        _flush(file)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_meta(directory: Path, key: str) -> BlobInfo:
    try:
        meta = json.loads((directory / _META).read_text())
    except FileNotFoundError:
        raise BlobNotFound(key) from None
    return BlobInfo(key, meta["size"], meta["content_type"], meta["sha256"], datetime.fromisoformat(meta["created"]),
                    meta["metadata"])


def _names(directory: Path) -> list[str]:
    return [entry.name for entry in os.scandir(directory)]


def _replace_part(upload_dir: Path, partial: Path, prefix: str, etag: str) -> None:
    """Make `partial` the part, dropping an earlier upload of the same part number."""
    if not (upload_dir / _UPLOAD).exists():
        raise FileNotFoundError(upload_dir)
    partial.rename(upload_dir / (prefix + etag))
    for earlier in upload_dir.glob(prefix + "*"):
        if earlier.name != prefix + etag:
            earlier.unlink(missing_ok=True)


def _chosen_parts(upload_dir: Path, parts: Mapping[int, str]) -> list[Path]:
    """The files of the parts named for completion, in part-number order, checked as S3 checks them."""
    if not parts:
        raise InvalidUpload("a multipart upload needs at least one part to complete")
    numbers = sorted(parts)
    files: list[Path] = []
    for position, number in enumerate(numbers):
        etag = parts[number].strip('"')  # S3 quotes its ETags; clients pass them back either way
        path = upload_dir / f"part-{check_part_number(number):05d}-{etag}"
        try:
            if not _ETAG.fullmatch(etag):
                raise FileNotFoundError(path)  # not one of ours, and never a path to follow
            size = path.stat().st_size
        except FileNotFoundError:
            raise InvalidUpload(f"part {number} with ETag {parts[number]} was not uploaded") from None
        if position < len(numbers) - 1 and size < MIN_PART_SIZE:
            raise InvalidUpload(f"part {number} is {size} bytes; every part but the last must be at least "
                                f"{MIN_PART_SIZE} bytes")
        files.append(path)
    return files
